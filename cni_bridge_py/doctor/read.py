"""doctor's reading edge: inspect's reads (configs, store, kernel, NAT, cache) and the join,
plus what inspect does not look at: sysctls, both iptables variants, the link named as the
bridge, main-table routes, the data dir, the agent's socket. Changes nothing.

Read-only where it matters: iptables-*-save runs without `-t` (a legacy `-t nat` creates the
nat table in the namespace to answer); the data dir is tried with an unnamed O_TMPFILE file,
which vanishes on close; the agent's socket is looked up in /proc/net/unix before any connect
(a connect to systemd's socket would start the agent).
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Mapping, Sequence

from cni_bridge_py import plan
from cni_bridge_py.agent.protocol import DEFAULT_SOCKET, SOCKET_ENV
from cni_bridge_py.doctor.facts import (
    AgentSocket,
    BrNetfilter,
    HostFacts,
    IptablesVariant,
    NetworkFacts,
    Route,
)
from cni_bridge_py.errors import CniError
from cni_bridge_py.firewall import backend as masq
from cni_bridge_py.inspect import join
from cni_bridge_py.inspect import read as inspect_read
from cni_bridge_py.inspect.model import NetworkSpec, Observed
from cni_bridge_py.ipam.disk import check_writable
from cni_bridge_py.kernel.errors import KernelError
from cni_bridge_py.kernel.sysctl import ProcSysctl
from cni_bridge_py.which import which

BR_NETFILTER_MODULE = "/sys/module/br_netfilter"
# The legacy kernel tables list the tables that exist (per namespace).
LEGACY_TABLE_LISTS = ("/proc/net/ip_tables_names", "/proc/net/ip6_tables_names")


def host_facts(env: Mapping[str, str], specs: Sequence[NetworkSpec]) -> HostFacts:
    sysctl = ProcSysctl()
    unreadable: list[str] = []
    return HostFacts(
        ip_forward=_sysctl(sysctl, "net/ipv4/ip_forward"),
        ipv6_forwarding=_sysctl(sysctl, "net/ipv6/conf/all/forwarding"),
        iptables_in_use=masq.iptables_variant(env.get("PATH")),
        iptables=tuple(read_variants(env.get("PATH"), unreadable)),
        br_netfilter=BrNetfilter(
            loaded=os.path.exists(BR_NETFILTER_MODULE)
            or os.path.exists("/proc/sys/net/bridge/bridge-nf-call-iptables"),
            call_iptables=_sysctl(sysctl, "net/bridge/bridge-nf-call-iptables"),
            call_ip6tables=_sysctl(sysctl, "net/bridge/bridge-nf-call-ip6tables"),
        ),
        agent=agent_socket(env),
        unreadable=tuple(unreadable),
    )


def _sysctl(sysctl: ProcSysctl, key: str) -> str | None:
    try:
        return sysctl.read(key)
    except OSError:
        return None


def read_variants(path_env: str | None, unreadable: list[str]) -> list[IptablesVariant]:
    """Each iptables variant's tables, both families, as its -save prints what exists."""
    out = []
    for variant in ("legacy", "nft"):
        chains: list[str] = []
        rules = 0
        tools = []
        for family in ("iptables", "ip6tables"):
            tool = f"{family}-{variant}-save"
            found = which(tool, path=path_env)
            if found is None:
                continue
            if variant == "legacy" and not _legacy_tables_exist():
                continue  # nothing to list, and no need to run it at all
            try:
                text = inspect_read.save_existing(found)
            except inspect_read.SaveError as e:
                unreadable.append(f"{tool} ({e})")
                continue
            tools.append(tool)
            for line in text.splitlines():
                if line.startswith(":CNI-"):
                    chains.append(line[1:].split(" ", 1)[0])
                elif line.startswith("-A "):
                    rules += 1
        if tools:
            out.append(IptablesVariant(variant, tools[0], tuple(dict.fromkeys(chains)), rules))
    return out


def _legacy_tables_exist() -> bool:
    for listing in LEGACY_TABLE_LISTS:
        try:
            with open(listing) as f:
                if f.read().strip():
                    return True
        except OSError:
            continue  # no ip_tables module loaded: no legacy table anywhere
    return False


def agent_socket(env: Mapping[str, str]) -> AgentSocket | None:
    """The socket the plugin would hand its calls to (agent.client.listening_socket's
    choice), or None when it is switched off or absent (the agent is optional)."""
    path = env.get(SOCKET_ENV, DEFAULT_SOCKET)
    if path in ("", "off"):
        return None
    try:
        st = os.stat(path)
        dst = os.stat(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return None
    is_socket = stat.S_ISSOCK(st.st_mode)
    return AgentSocket(
        path=path,
        is_socket=is_socket,
        mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        dir_mode=stat.S_IMODE(dst.st_mode),
        dir_uid=dst.st_uid,
        listening=is_socket and _listening(path),
    )


def _listening(path: str) -> bool:
    """Something accepts on `path`: a listener bound there in /proc/net/unix (this
    namespace: the agent, or systemd holding it), else a connect that is not refused."""
    if _listed(os.path.abspath(path)):
        return True
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(2)
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _listed(path: str) -> bool:
    """/proc/net/unix: `Num RefCount Protocol Flags Type St Inode Path`; Flags 00010000 is
    __SO_ACCEPTCON (listening)."""
    try:
        with open("/proc/net/unix") as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return False
    for line in lines:
        fields = line.split()
        if len(fields) >= 8 and fields[7] == path and int(fields[3], 16) & 0x10000:
            return True
    return False


def network_facts(spec: NetworkSpec, env: Mapping[str, str]) -> NetworkFacts:
    observed = inspect_read.observe(spec, env)
    kind, addresses, routes = _links_and_routes(spec)
    return NetworkFacts(
        spec=spec,
        summary=join.summarize(observed),
        bridge_kind=kind,
        bridge_addresses=addresses,
        routes=routes,
        data_dir_problem=data_dir_problem(spec.store_dir),
        cached=frozenset((c.container_id, c.ifname) for c in observed.cache),
        owned_veths=owned_veths(observed),
    )


def owned_veths(observed: Observed) -> frozenset[str]:
    """What GC's _orphan_ports may delete: veths on the bridge with this network's alias."""
    spec = observed.spec
    out = set()
    for veth in observed.veths:
        owner = plan.parse_port_alias(veth.alias)
        if veth.master == spec.bridge and owner is not None and owner[0] == spec.name:
            out.add(veth.name)
    return frozenset(out)


def _links_and_routes(spec: NetworkSpec) -> tuple[str, tuple[str, ...], tuple[Route, ...]]:
    from cni_bridge_py.kernel.netlink import host_session  # noqa: PLC0415 - pyroute2 here

    try:
        with host_session() as host:
            links = host.links()
            names = {link.index: link.name for link in links}
            link = next((lk for lk in links if lk.name == spec.bridge), None)
            addresses: tuple[str, ...] = ()
            if link is not None:
                addresses = tuple(
                    str(a) for a in host.addresses(link.index) if not a.ip.is_link_local
                )
            routes = tuple(
                Route(str(dst), names.get(oif, "") if oif is not None else "")
                for dst, oif in host.main_routes()
            )
            return (link.kind or "unknown") if link else "", addresses, routes
    except (KernelError, OSError, CniError):
        return "", (), ()  # inspect's read of the same links says it is unreadable


def data_dir_problem(store_dir: str) -> str | None:
    """Could ADD write a reservation? The network's store dir, or (before the first ADD made
    it) the nearest directory that exists on the way, which ADD would create it in."""
    if not store_dir:
        return None
    path = store_dir
    while not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    if not os.path.isdir(path):
        return f"the IPAM data dir {store_dir} cannot be made: {path} is not a directory"
    try:
        check_writable(path)
    except CniError as e:
        return f"{e.msg} ({e.details})" if e.details else e.msg
    return None
