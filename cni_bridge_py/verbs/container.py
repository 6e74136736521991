"""The container side of ADD: sysctls, addresses, link state and routes inside CNI_NETNS."""

from __future__ import annotations

from collections.abc import Sequence

from cni_bridge_py import plan
from cni_bridge_py.config import NetConf
from cni_bridge_py.errors import IOFailure
from cni_bridge_py.ports import Links, LinkView, Ports
from cni_bridge_py.request import Request
from cni_bridge_py.result import IPConfig, Route


def container_sysctls(ifname: str, ips: Sequence[IPConfig], conf: NetConf) -> list[tuple[str, str]]:
    """The reference's settings before addresses go on (pure); none in L2 mode, where the
    reference leaves the kernel's defaults."""
    if not ips:
        return []
    conf_dir = f"net/ipv6/conf/{ifname}"
    settings = [(f"net/ipv4/conf/{ifname}/arp_notify", "1")]
    if conf.enable_dad:
        settings += [(f"{conf_dir}/enhanced_dad", "1"), (f"{conf_dir}/accept_dad", "1")]
    else:
        # No duplicate address detection: the address is usable at once (addresses come
        # from IPAM, which already guarantees uniqueness).
        settings.append((f"{conf_dir}/accept_dad", "0"))
    if any(ip.address.version == 6 for ip in ips):
        settings += [
            ("net/ipv6/conf/lo/disable_ipv6", "0"),
            (f"{conf_dir}/disable_ipv6", "0"),
            (f"{conf_dir}/keep_addr_on_down", "1"),
        ]
    return settings


def strict_keys(ifname: str, ips: Sequence[IPConfig]) -> list[str]:
    """Sysctls whose failure must fail ADD: IPv6 cannot work without them."""
    if not any(ip.address.version == 6 for ip in ips):
        return []
    return [f"net/ipv6/conf/{ifname}/disable_ipv6"]


def configure_container(
    request: Request,
    conf: NetConf,
    ports: Ports,
    container: Links,
    *,
    ips: Sequence[IPConfig],
    routes: Sequence[Route],
) -> LinkView:
    """Addresses, link up (unless disableContainerInterface), lo up, routes, through the
    ADD's session in the namespace. Undone by deleting the veth."""
    settings = container_sysctls(request.ifname, ips, conf)
    if settings:
        ports.netns_sysctl(request.netns, settings, strict_keys(request.ifname, ips))
    link = container.link(request.ifname)
    if link is None:
        raise IOFailure(f"{request.ifname} vanished from {request.netns}", "retry the ADD")
    what = f"{request.ifname} in {request.netns}"
    for ip in ips:
        container.add_address(link.index, ip.address, what)
    if not conf.disable_container_interface:
        container.set_up(link.index, what)
    lo = container.link("lo")
    if lo is not None and lo.operstate != "UNKNOWN":
        container.set_up(lo.index, f"lo in {request.netns}")
    for route in plan.kernel_routes(routes, ips):
        container.add_route(route.dst, route.gateway, link.index, what)
    # Its MAC is all the result needs, and bringing it up does not change it.
    return link
