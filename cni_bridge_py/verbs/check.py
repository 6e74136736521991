"""CHECK: compare prevResult with the kernel and the store; the first mismatch is the error."""

from __future__ import annotations

from cni_bridge_py import plan
from cni_bridge_py.cluster.leased import masq_addresses
from cni_bridge_py.config import NetConf
from cni_bridge_py.errors import InvalidConfig, UnknownContainer
from cni_bridge_py.firewall.layout import MasqRequest
from cni_bridge_py.firewall.spoof_layout import SpoofCheck
from cni_bridge_py.ipam.allocator import Attachment
from cni_bridge_py.ports import Links, LinkView, Ports
from cni_bridge_py.request import Request
from cni_bridge_py.result import Interface, Result


class CheckFailed(UnknownContainer):
    """The attachment is not what prevResult says (code 3: the container's network is not
    as the runtime knows it)."""


def check(request: Request, conf: NetConf, ports: Ports) -> None:
    prev = conf.prev_result
    if prev is None:
        raise InvalidConfig("CHECK needs prevResult", "pass the result of ADD as prevResult")
    ports.check_netns(request.netns)
    _check_reservation(request, conf, ports, prev)
    bridge_entry = _find(prev, conf.bridge, sandbox=None)
    container_entry = _find(prev, request.ifname, sandbox=request.netns)
    bridge = _check_bridge(ports.host, conf, bridge_entry)
    with ports.open_netns(request.netns) as container:
        link = _check_container_link(container, request, container_entry)
        peer = _check_peer(ports.host, link, bridge)
        _check_addresses_and_routes(container, link, prev, request)
    _check_macspoofchk(request, conf, ports, peer, link)
    _check_masquerade(request, conf, ports, prev)


def _find(prev: Result, name: str, sandbox: str | None) -> Interface:
    for iface in prev.interfaces:
        if iface.name == name and (sandbox is None or iface.sandbox == sandbox):
            return iface
    where = f" with sandbox {sandbox}" if sandbox else ""
    raise CheckFailed(f"prevResult has no interface {name!r}{where}")


def _check_reservation(request: Request, conf: NetConf, ports: Ports, prev: Result) -> None:
    who = Attachment(request.container_id, request.ifname)
    ports.ipam(conf.ipam, request).check(who, [ip.address.ip for ip in prev.ips])


def _check_bridge(host: Links, conf: NetConf, expected: Interface) -> LinkView:
    bridge = host.link(conf.bridge)
    if bridge is None:
        raise CheckFailed(f"bridge {conf.bridge!r} does not exist")
    if bridge.kind != "bridge":
        raise CheckFailed(
            f"{conf.bridge!r} is not a bridge (it is a {bridge.kind or 'plain'} link)"
        )
    if expected.mac and bridge.mac != expected.mac:
        raise CheckFailed(
            f"bridge {conf.bridge} has MAC {bridge.mac}, prevResult says {expected.mac}"
        )
    return bridge


def _check_container_link(container: Links, request: Request, expected: Interface) -> LinkView:
    link = container.link(request.ifname)
    if link is None:
        raise CheckFailed(f"{request.ifname} does not exist in {request.netns}")
    if link.kind != "veth":
        raise CheckFailed(
            f"{request.ifname} in {request.netns} is not a veth ({link.kind or 'plain'})"
        )
    if expected.mac and link.mac != expected.mac:
        raise CheckFailed(f"{request.ifname} has MAC {link.mac}, prevResult says {expected.mac}")
    return link


def _check_peer(host: Links, link: LinkView, bridge: LinkView) -> LinkView:
    peer = host.link_by_index(link.peer_index) if link.peer_index else None
    if peer is None or peer.kind != "veth":
        raise CheckFailed(f"the host end of {link.name} is missing")
    if peer.master != bridge.index:
        raise CheckFailed(f"host veth {peer.name} is not attached to bridge {bridge.name}")
    return peer


def _check_addresses_and_routes(
    container: Links, link: LinkView, prev: Result, request: Request
) -> None:
    container_index = next(
        (
            i
            for i, iface in enumerate(prev.interfaces)
            if iface.name == request.ifname and iface.sandbox
        ),
        None,
    )
    ips = [ip for ip in prev.ips if ip.interface is None or ip.interface == container_index]
    present = set(container.addresses(link.index, {ip.address.version for ip in ips}))
    for ip in ips:
        if ip.address not in present:
            raise CheckFailed(f"{request.ifname} lacks address {ip.address}")
    expected = plan.kernel_routes(prev.routes, ips)
    if not expected:
        return
    # Only the families prevResult routes: each is one dump.
    routes = set(container.routes(link.index, {route.dst.version for route in expected}))
    for route in expected:
        if (route.dst, route.gateway) not in routes:
            raise CheckFailed(f"{request.ifname} lacks route {route.dst} via {route.gateway}")


def _check_macspoofchk(
    request: Request, conf: NetConf, ports: Ports, host_veth: LinkView, link: LinkView
) -> None:
    if not conf.mac_spoof_check:
        return
    checker = ports.spoof()
    if checker is None:
        raise CheckFailed("macspoofchk is set but nft is not available on this host")
    spec = SpoofCheck(request.container_id, request.ifname, host_veth.name, link.mac)
    missing = checker.missing(spec)
    if missing:
        raise CheckFailed(f"macspoofchk rule missing: {missing[0]}")


def _check_masquerade(request: Request, conf: NetConf, ports: Ports, prev: Result) -> None:
    if not conf.ip_masq or not prev.ips:
        return
    backend = ports.masq(conf.ip_masq_backend)
    if backend is None:
        raise CheckFailed("ipMasq is set but no masquerade backend is available on this host")
    missing = backend.missing(
        MasqRequest(
            conf.name,
            request.container_id,
            masq_addresses(conf, (ip.address for ip in prev.ips)),
            request.ifname,
        )
    )
    if missing:
        raise CheckFailed(f"masquerade rule missing: {missing[0]}")
