"""What one plugin call left behind, read from outside with iproute2, iptables and nft, in a
plain JSON-able form (raw names, MACs and paths; normalize.py makes two sides comparable).

Only fields that a plugin decides are kept (a whitelist): counters, timers, ifindexes and
link-netnsids are dropped here, MACs and veth names are relabelled later.
"""

from __future__ import annotations

import json
import re
import shlex
import stat
import subprocess
from pathlib import Path
from typing import Any

from tests.conformance.normalize import canonical_mac
from tests.support.netns import Namespace, sh

# Port (bridge slave) and bridge attributes a CNI plugin sets or could disturb.
PORT_KEYS = ("state", "hairpin", "isolated", "learning", "flood", "proxy_arp", "neigh_suppress")
BRIDGE_KEYS = ("bridge_id", "stp_state", "vlan_filtering", "vlan_default_pvid", "ageing_time")
ADDRESS_KEYS = ("family", "local", "prefixlen", "scope", "broadcast", "nodad", "noprefixroute")
ROUTE_KEYS = ("dst", "gateway", "dev", "protocol", "scope", "prefsrc", "metric", "flags")
# sysctls under /proc/sys/net (globs are expanded by the shell inside the namespace)
HOST_SYSCTLS = ("ipv4/ip_forward", "ipv6/conf/all/forwarding", "ipv6/conf/*/accept_ra")
CONTAINER_SYSCTLS = (
    "ipv4/conf/*/arp_notify",
    "ipv6/conf/*/accept_dad",
    "ipv6/conf/*/disable_ipv6",
    "ipv6/conf/*/keep_addr_on_down",
)
SYSCTL_SKIP = re.compile(r"/(all|default)/")  # the global templates never change here
NFT_COUNTER = re.compile(r"counter packets \d+ bytes \d+")


def links(ns: Namespace) -> list[dict[str, Any]]:
    """Every link with its addresses, in ifindex order (creation order), operstates settled."""
    settle_operstates(ns)
    return [link_view(entry) for entry in ns.ip_json("-d", "addr", "show")]


def settle_operstates(ns: Namespace) -> None:
    """The same settling for both lanes before a snapshot: the kernel updates an operstate in
    linkwatch, up to a second late for a non-urgent change (a bridge's carrier going on with
    its first port, or off with its last), unless that one link is read (RTM_GETLINK of one
    link; a dump does not). Reading each link here makes the snapshot's operstates the
    kernel's settled ones, whichever plugin happened to read what last."""
    names = [entry["ifname"] for entry in ns.ip_json("link", "show")]
    if names:
        reads = "; ".join(f"ip link show dev {shlex.quote(name)}" for name in names)
        ns.exec("sh", "-c", f"{{ {reads}; }} >/dev/null")


def link_view(entry: dict[str, Any]) -> dict[str, Any]:
    info = entry.get("linkinfo", {})
    kind = info.get("info_kind", "")
    flags = sorted(entry.get("flags", []))
    if kind == "bridge":
        # NO-CARRIER follows the operstate, which the kernel updates for a bridge up to a
        # second late (linkwatch): it would make the comparison racy.
        flags = [f for f in flags if f != "NO-CARRIER"]
    view: dict[str, Any] = {
        # "_" keys are for normalize.py (which veth peers with which) and are then dropped.
        "_ifindex": entry.get("ifindex"),
        "_peer": entry.get("link_index"),
        "name": entry["ifname"],
        "kind": kind,
        "flags": flags,
        # Settled alike on both lanes (settle_operstates); tests/integration checks that ours
        # leaves its bridge's settled right after ADD, as the reference does.
        "operstate": entry.get("operstate", ""),
        "mtu": entry.get("mtu"),
        "mac": entry.get("address", ""),
        "txqlen": entry.get("txqlen", 0),
        "promiscuity": entry.get("promiscuity", 0),
        "master": entry.get("master", ""),
        "addresses": [address_view(a) for a in entry.get("addr_info", [])],
    }
    if kind == "bridge":
        data = info.get("info_data", {})
        view["bridge"] = {key: data.get(key) for key in BRIDGE_KEYS}
        priority, _, mac = str(data.get("bridge_id", "")).partition(".")
        if mac and canonical_mac(mac) == canonical_mac(view["mac"]):
            view["bridge"]["bridge_id"] = f"{priority}.<own mac>"
    if kind == "vlan":
        view["vlan_id"] = info.get("info_data", {}).get("id")
    if info.get("info_slave_kind") == "bridge":
        slave = info.get("info_slave_data", {})
        view["port"] = {key: slave.get(key) for key in PORT_KEYS}
    return view


def address_view(info: dict[str, Any]) -> dict[str, Any]:
    view = {key: info[key] for key in ADDRESS_KEYS if key in info}
    if info.get("family") == "inet6" and info.get("scope") == "link":
        view["local"] = "<link-local>"  # derived from the random MAC
    return view


def routes(ns: Namespace, family: str) -> list[dict[str, Any]]:
    out = []
    for route in ns.ip_json(family, "route", "show", "table", "main"):
        view = {key: route[key] for key in ROUTE_KEYS if key in route}
        # "linkdown" follows the carrier of a bridge, reported up to a second late: racy.
        view["flags"] = [f for f in view.get("flags", []) if f != "linkdown"]
        out.append(view)
    return out


def sysctls(ns: Namespace, patterns: tuple[str, ...]) -> dict[str, str]:
    """`grep -H . files` inside the namespace: {"ipv4/ip_forward": "1", ...}."""
    out = ns.exec("sh", "-c", "cd /proc/sys/net && grep -H . " + " ".join(patterns), check=False)
    values: dict[str, str] = {}
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if not SYSCTL_SKIP.search(f"/{key}/"):
            values[key] = value
    return dict(sorted(values.items()))


def nat_rules(ns: Namespace, tool: str) -> list[str]:
    """`iptables -t nat -S` (or ip6tables): the chain policies and every rule."""
    return ns.exec(tool, "-t", "nat", "-S").splitlines()


def nft_ruleset(ns: Namespace) -> list[str]:
    """`nft list ruleset` flattened to "family table/chain: statement" lines, counters dropped,
    so that a rule or chain present on one side only is one line of the diff."""
    text = NFT_COUNTER.sub("counter", ns.exec("nft", "list", "ruleset"))
    lines: list[str] = []
    table = chain = ""
    for raw in text.splitlines():
        line = " ".join(raw.split())
        if not line or line == "}":
            continue
        if line.startswith("table "):
            table, chain = line.removeprefix("table ").removesuffix(" {"), ""
            lines.append(f"{table}")
        elif line.startswith(("chain ", "set ", "map ")) and line.endswith("{"):
            chain = line.removesuffix(" {")
            lines.append(f"{table}/{chain}")
        else:
            lines.append(f"{table}/{chain}: {line}")
    return lines


def bridge_vlans(ns: Namespace) -> Any:
    """`bridge -j vlan show` (an empty list on kernels without VLAN filtering)."""
    proc = subprocess.run(
        ["ip", "netns", "exec", ns.name, "bridge", "-j", "vlan", "show"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return f"unavailable: {proc.stderr.strip()}"
    return _json_or_empty(proc.stdout)


def qdiscs(ns: Namespace) -> list[str]:
    """`tc qdisc show` lines other than the kernel defaults (noqueue)."""
    out = sh("ip", "netns", "exec", ns.name, "tc", "qdisc", "show")
    return [line.strip() for line in out.splitlines() if " noqueue " not in f" {line} "]


def store(root: Path) -> dict[str, Any]:
    """Every file and directory under the data dir: mode, and the exact bytes of files."""
    if not root.exists():
        return {}
    out: dict[str, Any] = {".": {"mode": _mode(root)}}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_dir():
            out[rel + "/"] = {"mode": _mode(path)}
        else:
            out[rel] = {"mode": _mode(path), "bytes": repr(path.read_bytes())}
    return out


def host_state(host: Namespace) -> dict[str, Any]:
    return {
        "links": links(host),
        "routes4": routes(host, "-4"),
        "routes6": routes(host, "-6"),
        "vlans": bridge_vlans(host),
        "sysctl": sysctls(host, HOST_SYSCTLS),
        "iptables-nat": nat_rules(host, "iptables"),
        "ip6tables-nat": nat_rules(host, "ip6tables"),
        "nft": nft_ruleset(host),
    }


def container_state(ns: Namespace) -> dict[str, Any] | str:
    if not Path(ns.path).exists():
        return "deleted"
    return {
        "links": links(ns),
        "routes4": routes(ns, "-4"),
        "routes6": routes(ns, "-6"),
        "sysctl": sysctls(ns, CONTAINER_SYSCTLS),
    }


def _mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


def _json_or_empty(text: str) -> Any:
    return json.loads(text) if text.strip() else []
