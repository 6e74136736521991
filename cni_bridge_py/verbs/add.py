"""ADD: bridge, veth pair, addresses, routes, gateway and masquerade, undone on any failure."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable

from cni_bridge_py import plan, vlan
from cni_bridge_py.cluster.leased import masq_addresses
from cni_bridge_py.config import NetConf
from cni_bridge_py.errors import InvalidEnvironment, IOFailure
from cni_bridge_py.faults import fault_point
from cni_bridge_py.firewall.layout import MasqRequest
from cni_bridge_py.firewall.spoof_layout import SpoofCheck
from cni_bridge_py.ipam.allocator import Attachment
from cni_bridge_py.ipam.interface import Ipam
from cni_bridge_py.kernel.errors import KernelError
from cni_bridge_py.ports import Links, LinkView, PortFlags, Ports
from cni_bridge_py.record import field, record
from cni_bridge_py.request import Request
from cni_bridge_py.result import DNS, Interface, IPConfig, Result, Route
from cni_bridge_py.verbs.bridge import (
    configure_gateway,
    ensure_bridge,
    other_bridge_addresses,
    pin_mac,
)
from cni_bridge_py.verbs.container import configure_container
from cni_bridge_py.verbs.rollback import Rollback

VETH_NAME_TRIES = 10
# The reference's waits for a new bridge port to leave the blocking state.
PORT_UP_DELAYS_MS = (0, 50, 500, 1000, 1000)


@record
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
    # A DEL of this attachment may still be deleting its veth in the background.
    ports.background.settle((request.container_id, request.ifname))
    done = Attached()
    # One netlink session in the container for the whole ADD: each costs a fork and setns.
    with ports.open_netns(request.netns) as container, Rollback(ports.notes) as undo:
        # What a request can be refused for is checked before anything is made.
        ipam = ports.ipam(conf.ipam, request)
        ipam.ready()
        _interface_name_free(request, container)
        # The bridge first: a name taken by another kind of link fails before IPAM is touched.
        done.bridge = ensure_bridge(ports, conf, undo)
        ports.steps.mark("bridge")
        fault_point(request, "bridge")
        _allocate(request, conf, ipam, done, undo)
        ports.steps.mark("ipam")
        fault_point(request, "ipam")
        done.host_veth = _create_veth(
            request, conf, ports, container, bridge=done.bridge, undo=undo
        )
        pin_mac(ports, conf, done.bridge)
        ports.steps.mark("veth")
        fault_point(request, "veth")
        _macspoofchk(request, conf, ports, done.host_veth, undo)
        # Every check a config or an environment can fail has passed (the interface name
        # with the veth, the bridge's other addresses here): the rules, which a failed ADD
        # would leave as an empty nat table, may be written beside the next two steps.
        beside = other_bridge_addresses(conf, ports, done.bridge, done.ips)
        masquerade = _start_masquerade(request, conf, ports, done, undo)
        done.container = configure_container(
            request, conf, ports, container, ips=done.ips, routes=done.routes
        )
        ports.steps.mark("container")
        fault_point(request, "container")
        configure_gateway(
            conf, ports, done.bridge, done.ips, present=beside, port=done.host_veth, undo=undo
        )
        ports.steps.mark("gateway")
        fault_point(request, "gateway")
        masquerade()
        ports.steps.mark("masquerade")
        fault_point(request, "masq")
        if not conf.disable_container_interface:
            _wait_port_up(ports, done.host_veth)
        ports.steps.mark("port")
        fault_point(request, "port")
    return _result(request, conf, ports, done)


def _interface_name_free(request: Request, container: Links) -> None:
    if container.link(request.ifname) is not None:
        raise InvalidEnvironment(
            f"container namespace {request.netns} already has an interface {request.ifname!r}",
            "DEL the previous attachment or pick another CNI_IFNAME",
        )


def _allocate(request: Request, conf: NetConf, ipam: Ipam, done: Attached, undo: Rollback) -> None:
    who = Attachment(request.container_id, request.ifname)
    got = ipam.add(who)
    undo.push("IPAM allocation", lambda: ipam.delete(who))
    done.ips = plan.with_gateways(got.ips, conf)
    done.routes = plan.result_routes(got.routes, done.ips, conf)
    done.ipam_dns = got.dns


def _create_veth(
    request: Request,
    conf: NetConf,
    ports: Ports,
    container: Links,
    *,
    bridge: LinkView,
    undo: Rollback,
) -> LinkView:
    """The pair, the container end created directly inside the namespace (its name checked
    free before the bridge); the host end enslaved (hairpin, isolation, VLANs) and up."""
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
    ports.sysctl.write(f"net/ipv6/conf/{name}/accept_ra", "0", required=False)
    what = f"veth {name}"
    # The alias says who owns this port, readable by GC after the runtime forgot the container.
    alias = plan.port_alias(conf.name, request.container_id, request.ifname)
    flags = PortFlags(conf.hairpin_mode, conf.port_isolation)
    host.attach_port(veth.index, bridge.index, flags, alias, what)
    # VLANs can be set only on a port, so after attaching it.
    host.set_port_vlans(
        veth.index, vlan.port_ops(conf.vlan, conf.vlan_trunk, conf.preserve_default_vlan), what
    )
    return veth


def _macspoofchk(
    request: Request, conf: NetConf, ports: Ports, host_veth: LinkView, undo: Rollback
) -> None:
    """Before the container end comes up: frames from it must carry its own MAC."""
    if not conf.mac_spoof_check:
        return
    checker = ports.spoof()
    if checker is None:
        raise IOFailure(
            "macspoofchk is set but nft is not available on this host",
            "install nftables, or set macspoofchk false",
        )
    with ports.open_netns(request.netns) as container:
        link = container.link(request.ifname)
    if link is None:
        raise IOFailure(f"{request.ifname} vanished from {request.netns}", "retry the ADD")
    spec = SpoofCheck(request.container_id, request.ifname, host_veth.name, link.mac)
    checker.setup(spec)
    undo.push("macspoofchk rules", lambda: checker.teardown(spec))


def _start_masquerade(
    request: Request, conf: NetConf, ports: Ports, done: Attached, undo: Rollback
) -> Callable[[], None]:
    """The rules depend only on the network, the container and its addresses: they are
    written while the container and the gateway are configured; the returned function waits
    for them. Undone (after that wait) like every other step."""
    if not conf.ip_masq or not done.ips:
        return lambda: None
    backend = ports.masq(conf.ip_masq_backend)
    if backend is None:
        wanted = conf.ip_masq_backend or "iptables or nftables"
        raise IOFailure(
            f"ipMasq is set but no masquerade backend ({wanted}) is available on this host",
            "install iptables or nftables, or set ipMasq false",
        )
    addresses = masq_addresses(conf, (ip.address for ip in done.ips))
    masq = MasqRequest(conf.name, request.container_id, addresses, request.ifname)
    written = ports.alongside(lambda: backend.setup(masq))

    def undo_masquerade() -> None:
        with contextlib.suppress(Exception):
            written()  # its own failure is the ADD's error, raised where it is awaited
        backend.teardown(masq)

    undo.push("masquerade rules", undo_masquerade)
    return written


def _wait_port_up(ports: Ports, veth: LinkView) -> None:
    state = ports.host.wait_operstate_up(veth.index, f"veth {veth.name}", PORT_UP_DELAYS_MS)
    if state != "UP":
        raise IOFailure(
            f"bridge port in error state: {state}", f"host veth {veth.name} never came up"
        )


def _result(request: Request, conf: NetConf, ports: Ports, done: Attached) -> Result:
    assert done.bridge is not None and done.host_veth is not None and done.container is not None
    # Read again, as the reference does: an unpinned MAC may have followed the new port, and
    # the kernel brings a link's operstate up to date on a read of that link (a bridge's
    # carrier-on waits otherwise in linkwatch, up to a second, as "UNKNOWN").
    bridge = ports.host.link_by_index(done.bridge.index) or done.bridge
    return Result(
        interfaces=(
            Interface(bridge.name, bridge.mac),
            Interface(done.host_veth.name, done.host_veth.mac),
            Interface(request.ifname, done.container.mac, sandbox=request.netns),
        ),
        ips=tuple(done.ips),
        routes=tuple(done.routes),
        dns=plan.result_dns(conf, done.ipam_dns),
    )
