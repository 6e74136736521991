"""The findings (pure): from what was read (facts.py) to one line per problem, each with what
to do. Errors are what breaks a network now or makes its next ADD fail; warnings have no
strict rule (br_netfilter, rules in the unused iptables variant that are not ours).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from cni_bridge_py import plan
from cni_bridge_py.doctor.facts import (
    ERROR,
    WARNING,
    AgentSocket,
    Finding,
    HostFacts,
    NetworkFacts,
)
from cni_bridge_py.inspect import join
from cni_bridge_py.inspect.model import NetworkSpec, Row
from cni_bridge_py.netaddr import IPInterface

HOST = "host"
FIX = "run `cni-bridge-py doctor --fix` (GC) to remove it"
DEL = "DEL the container (its runtime's delete, or `cni-bridge-py cnitool del NET NETNS`)"
READD = "DEL and ADD the container again (CHECK fails on it too)"
# The anomalies of a live, known attachment that only its own DEL and ADD mend.
_BROKEN_LIVE = (join.NO_NAT, join.NOT_ON_BRIDGE, join.ADDRESS_MISSING, join.TWO_VETHS)
_NO_RESERVATION = (
    join.NO_RESERVATION_FOR_VETH,
    join.NO_RESERVATION_FOR_NAT,
    join.NO_RESERVATION_FOR_CACHE,
)


def exit_code(findings: Iterable[Finding], strict: bool = False) -> int:
    """1 when any error (or, with --strict, any warning) was found, else 0."""
    failing = (ERROR, WARNING) if strict else (ERROR,)
    return 1 if any(f.severity in failing for f in findings) else 0


# ---- the host ------------------------------------------------------------------------------


def host_findings(host: HostFacts, specs: Sequence[NetworkSpec]) -> list[Finding]:
    out = [
        Finding(ERROR, HOST, f"cannot read {what}", "run doctor as root")
        for what in host.unreadable
    ]
    out += forwarding(host, specs)
    out += iptables_mixed(host)
    if specs:
        out += br_netfilter(host, specs)
    if host.agent is not None:
        out += agent_socket(host.agent)
    return out


def forwarding(host: HostFacts, specs: Sequence[NetworkSpec]) -> list[Finding]:
    """isGateway and ipMasq route the containers' traffic through the host: off, nothing
    leaves the bridge. ADD turns it on (isGateway), so off means something turned it off."""
    out = []
    for version, key, value in (
        (4, "net.ipv4.ip_forward", host.ip_forward),
        (6, "net.ipv6.conf.all.forwarding", host.ipv6_forwarding),
    ):
        needing = [s.name for s in specs if _routes_family(s, version)]
        if needing and value != "1":
            out.append(
                Finding(
                    ERROR,
                    HOST,
                    f"{key} is {value if value is not None else 'unreadable'} but "
                    f"{', '.join(needing)} route through the host (isGateway/ipMasq): "
                    "containers reach nothing beyond their bridge",
                    f"sysctl -w {key}=1, and keep it on in /etc/sysctl.d/ "
                    "(something turned it off: ADD turns it on)",
                )
            )
    return out


def _routes_family(spec: NetworkSpec, version: int) -> bool:
    return (spec.is_gateway or spec.ip_masq) and any(
        rs.version == version for rs in spec.range_sets
    )


def iptables_mixed(host: HostFacts) -> list[Finding]:
    """Rules in the variant `iptables` does not point to: the kernel applies both, but the
    plugin (and GC) only see the one in use."""
    if host.iptables_in_use is None:
        return []
    out = []
    for other in host.iptables:
        if other.variant == host.iptables_in_use:
            continue
        if other.cni_chains:
            shown = ", ".join(other.cni_chains[:3]) + (" ..." if len(other.cni_chains) > 3 else "")
            out.append(
                Finding(
                    ERROR,
                    HOST,
                    f"{len(other.cni_chains)} CNI chain(s) in iptables-{other.variant} "
                    f"({shown}) while iptables is iptables-{host.iptables_in_use}: they still "
                    "rewrite packets, and the plugin neither sees nor removes them",
                    f"remove them with iptables-{other.variant} (`{other.tool} -t nat` lists "
                    "them), or switch back with `update-alternatives --config iptables`",
                )
            )
        elif other.rules:
            out.append(
                Finding(
                    WARNING,
                    HOST,
                    f"{other.rules} rule(s) in iptables-{other.variant} beside "
                    f"iptables-{host.iptables_in_use}: the kernel applies both, in no "
                    "defined order, and `iptables` shows only one",
                    f"move them to iptables-{host.iptables_in_use} (or check `{other.tool}` "
                    "if something else writes there)",
                )
            )
    return out


def br_netfilter(host: HostFacts, specs: Sequence[NetworkSpec]) -> list[Finding]:
    """No strict rule: the plugin needs neither state. Kubernetes' kube-proxy needs it on
    (a Service's DNAT for a pod on the same bridge); a FORWARD policy DROP needs it off or an
    ACCEPT for the bridge. Said as a warning so the operator knows which case they are in."""
    nf = host.br_netfilter
    on = [
        key
        for key, v in (("iptables", nf.call_iptables), ("ip6tables", nf.call_ip6tables))
        if v == "1"
    ]
    if not nf.loaded or not on:
        return []
    bridges = ", ".join(sorted({s.bridge for s in specs}))
    keys = " and ".join(f"net.bridge.bridge-nf-call-{k}" for k in on)
    return [
        Finding(
            WARNING,
            HOST,
            f"br_netfilter is loaded and {keys} {'are' if len(on) > 1 else 'is'} 1: frames "
            f"between containers on the same bridge ({bridges}) go through "
            f"{'/'.join(on)}' FORWARD chain, so a DROP there cuts containers off from each other",
            "keep it if kube-proxy or other Service NAT needs it and accept the bridge's "
            "traffic in FORWARD (`iptables -A FORWARD -i BRIDGE -o BRIDGE -j ACCEPT`); "
            "otherwise set it to 0",
        )
    ]


def agent_socket(agent: AgentSocket) -> list[Finding]:
    """The plugin hands every call to a socket at this path; the agent acts as root for its
    callers, so only root may reach it (agent/server.py makes it 0600 in a 0700 dir)."""
    out = []
    restart = "`systemctl restart cni-bridge-py-agent.socket`"
    if not agent.is_socket:
        return [
            Finding(
                ERROR,
                HOST,
                f"the agent's path {agent.path} is not a socket: every plugin call tries it",
                "remove it, or set CNI_BRIDGE_PY_AGENT to the agent's real socket",
            )
        ]
    if not agent.listening:
        out.append(
            Finding(
                ERROR,
                HOST,
                f"the agent's socket {agent.path} is stale (nothing listens: connection "
                "refused); every plugin call tries it before doing the work itself",
                f"remove it (rm {agent.path}) or start the agent ({restart})",
            )
        )
    if agent.mode & 0o777 != 0o600 or agent.uid != 0:
        out.append(
            Finding(
                ERROR,
                HOST,
                f"the agent's socket {agent.path} is not root-only (mode "
                f"{agent.mode & 0o777:04o}, owner uid {agent.uid}; want 0600, root): another "
                "user could have the agent act as root",
                f"chown root {agent.path} && chmod 0600 {agent.path}, or {restart}",
            )
        )
    if agent.dir_mode & 0o777 != 0o700 or agent.dir_uid != 0:
        directory = agent.path.rsplit("/", 1)[0] or "/"
        out.append(
            Finding(
                ERROR,
                HOST,
                f"the agent's directory {directory} is not root-only (mode "
                f"{agent.dir_mode & 0o777:04o}, owner uid {agent.dir_uid}; want 0700, root)",
                f"chown root {directory} && chmod 0700 {directory}",
            )
        )
    return out


# ---- one network ---------------------------------------------------------------------------


def network_findings(facts: NetworkFacts) -> list[Finding]:
    spec = facts.spec
    out = []
    if spec.ip_masq and spec.masq_backend == "none":
        out.append(
            Finding(
                ERROR,
                spec.name,
                "ipMasq is set but this host has no masquerade backend (no iptables, no nft): "
                "ADD fails",
                'install iptables (or nftables), or set "ipMasq": false',
            )
        )
    out += bridge_link(facts)
    out += subnet_routes(facts)
    if facts.data_dir_problem is not None:
        out.append(
            Finding(
                ERROR,
                spec.name,
                f"{facts.data_dir_problem}: ADD cannot reserve addresses",
                "make the IPAM dataDir a writable directory (or point dataDir elsewhere)",
            )
        )
    out += [
        Finding(ERROR, spec.name, p, "see the message; run doctor as root")
        for p in facts.summary.problems
        if p != join.NO_BRIDGE
    ]
    out += attachments(facts)
    return out


def bridge_link(facts: NetworkFacts) -> list[Finding]:
    spec = facts.spec
    if facts.bridge_kind and facts.bridge_kind != "bridge":
        return [
            Finding(
                ERROR,
                spec.name,
                f"the bridge name {spec.bridge!r} is taken by a link of kind {facts.bridge_kind}: "
                "ADD fails",
                f'remove that link (`ip link del {spec.bridge}`) or choose another "bridge" name',
            )
        ]
    out = []
    if not facts.bridge_kind and facts.summary.rows:
        out.append(
            Finding(
                ERROR,
                spec.name,
                f"bridge {spec.bridge} is gone but attachments remain",
                f"{DEL} for each; the next ADD makes the bridge again",
            )
        )
    wanted = gateways(spec)
    present = [_interface(a) for a in facts.bridge_addresses]
    others = [a for a in present if a not in wanted]
    for gateway in wanted:
        for addr in plan.gateway_conflicts(gateway, others):
            if spec.force_address:
                out.append(
                    Finding(
                        WARNING,
                        spec.name,
                        f"{spec.bridge} has {addr} where the gateway {gateway} goes: the next "
                        "ADD removes it (forceAddress)",
                        "move that address elsewhere if anything uses it",
                    )
                )
            else:
                out.append(
                    Finding(
                        ERROR,
                        spec.name,
                        f"{spec.bridge} has {addr} where the gateway {gateway} goes: ADD "
                        "refuses it (no forceAddress)",
                        f'`ip addr del {addr} dev {spec.bridge}`, or set "forceAddress": true',
                    )
                )
        if facts.bridge_kind == "bridge" and facts.summary.rows and gateway not in present:
            out.append(
                Finding(
                    ERROR,
                    spec.name,
                    f"the gateway {gateway} is not on {spec.bridge}: its containers have no "
                    "way out",
                    f"`ip addr add {gateway} dev {spec.bridge}` (the next ADD puts it back too)",
                )
            )
    return out


def gateways(spec: NetworkSpec) -> list[IPInterface]:
    """The addresses isGateway puts on the bridge: each range's gateway with its prefix."""
    if not spec.is_gateway:
        return []
    found: list[IPInterface] = []
    for rs in spec.range_sets:
        for r in rs.ranges:
            iface = ipaddress.ip_interface(f"{r.gateway}/{r.subnet.prefixlen}")
            if iface not in found:
                found.append(iface)
    return found


def subnet_routes(facts: NetworkFacts) -> list[Finding]:
    """A route as or more specific than the subnet, through another interface, takes the
    containers' traffic (their replies included) away from the bridge. A less specific one
    (a default route, a /16 around it) loses to the bridge's own /24."""
    spec = facts.spec
    subnets = {r.subnet for rs in spec.range_sets for r in rs.ranges}
    out = []
    for route in facts.routes:
        try:
            dst = ipaddress.ip_network(route.dst, strict=False)
        except ValueError:
            continue
        if route.dev == spec.bridge:
            continue
        for subnet in subnets:
            if (
                dst.version == subnet.version
                and dst.prefixlen >= subnet.prefixlen
                and dst.overlaps(subnet)
            ):
                out.append(
                    Finding(
                        ERROR,
                        spec.name,
                        f"route {dst} via {route.dev or '?'} covers the network's subnet "
                        f"{subnet}: traffic for its containers leaves by {route.dev} instead of "
                        f"{spec.bridge}",
                        f"`ip route del {dst} dev {route.dev}`, or give the network another subnet",
                    )
                )
    return out


def _interface(text: str) -> IPInterface:
    return ipaddress.ip_interface(text)


# ---- inspect's anomalies, and what GC would do about them -----------------------------------


def gc_valid(facts: NetworkFacts) -> frozenset[tuple[str, str]]:
    """The attachments GC keeps: libcni's cache (the runtime's own list, as a runtime's GC
    gives it), and every healthy attachment besides, so that a container added without the
    cache (a runtime that keeps none, a plugin run by hand) is never torn down by a doctor."""
    healthy = {(r.container_id, r.ifname) for r in facts.summary.rows if r.ok}
    return frozenset(facts.cached | healthy)


def gc_removes(facts: NetworkFacts, row: Row) -> list[str]:
    """What GC will remove of this row (nothing when its attachment is valid)."""
    if row.ok or (row.container_id, row.ifname) in gc_valid(facts) or not row.container_id:
        return []
    things = []
    if not any(p in row.problems for p in _NO_RESERVATION) and row.addresses:
        things.append(f"reservation {', '.join(a.split('/')[0] for a in row.addresses)}")
    if row.nat:
        things.append(f"NAT {row.nat}")
    if row.host_veth in facts.owned_veths:
        things.append(f"veth {row.host_veth}")
    return things


def attachments(facts: NetworkFacts) -> list[Finding]:
    spec = facts.spec
    out = []
    for row in facts.summary.rows:
        if row.ok:
            continue
        removed = gc_removes(facts, row)
        if removed:
            todo = FIX + f" ({', '.join(removed)})"
            if row.host_veth and row.host_veth not in facts.owned_veths:
                todo += f"; veth {row.host_veth} is not ours: `ip link del {row.host_veth}`"
        elif any(p in row.problems for p in _BROKEN_LIVE):
            todo = READD
        elif row.host_veth and row.host_veth not in facts.owned_veths and not row.container_id:
            todo = f"`ip link del {row.host_veth}` if no container uses it"
        else:
            todo = DEL
        out.append(Finding(ERROR, spec.name, f"{describe(row)}: {row.state}", todo))
    return out


def describe(row: Row) -> str:
    who = f"{row.container_id or '?'}/{row.ifname or '?'}"
    parts = [", ".join(row.addresses)] if row.addresses else []
    parts += [f"veth {row.host_veth}"] if row.host_veth else []
    parts += [f"NAT {row.nat}"] if row.nat else []
    return f"attachment {who}" + (f" ({'; '.join(parts)})" if parts else "")
