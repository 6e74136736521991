"""Everything a plugin run could change, captured from outside, and what an attachment leaves.

`snapshot` reads, in one shell per namespace: links (kind, master, MTU, MAC, flags, alias,
bridge and port options), addresses, IPv4 and IPv6 routes of every table and, in the host
namespace, iptables-save, ip6tables-save, `nft list ruleset` and the forwarding sysctls;
plus every file under the data dir (names, modes, bytes, symlink targets) and whether given
paths exist. Values that move on their own (timers, counters, lifetimes) are left out.

`unchanged` takes a snapshot and returns the check that nothing in it changed since.
`leftovers` lists what one network still holds in the kernel, the store and the runtime cache.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from tests.support.netns import Namespace

SEPARATOR = "@@@@"
_NS_SCRIPT = " ; ".join(
    [
        "ip -j -d link show",
        f"echo {SEPARATOR}",
        "ip -j addr show",
        f"echo {SEPARATOR}",
        "ip -j -4 route show table all",
        f"echo {SEPARATOR}",
        "ip -j -6 route show table all",
    ]
)
_HOST_SCRIPT = " ; ".join(
    [
        _NS_SCRIPT,
        f"echo {SEPARATOR}",
        "iptables-save 2>/dev/null",
        f"echo {SEPARATOR}",
        "ip6tables-save 2>/dev/null",
        f"echo {SEPARATOR}",
        "nft list ruleset 2>/dev/null",
        f"echo {SEPARATOR}",
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv6/conf/all/forwarding",
    ]
)
_BRIDGE_KEYS = ("vlan_filtering", "stp_state")
_PORT_KEYS = ("hairpin", "isolated", "learning", "flood")
_ROUTE_KEYS = ("dst", "gateway", "dev", "protocol", "scope", "type", "table", "prefsrc", "metric")


def _json(text: str) -> list[dict[str, Any]]:
    text = text.strip()
    value = json.loads(text) if text else []
    assert isinstance(value, list)
    return value


def _links(text: str) -> list[tuple[Any, ...]]:
    out = []
    for e in _json(text):
        info = e.get("linkinfo", {})
        data = info.get("info_data", {})
        port = info.get("info_slave_data", {})
        out.append(
            (
                e["ifname"],
                e.get("ifindex"),
                info.get("info_kind", ""),
                e.get("master", ""),
                e.get("mtu"),
                e.get("address", ""),
                tuple(sorted(e.get("flags", []))),
                e.get("ifalias", ""),
                e.get("promiscuity"),
                tuple((k, data.get(k)) for k in _BRIDGE_KEYS if k in data),
                tuple((k, port.get(k)) for k in _PORT_KEYS if k in port),
            )
        )
    return sorted(out, key=repr)


def _addresses(text: str) -> list[tuple[Any, ...]]:
    return sorted(
        (e["ifname"], a["family"], a["local"], a["prefixlen"], a.get("scope", ""))
        for e in _json(text)
        for a in e.get("addr_info", [])
    )


def _routes(text: str) -> list[tuple[Any, ...]]:
    return sorted((tuple(str(r.get(k, "")) for k in _ROUTE_KEYS) for r in _json(text)), key=repr)


def _rules(text: str) -> list[str]:
    """iptables-save / nft output without timestamps and packet counters."""
    lines = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        stable = re.sub(r"\[\d+:\d+\]", "[-]", line)
        lines.append(re.sub(r"counter packets \d+ bytes \d+", "counter", stable))
    return lines


def namespace_state(ns: Namespace, *, host: bool = False) -> dict[str, Any]:
    parts = ns.exec("sh", "-c", _HOST_SCRIPT if host else _NS_SCRIPT).split(SEPARATOR)
    state: dict[str, Any] = {
        "links": _links(parts[0]),
        "addresses": _addresses(parts[1]),
        "routes4": _routes(parts[2]),
        "routes6": _routes(parts[3]),
    }
    if host:
        state["iptables"] = _rules(parts[4])
        state["ip6tables"] = _rules(parts[5])
        state["nft"] = _rules(parts[6])
        state["forwarding"] = parts[7].split()
    return state


def files_state(root: Path) -> list[tuple[Any, ...]]:
    """Every entry under `root`: path, type, mode and bytes (or symlink target)."""
    out: list[tuple[Any, ...]] = []
    if not root.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            st = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out.append((rel, "symlink", os.readlink(path)))
            elif stat.S_ISDIR(st.st_mode):
                out.append((rel, "dir", oct(stat.S_IMODE(st.st_mode))))
            else:
                out.append((rel, "file", oct(stat.S_IMODE(st.st_mode)), path.read_bytes()))
    return sorted(out, key=repr)


def snapshot(
    host: Namespace | None,
    containers: Sequence[Namespace],
    data_dir: Path | None = None,
    paths: Sequence[Path] = (),
) -> dict[str, Any]:
    """The host namespace (with its rules), each container namespace, every file under the
    data dir and whether `paths` exist; a part that is None or empty is left out."""
    state: dict[str, Any] = {"host": namespace_state(host, host=True)} if host else {}
    state.update({f"ns {ns.name}": namespace_state(ns) for ns in containers})
    if data_dir is not None:
        state["store"] = files_state(data_dir)
    if paths:
        state["paths"] = [(str(p), os.path.lexists(p)) for p in paths]
    return state


def unchanged(
    *containers: Namespace, host: Namespace | None = None, data_dir: Path | None = None
) -> Callable[[], None]:
    """Snapshot now; the returned check fails naming every part that changed since. IPv6
    addresses still in DAD are waited for first: their local routes appear only after it."""
    spaces = [ns for ns in (host, *containers) if ns is not None]
    settle(*spaces)
    before = snapshot(host, containers, data_dir)

    def check() -> None:
        changes = differences(before, snapshot(host, containers, data_dir))
        assert not changes, "\n".join(changes)

    return check


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """One line per part that changed, naming what appeared and what went."""
    out = []
    for where in sorted(set(before) | set(after)):
        b, a = before.get(where), after.get(where)
        if b == a:
            continue
        if isinstance(b, dict) and isinstance(a, dict):
            for key in sorted(set(b) | set(a)):
                if b.get(key) != a.get(key):
                    out.append(f"{where}/{key}: {_delta(b.get(key), a.get(key))}")
        else:
            out.append(f"{where}: {_delta(b, a)}")
    return out


def _delta(before: Any, after: Any) -> str:
    if isinstance(before, list) and isinstance(after, list):
        gone = [x for x in before if x not in after]
        new = [x for x in after if x not in before]
        return f"gone {gone!r:.600} new {new!r:.600}"
    return f"{before!r:.300} -> {after!r:.300}"


# --- what a network still holds -------------------------------------------------------------


def _nft_rules(host: Namespace) -> list[dict[str, Any]]:
    out = host.exec("nft", "-j", "list", "ruleset", check=False)
    items = json.loads(out).get("nftables", []) if out.strip() else []
    return [i for i in items if isinstance(i, dict)]


def leftovers(
    host: Namespace,
    containers: Sequence[Namespace],
    data_dir: Path,
    network: str,
    *,
    cache_entries: Sequence[str] = (),
    keep: Collection[str] = (),
) -> list[str]:
    """Everything `network` still holds for containers not in `keep`: host veths (owner alias),
    interfaces in `containers`, reservations (and temporary files) in the store, iptables
    chains and jumps, nftables masquerade and macspoofchk rules, and runtime cache entries."""
    found = [
        *_host_veths(host),
        *(f"{ns.name}: {name}" for ns in containers for name in ns.link_names() if name != "lo"),
        *_store_entries(data_dir / network),
        *_iptables(host),
        *_nftables(host, network),
        *(f"cache {name}" for name in cache_entries),
    ]
    return [item for item in found if not any(cid in item for cid in keep)]


def _host_veths(host: Namespace) -> list[str]:
    return [
        f"host veth {link['ifname']} ({link.get('ifalias', 'no alias')})"
        for link in host.links("veth")
    ]


def _store_entries(directory: Path) -> list[str]:
    """Reservations and temporary files, each with its content (which names the owner)."""
    if not directory.is_dir():
        return []
    found = []
    for path in sorted(directory.iterdir()):
        if path.name == "lock" or path.name.startswith("last_reserved_ip."):
            continue
        content = "" if path.is_symlink() else path.read_bytes().decode(errors="replace")
        found.append(f"store {path.name} ({content!r})")
    return found


def _iptables(host: Namespace) -> list[str]:
    return [
        f"{tool}: {line}"
        for tool in ("iptables", "ip6tables")
        for line in host.exec(f"{tool}-save", "-t", "nat", check=False).splitlines()
        if "CNI-" in line and not line.startswith(("#", ":"))
    ]


def _nftables(host: Namespace, network: str) -> list[str]:
    found = []
    for item in _nft_rules(host):
        rule, chain = item.get("rule") or {}, item.get("chain") or {}
        comment = str(rule.get("comment", ""))
        if rule.get("table") == "cni_plugins_masquerade" and f"net: {network}," in comment:
            found.append(f"nft masquerade rule {comment}")
        if comment.startswith("macspoofchk-"):
            found.append(f"nft macspoofchk rule {comment}")
        if str(chain.get("name", "")).startswith("cni-br-iface-"):
            found.append(f"nft macspoofchk chain {chain['name']}")
    return found


def settle(*spaces: Namespace, timeout: float = 20) -> None:
    """Wait until no IPv6 address is still in duplicate address detection (its local route
    appears only afterwards), so that later snapshots compare like with like."""
    deadline = time.monotonic() + timeout
    while any('"tentative":true' in ns.exec("ip", "-j", "addr", "show") for ns in spaces):
        if time.monotonic() > deadline:
            raise AssertionError("IPv6 addresses stay tentative")
        time.sleep(0.2)


def bridge_ports(host: Namespace, bridge: str) -> list[str]:
    return [e["ifname"] for e in host.links() if e.get("master") == bridge]
