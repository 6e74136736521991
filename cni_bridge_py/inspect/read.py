"""The reading edge of inspect: configs, the store, the kernel, the NAT rules and libcni's
cache, each read into model records without changing anything.

Read-only on purpose, and it matters where: the store's DiskStore would create its directory
and lock file, so its files are listed here directly; `iptables -t nat -S` on iptables-nft may
create the nat table, iptables-save does not (it prints what exists); libnftables only lists;
the namespaces of containers are entered by a thread only to read their links.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from cni_bridge_py import config, plan
from cni_bridge_py.errors import CniError
from cni_bridge_py.firewall import backend as masq
from cni_bridge_py.firewall import layout, nft_layout
from cni_bridge_py.firewall.nft_json import Ruleset
from cni_bridge_py.inspect.model import (
    BridgeState,
    CacheEntry,
    ContainerSide,
    HostVeth,
    NatState,
    NetworkSpec,
    Observed,
    Reservation,
)
from cni_bridge_py.ipam.disk import may_be_reservation
from cni_bridge_py.ipam.store import parse_owner
from cni_bridge_py.kernel.errors import KernelError
from cni_bridge_py.netaddr import IPInterface
from cni_bridge_py.runner import conf as runner_conf
from cni_bridge_py.runner.cache import CACHE_KIND, cache_root
from cni_bridge_py.which import which

DEFAULT_CONF_DIR = "/etc/cni/net.d"
NETCONFPATH = "NETCONFPATH"
# The plugin types whose config is a bridge network: ours, and the reference's.
BRIDGE_TYPES = ("bridge", "cni-bridge-py")
NETNS_DIRS = ("/run/netns", "/var/run/netns")
SAVE_TIMEOUT_S = 20


class InspectError(Exception):
    """A config that cannot be found or read: said on stderr, exit 2."""


# ---- configs -------------------------------------------------------------------------------


def conf_dir(env: Mapping[str, str]) -> Path:
    return Path(env.get(NETCONFPATH) or DEFAULT_CONF_DIR)


def load_specs(
    env: Mapping[str, str], names: Sequence[str], conf_file: str | None
) -> list[NetworkSpec]:
    """The bridge networks to inspect: `conf_file` alone, the named ones from the config
    dir (as cnitool finds them), or every bridge network there."""
    return [spec for spec, _ in load_networks(env, names, conf_file)]


def load_networks(
    env: Mapping[str, str], names: Sequence[str], conf_file: str | None
) -> list[tuple[NetworkSpec, dict[str, Any]]]:
    """load_specs, each with the bridge plugin's config as libcni hands it to the plugin
    (the list's name and cniVersion in): what doctor --fix runs GC with."""
    try:
        if conf_file is not None:
            nets = [_load_file(Path(conf_file))]
        elif names:
            nets = [runner_conf.load_network(conf_dir(env), name) for name in names]
        else:
            nets = [_load_file(p) for p in _conf_files(conf_dir(env))]
    except runner_conf.ConfigError as e:
        raise InspectError(str(e)) from e
    specs = [_spec(net, env) for net in nets]
    found = [s for s in specs if s is not None]
    if (names or conf_file) and len(found) < len(specs):
        missing = [n.name for n, s in zip(nets, specs, strict=True) if s is None]
        raise InspectError(f"not a bridge network (no plugin of type bridge): {missing}")
    return found


def _conf_files(directory: Path) -> list[Path]:
    try:
        names = sorted(e.name for e in os.scandir(directory) if e.is_file())
    except FileNotFoundError:
        return []
    except OSError as e:
        raise InspectError(f"cannot list {directory}: {e.strerror}") from e
    return [directory / n for n in names if n.endswith((".conflist", ".conf", ".json"))]


def _load_file(path: Path) -> runner_conf.NetworkList:
    try:
        raw = path.read_bytes()
        data = json.loads(raw)
    except OSError as e:
        raise InspectError(f"cannot read {path}: {e.strerror}") from e
    except ValueError as e:
        raise InspectError(f"{path}: not valid JSON ({e})") from e
    if isinstance(data, dict) and "plugins" in data:
        return runner_conf.parse_conflist(data, raw, str(path))
    return runner_conf.upgrade_single(runner_conf.parse_plugin(data, str(path)))


def _spec(
    net: runner_conf.NetworkList, env: Mapping[str, str]
) -> tuple[NetworkSpec, dict[str, Any]] | None:
    plugin = next((p for p in net.plugins if p.get("type") in BRIDGE_TYPES), None)
    if plugin is None:
        return None
    # libcni hands each plugin the list's name and version: parse it as the plugin would.
    data = {**plugin, "name": net.name, "cniVersion": net.cni_version or "0.1.0"}
    try:
        conf = config.parse(data, data["cniVersion"], command="CHECK")
    except CniError as e:
        raise InspectError(f"network {net.name}: {e}") from e
    host_local = conf.ipam.host_local if conf.ipam is not None else None
    spec = NetworkSpec(
        name=conf.name,
        bridge=conf.bridge,
        is_gateway=conf.is_gateway,
        ip_masq=conf.ip_masq,
        masq_backend=masq_backend_name(env.get("PATH"), conf.ip_masq_backend),
        range_sets=host_local.range_sets if host_local else (),
        store_dir=os.path.join(host_local.data_dir, conf.name) if host_local else "",
        force_address=conf.force_address,
    )
    return spec, data


def masq_backend_name(path_env: str | None, preference: str) -> str:
    """Which backend the plugin would use here (firewall.backend.default_backend's choice)."""
    variant = masq.iptables_variant(path_env)
    nft = which("nft", path=path_env) is not None
    if preference == "nftables":
        return "nftables" if nft else "none"
    if variant is not None:
        return f"iptables-{variant}"
    if preference == "iptables":
        return "none"
    return "nftables" if nft else "none"


# ---- one network ---------------------------------------------------------------------------


def observe(spec: NetworkSpec, env: Mapping[str, str]) -> Observed:
    unreadable: list[str] = []
    cache = read_cache(cache_root(env), spec.name)
    bridge, veths = read_kernel(spec, [c.netns for c in cache if c.netns], unreadable)
    nat = read_iptables(spec.name, env.get("PATH"), unreadable) + read_nftables(spec.name)
    return Observed(
        spec=spec,
        bridge=bridge,
        veths=tuple(veths),
        reservations=tuple(read_store(spec.store_dir)),
        nat=tuple(nat),
        cache=tuple(cache),
        unreadable=tuple(unreadable),
    )


def read_store(directory: str) -> Iterator[Reservation]:
    """host-local's reservation files, listed as DiskStore does but never creating the
    directory or its lock (and never removing a crash's temporary file)."""
    if not directory:
        return
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return  # no reservation can be there (doctor reports a data dir that is a file)
    for entry in entries:
        if not may_be_reservation(entry):
            continue
        try:
            # Bytes: text mode would turn the owner's "\r\n" into "\n".
            text = Path(entry.path).read_bytes().decode(errors="replace")
        except OSError:
            continue
        owner = parse_owner(text)
        yield Reservation(entry.name, owner.container_id, owner.ifname)


def read_kernel(
    spec: NetworkSpec, netns_hints: Sequence[str], unreadable: list[str]
) -> tuple[BridgeState | None, list[HostVeth]]:
    # The kernel package loads pyroute2's messages: only once inspect really reads.
    from cni_bridge_py.kernel.netlink import host_session  # noqa: PLC0415

    try:
        with host_session() as host:
            links = host.links()
            by_index = {link.index: link for link in links}
            bridge_link = next((lk for lk in links if lk.name == spec.bridge), None)
            bridge = None
            if bridge_link is not None and bridge_link.kind == "bridge":
                addresses = _global(host.addresses(bridge_link.index))
                bridge = BridgeState(
                    bridge_link.name, bridge_link.mac, bridge_link.operstate, addresses
                )
            finder = _PeerFinder(host, netns_hints)
            veths = []
            for link in links:
                owner = plan.parse_port_alias(link.alias)
                on_bridge = bridge is not None and link.master == bridge_link.index  # type: ignore[union-attr]
                if link.kind != "veth" or not (on_bridge or (owner and owner[0] == spec.name)):
                    continue
                master = by_index.get(link.master) if link.master else None
                veths.append(
                    HostVeth(
                        name=link.name,
                        index=link.index,
                        mac=link.mac,
                        master=master.name if master else "",
                        alias=link.alias,
                        operstate=link.operstate,
                        peer=finder.peer(link.link_netnsid, link.peer_index),
                    )
                )
            return bridge, veths
    except (KernelError, OSError) as e:
        unreadable.append(f"the host's links ({e})")
        return None, []


def _global(addresses: Sequence[IPInterface]) -> tuple[str, ...]:
    """The addresses a network gives (IPv6 link-local ones every interface has left out)."""
    return tuple(str(a) for a in addresses if not (a.version == 6 and a.ip.is_link_local))


class _PeerFinder:
    """The container end of a veth: its link-netnsid names the namespace as the host numbers
    it, and each candidate namespace file (libcni's cache, then /run/netns) is asked for its
    nsid until one matches. RTM_GETNSID reads: it does not assign an nsid to a namespace."""

    def __init__(self, host: Any, hints: Sequence[str]) -> None:
        self.host = host
        self.hints = list(dict.fromkeys(hints))
        self._nsids: dict[str, int | None] | None = None

    def _candidates(self) -> dict[str, int | None]:
        if self._nsids is None:
            paths = list(self.hints)
            for directory in NETNS_DIRS:
                try:
                    paths += sorted(os.path.join(directory, n) for n in os.listdir(directory))
                except OSError:
                    continue
            self._nsids = {}
            seen: set[tuple[int, int]] = set()
            for path in paths:
                try:
                    st = os.stat(path)
                    if (st.st_dev, st.st_ino) in seen:
                        continue  # /var/run is /run: the same file twice
                    seen.add((st.st_dev, st.st_ino))
                    self._nsids[path] = self.host.nsid_of(path)
                except (CniError, KernelError, OSError):
                    continue
        return self._nsids

    def peer(self, nsid: int | None, index: int | None) -> ContainerSide | None:
        if nsid is None or index is None:
            return None
        path = next((p for p, n in self._candidates().items() if n == nsid), None)
        if path is None:
            return None
        from cni_bridge_py.kernel.netlink import netns_session  # noqa: PLC0415

        try:
            with netns_session(path) as inside:
                link = inside.link_by_index(index)
                if link is None:
                    return None
                addresses = _global(inside.addresses(link.index))
                return ContainerSide(path, link.name, link.mac, addresses)
        except (CniError, KernelError, OSError):
            return None


def read_iptables(network: str, path_env: str | None, unreadable: list[str]) -> list[NatState]:
    """The network's chains in iptables' nat table (both families), found by their comment
    as GC finds them (layout.owned_chains); their POSTROUTING jumps give the sources."""
    out: list[NatState] = []
    for tool in ("iptables-save", "ip6tables-save"):
        found = which(tool, path=path_env)
        if found is None:
            continue
        try:
            text = save_existing(found)
        except SaveError as e:
            unreadable.append(f"{tool} ({e})")
            continue
        table = layout.NatTable.parse(table_section(text, "nat"))
        for chain, container_id in sorted(layout.owned_chains(table, network).items()):
            sources = tuple(layout.rule_source(rule) for rule in table.jumps_to(chain))
            out.append(NatState("iptables", chain, container_id, None, sources))
    return _merge_families(out)


class SaveError(Exception):
    """An iptables-save that could not run or failed."""


def save_existing(executable: str) -> str:
    """`<variant>-save` of the tables that exist, and only those: without `-t`, it lists
    what the kernel has (legacy: /proc/net/ip_tables_names) where `-t nat` would have the
    legacy kernel instantiate an empty nat table in this namespace to answer."""
    try:
        proc = subprocess.run(
            [executable], capture_output=True, text=True, check=False, timeout=SAVE_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SaveError(str(e)) from e
    if proc.returncode != 0:
        raise SaveError(proc.stderr.strip() or f"exit status {proc.returncode}")
    return proc.stdout


def table_section(save_text: str, table: str) -> str:
    """The lines of one table (`*nat` up to its COMMIT) of an iptables-save dump."""
    out: list[str] = []
    inside = False
    for line in save_text.splitlines():
        if line.startswith("*"):
            inside = line[1:].strip() == table
        elif inside:
            if line == "COMMIT":
                inside = False
            else:
                out.append(line)
    return "\n".join(out)


def _merge_families(states: list[NatState]) -> list[NatState]:
    """An IPv4 and an IPv6 chain of one container have the same name: one state."""
    merged: dict[str, NatState] = {}
    for state in states:
        old = merged.get(state.name)
        sources = (old.sources if old else ()) + state.sources
        merged[state.name] = NatState(state.backend, state.name, state.container_id, None, sources)
    return list(merged.values())


def read_nftables(network: str) -> list[NatState]:
    """The network's rules in the reference's nftables masquerade table, if there is one."""
    from cni_bridge_py.firewall.nft_lib import load  # noqa: PLC0415 - ctypes only here

    library = load()
    if library is None:
        return []
    listing = f"list table {nft_layout.FAMILY} {nft_layout.TABLE}"
    outcome = library.run(listing, json=True, handles=True)
    if not outcome.ok or not outcome.output:
        return []  # no table: nothing of any network
    states: dict[str, NatState] = {}
    for rule in nft_layout.network_rules(Ruleset.parse(json.loads(outcome.output)), network):
        ifname, container_id = _nft_owner(rule.comment)
        key = rule.comment[: nft_layout.INSTANCE_LEN]
        words = rule.text.split()
        source = words[words.index("saddr") + 1] if "saddr" in words else ""
        old = states.get(key)
        sources = (old.sources if old else ()) + ((source,) if source else ())
        states[key] = NatState("nftables", f"nft {key}", container_id, ifname, sources)
    return list(states.values())


def _nft_owner(comment: str) -> tuple[str, str]:
    """(ifname, container ID) from `<hash>, net: N, if: I, id: C` (cut at 128 bytes: the ID
    may be short of its end, then the join reports the rules as another attachment's)."""
    fields = dict(part.split(": ", 1) for part in comment.split(", ")[1:] if ": " in part)
    return fields.get("if", ""), fields.get("id", "")


def read_cache(root: Path, network: str) -> list[CacheEntry]:
    """libcni's cniCacheV1 entries of this network (runner/cache.py's format)."""
    directory = root / "results"
    try:
        names = sorted(n for n in os.listdir(directory) if not n.startswith("."))
    except OSError:
        return []
    out = []
    for name in names:
        if not name.startswith(network + "-"):
            continue
        try:
            data = json.loads((directory / name).read_bytes())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or data.get("kind") != CACHE_KIND:
            continue
        if data.get("networkName") != network:
            continue
        entry = _cache_entry(str(directory / name), data)
        if entry is not None:
            out.append(entry)
    return out


def _cache_entry(path: str, data: dict[str, Any]) -> CacheEntry | None:
    container_id, ifname = data.get("containerId"), data.get("ifName")
    if not (isinstance(container_id, str) and isinstance(ifname, str)):
        return None
    netns = data.get("netns")
    raw_result = data.get("result")
    result: dict[str, Any] = raw_result if isinstance(raw_result, dict) else {}
    interfaces = [i for i in result.get("interfaces", []) if isinstance(i, dict)]
    # The host end of the veth: the interface without a sandbox that is not the bridge (the
    # first one listed).
    hosts = [str(i.get("name", "")) for i in interfaces[1:] if not i.get("sandbox")]
    addresses = tuple(
        str(ip["address"])
        for ip in result.get("ips", [])
        if isinstance(ip, dict) and "address" in ip
    )
    return CacheEntry(path, container_id, ifname, str(netns), addresses, hosts[0] if hosts else "")
