"""ADD: bridge, veth pair, addresses, routes, gateway and masquerade, undone on any failure."""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass, field

from cni_bridge_py import plan
from cni_bridge_py.config import NetConf
from cni_bridge_py.errors import InvalidConfig, InvalidEnvironment, IOFailure
from cni_bridge_py.firewall.layout import MasqRequest
from cni_bridge_py.front import Request
from cni_bridge_py.ipam.engine import ipam_for
from cni_bridge_py.kernel.netlink import KernelError
from cni_bridge_py.netaddr import IPInterface
from cni_bridge_py.ports import Links, LinkView, Ports
from cni_bridge_py.result import DNS, Interface, IPConfig, Result, Route
from cni_bridge_py.rollback import Rollback
from cni_bridge_py.verbs import fault_point

VETH_NAME_TRIES = 10
# The reference's waits for a new bridge port to leave the blocking state.
PORT_UP_DELAYS_MS = (0, 50, 500, 1000, 1000)


@dataclass
class Attached:
    """What ADD made so far, for the later steps and the result."""

    ips: list[IPConfig] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    bridge: LinkView | None = None
    host_veth: LinkView | None = None
    container: LinkView | None = None
    ipam_dns: DNS = field(default_factory=DNS)


def add(request: Request, conf: NetConf, ports: Ports) -> Result:
    ports.check_netns(request.netns)
    done = Attached()
    with Rollback() as undo:
        # The bridge first: a name taken by another kind of link fails before IPAM is touched.
        done.bridge = ensure_bridge(ports.host, conf)
        fault_point(request, "bridge")
        _allocate(request, conf, ports, done, undo)
        fault_point(request, "ipam")
        _create_veth(request, conf, ports, done, undo)
        fault_point(request, "veth")
        _configure_container(request, ports, done)
        fault_point(request, "container")
        _configure_gateway(conf, ports, done, undo)
        fault_point(request, "gateway")
        _masquerade(request, conf, ports, done, undo)
        fault_point(request, "masq")
        _wait_port_up(ports, done)
        fault_point(request, "port")
    return _result(request, conf, ports, done)


def _allocate(
    request: Request, conf: NetConf, ports: Ports, done: Attached, undo: Rollback
) -> None:
    ipam = ipam_for(conf, ports.open_store)
    got = ipam.add(request, conf)
    undo.push("IPAM allocation", lambda: ipam.delete(request, conf))
    done.ips = plan.with_gateways(got.ips, conf)
    done.routes = plan.result_routes(got.routes, done.ips, conf)
    done.ipam_dns = got.dns


def ensure_bridge(host: Links, conf: NetConf) -> LinkView:
    """Create the bridge unless it exists; a same-named link of another kind is left alone."""
    existing = host.link(conf.bridge)
    if existing is None:
        host.create_bridge(conf.bridge, conf.mtu)  # False: a concurrent ADD was first, fine
        existing = host.link(conf.bridge)
    if existing is None:
        raise IOFailure(f"bridge {conf.bridge} vanished while being set up", "retry the ADD")
    if existing.kind != "bridge":
        raise InvalidConfig(
            f"{conf.bridge!r} already exists but is not a bridge"
            f" (it is a {existing.kind or 'plain'} link)",
            'choose another "bridge" name or remove that link',
        )
    if conf.promisc_mode and not existing.promisc:
        host.set_promisc(existing.index, f"bridge {conf.bridge}")
    if conf.is_gateway:
        # An explicitly set MAC stops the bridge following its lowest port's (cni#285).
        host.set_mac(existing.index, existing.mac, f"bridge {conf.bridge}")
    if existing.operstate in {"DOWN", ""}:
        host.set_up(existing.index, f"bridge {conf.bridge}")
    return existing


def _create_veth(
    request: Request, conf: NetConf, ports: Ports, done: Attached, undo: Rollback
) -> None:
    with ports.open_netns(request.netns) as container:
        if container.link(request.ifname) is not None:
            raise InvalidEnvironment(
                f"container namespace {request.netns} already has an interface {request.ifname!r}",
                "DEL the previous attachment or pick another CNI_IFNAME",
            )
    host = ports.host
    for _ in range(VETH_NAME_TRIES):
        name = "veth" + ports.random_suffix()
        try:
            host.create_veth(name, request.ifname, request.netns, conf.mtu, conf.runtime_mac)
        except KernelError as exc:
            if exc.errno == errno.EEXIST and host.link(name) is not None:
                continue  # our random name is taken on the host: draw again
            raise
        break
    else:
        raise IOFailure(f"no free host veth name after {VETH_NAME_TRIES} tries", "retry the ADD")
    veth = host.link(name)
    if veth is None:
        raise IOFailure(f"host veth {name} vanished after creation", "retry the ADD")
    undo.push(f"host veth {name}", lambda: host.delete_link(veth.index, f"veth {name}"))
    assert done.bridge is not None
    host.enslave(veth.index, done.bridge.index, conf.hairpin_mode, f"veth {name}")
    host.set_up(veth.index, f"veth {name}")
    done.host_veth = veth


def _configure_container(request: Request, ports: Ports, done: Attached) -> None:
    """Addresses, link up, lo up, routes. Undone by deleting the veth."""
    with ports.open_netns(request.netns) as container:
        link = container.link(request.ifname)
        if link is None:
            raise IOFailure(f"{request.ifname} vanished from {request.netns}", "retry the ADD")
        what = f"{request.ifname} in {request.netns}"
        for ip in done.ips:
            container.add_address(link.index, ip.address, what)
        container.set_up(link.index, what)
        lo = container.link("lo")
        if lo is not None:
            container.set_up(lo.index, f"lo in {request.netns}")
        for route in plan.kernel_routes(done.routes, done.ips):
            container.add_route(route.dst, route.gateway, link.index, what)
        done.container = container.link_by_index(link.index) or link


def _configure_gateway(conf: NetConf, ports: Ports, done: Attached, undo: Rollback) -> None:
    bridge = done.bridge
    assert bridge is not None
    wanted = plan.bridge_addresses(done.ips, conf)
    if not wanted:
        return
    what = f"bridge {conf.bridge}"
    present = ports.host.addresses(bridge.index)
    for gateway in wanted:
        _clear_conflicts(ports.host, bridge, gateway, present, conf)
        if ports.host.add_address(bridge.index, gateway, what):
            undo.push(f"gateway {gateway}", _undo_gateway(ports.host, bridge, gateway, done))
    families = {g.version for g in wanted}
    if 4 in families:
        ports.sysctl.write("net/ipv4/ip_forward", "1")
    if 6 in families:
        ports.sysctl.write("net/ipv6/conf/all/forwarding", "1")


def _clear_conflicts(
    host: Links, bridge: LinkView, gateway: IPInterface, present: list[IPInterface], conf: NetConf
) -> None:
    """The reference's ensureAddr: one IPv4 address per bridge; IPv6 ones may not overlap."""
    for addr in present:
        if addr == gateway or addr.ip.is_link_local or addr.version != gateway.version:
            continue
        if gateway.version == 4 or addr.network.overlaps(gateway.network):
            if not conf.force_address:
                raise InvalidConfig(
                    f"{conf.bridge!r} already has an IP address different from {gateway}: {addr}",
                    'set "forceAddress": true to replace it, or use another bridge',
                )
            host.delete_address(bridge.index, addr, f"bridge {conf.bridge}")


def _undo_gateway(
    host: Links, bridge: LinkView, gateway: IPInterface, done: Attached
) -> Callable[[], None]:
    def undo() -> None:
        # Only when our veth is the bridge's last port: others may already route through it.
        veth = done.host_veth
        ports_left = [
            link for link in _bridge_ports(host, bridge) if veth is None or link != veth.index
        ]
        if not ports_left:
            host.delete_address(bridge.index, gateway, f"bridge {bridge.name}")

    return undo


def _bridge_ports(host: Links, bridge: LinkView) -> list[int]:
    return [link.index for link in host.links() if link.master == bridge.index]


def _masquerade(
    request: Request, conf: NetConf, ports: Ports, done: Attached, undo: Rollback
) -> None:
    if not conf.ip_masq or not done.ips:
        return
    backend = ports.masq(conf.ip_masq_backend)
    if backend is None:
        raise IOFailure(
            "ipMasq is set but no iptables is available on this host",
            "install iptables (nft or legacy), or set ipMasq false",
        )
    masq = MasqRequest(
        conf.name, request.container_id, tuple(ip.address for ip in done.ips), request.ifname
    )
    backend.setup(masq)
    undo.push("masquerade rules", lambda: backend.teardown(masq))


def _wait_port_up(ports: Ports, done: Attached) -> None:
    veth = done.host_veth
    assert veth is not None
    state = ports.host.wait_operstate_up(veth.index, f"veth {veth.name}", PORT_UP_DELAYS_MS)
    if state != "UP":
        raise IOFailure(
            f"bridge port in error state: {state}", f"host veth {veth.name} never came up"
        )


def _result(request: Request, conf: NetConf, ports: Ports, done: Attached) -> Result:
    assert done.bridge is not None and done.host_veth is not None and done.container is not None
    # MACs are read last: the bridge's may have changed when the port joined.
    bridge = ports.host.link_by_index(done.bridge.index) or done.bridge
    host_veth = ports.host.link_by_index(done.host_veth.index) or done.host_veth
    return Result(
        interfaces=(
            Interface(bridge.name, bridge.mac),
            Interface(host_veth.name, host_veth.mac),
            Interface(request.ifname, done.container.mac, sandbox=request.netns),
        ),
        ips=tuple(done.ips),
        routes=tuple(done.routes),
        dns=plan.result_dns(conf, done.ipam_dns),
    )
