"""From config and allocated addresses to what must exist (pure): gateway addresses on the
bridge, routes in the container, and the result a runtime receives."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from cni_bridge_py.config import NetConf
from cni_bridge_py.netaddr import IPAddress, IPInterface, IPNetwork, default_route
from cni_bridge_py.record import record
from cni_bridge_py.result import DNS, IPConfig, Route

CONTAINER_INTERFACE_INDEX = 2  # interfaces = [bridge, host veth, container]


def with_gateways(ips: Sequence[IPConfig], conf: NetConf) -> list[IPConfig]:
    """isGateway without an IPAM gateway means network+1 (the reference's calcGateways)."""
    out = []
    for ip in ips:
        gateway = ip.gateway
        if gateway is None and conf.is_gateway:
            gateway = ip.address.network.network_address + 1
        out.append(IPConfig(ip.address, gateway, CONTAINER_INTERFACE_INDEX))
    return out


def bridge_addresses(ips: Sequence[IPConfig], conf: NetConf) -> list[IPInterface]:
    """The gateway of each address, with its prefix, for the bridge (isGateway only)."""
    if not conf.is_gateway:
        return []
    seen: list[IPInterface] = []
    for ip in ips:
        if ip.gateway is not None:
            iface = ipaddress.ip_interface(f"{ip.gateway}/{ip.address.network.prefixlen}")
            if iface not in seen:
                seen.append(iface)
    return seen


def gateway_conflicts(gateway: IPInterface, present: Sequence[IPInterface]) -> list[IPInterface]:
    """The addresses of `present` (on the bridge) that `gateway` cannot sit beside: the
    reference's ensureAddr allows one IPv4 address per bridge, and IPv6 ones may not overlap.
    ADD refuses them unless forceAddress (then it replaces them); doctor reports them."""
    found = []
    for addr in present:
        if addr == gateway or addr.ip.is_link_local or addr.version != gateway.version:
            continue
        if gateway.version == 4 or addr.network.overlaps(gateway.network):
            found.append(addr)
    return found


def result_routes(
    ipam_routes: Sequence[Route], ips: Sequence[IPConfig], conf: NetConf
) -> list[Route]:
    """IPAM's routes, plus a default route per family for isDefaultGateway when IPAM gave none."""
    routes = list(ipam_routes)
    if conf.is_default_gateway:
        for ip in ips:
            family_default = default_route(ip.address.version)
            if ip.gateway is not None and not any(r.dst == family_default for r in routes):
                routes.append(Route(dst=family_default, gw=ip.gateway))
    return routes


@record(frozen=True)
class KernelRoute:
    dst: IPNetwork
    gateway: IPAddress | None


def kernel_routes(routes: Sequence[Route], ips: Sequence[IPConfig]) -> list[KernelRoute]:
    """A route without gw goes via the first gateway of its family (ipam.ConfigureIface)."""
    first_gateway: dict[int, IPAddress] = {}
    for ip in ips:
        if ip.gateway is not None:
            first_gateway.setdefault(ip.address.version, ip.gateway)
    return [KernelRoute(r.dst, r.gw or first_gateway.get(r.dst.version)) for r in routes]


def result_dns(conf: NetConf, ipam_dns: DNS) -> DNS:
    """The network's own dns replaces IPAM's when set, as in the reference."""
    return conf.dns if not conf.dns.is_empty() else ipam_dns


PORT_ALIAS_PREFIX = "cni-bridge-py"
# A DEL renames the container end to this prefix and 8 hex digits while its deletion is
# pending: within IFNAMSIZ, and no runtime asks for such a name.
RETIRED_PREFIX = "cbpgone"


def port_alias(network: str, container_id: str, ifname: str) -> str:
    """The host veth's ifalias: names are validated, so spaces separate them safely."""
    return f"{PORT_ALIAS_PREFIX} {network} {container_id} {ifname}"


def parse_port_alias(alias: str) -> tuple[str, str, str] | None:
    """(network, container ID, ifname) of a port we made, else None."""
    parts = alias.split(" ")
    if len(parts) != 4 or parts[0] != PORT_ALIAS_PREFIX:
        return None
    return parts[1], parts[2], parts[3]
