"""DEL: idempotent and complete, whatever is already gone.

The container's interface (when its namespace still exists), its reservation, its
macspoofchk rules and its masquerade rules are removed. Rules are named from the network,
container ID and ifname alone, so they are found even when the namespace is gone or
CNI_NETNS is empty (the reference leaks them then). The bridge and its address are shared
and never touched.
"""

from __future__ import annotations

from collections.abc import Callable

from cni_bridge_py import plan
from cni_bridge_py.config import NetConf
from cni_bridge_py.faults import fault_point
from cni_bridge_py.firewall.layout import MasqRequest
from cni_bridge_py.firewall.spoof_layout import SpoofCheck
from cni_bridge_py.ipam.allocator import Attachment
from cni_bridge_py.netaddr import IPInterface
from cni_bridge_py.ports import Links, LinkView, Ports
from cni_bridge_py.request import Request


def delete(request: Request, conf: NetConf, ports: Ports) -> None:
    addresses = _remove_container_interface(request, conf, ports)
    ports.steps.mark("link")
    fault_point(request, "del-link")
    released = _release(request, conf, ports)
    ports.steps.mark("ipam")
    fault_point(request, "del-ipam")
    if conf.mac_spoof_check:
        _remove_macspoofchk(request, ports)
    if conf.ip_masq:
        _remove_masquerade(request, conf, ports, addresses, released)
    ports.steps.mark("firewall")


def _remove_container_interface(request: Request, conf: NetConf, ports: Ports) -> list[IPInterface]:
    """Deleting the container end deletes its host peer too; returns the addresses it had."""
    if not request.netns or not ports.netns_exists(request.netns):
        return []
    # Also refuses the plugin's own namespace: DEL there would remove a host interface.
    ports.check_netns(request.netns)
    with ports.open_netns(request.netns) as container:
        link = container.link(request.ifname)
        if link is None:
            _delete_retired(request, conf, ports, container)
            return []
        if link.kind != "veth":
            # Not ours to remove: we only ever put a veth there.
            return []
        peer = _host_peer(ports, link)
        if _owned_by_another(request, conf, peer):
            return []
        addresses = [a for a in container.addresses(link.index) if not a.ip.is_link_local]
        if peer is None or peer.kind != "veth":
            container.delete_link(link.index, f"{request.ifname} in {request.netns}")
            return addresses
        # Down now (off the bridge at once: its address is released below) and renamed, so
        # that a new ADD of this attachment finds its name free in whichever agent process
        # serves it; the deletion of the pair, the slow part, may finish after the answer
        # (Background).
        retired = plan.RETIRED_PREFIX + ports.random_suffix()
        container.retire(link.index, retired, f"{request.ifname} in {request.netns}")
        ports.background.later(
            (request.container_id, request.ifname), _deleter(ports, peer.index, peer.name)
        )
        return addresses


def _delete_retired(request: Request, conf: NetConf, ports: Ports, container: Links) -> None:
    """A pair an earlier DEL of this attachment retired (renamed) but did not delete: the
    agent process that held its deletion died first. Its host end still names the attachment."""
    attachment = (conf.name, request.container_id, request.ifname)
    for link in container.links():
        if not (link.name.startswith(plan.RETIRED_PREFIX) and link.kind == "veth"):
            continue
        peer = _host_peer(ports, link)
        if peer is not None and plan.parse_port_alias(peer.alias) == attachment:
            container.delete_link(link.index, f"{link.name} in {request.netns}")


def _deleter(ports: Ports, index: int, name: str) -> Callable[[], object]:
    def delete() -> None:
        # Deleting the host end deletes the container end with it.
        with ports.open_host() as host:
            host.delete_link(index, f"host veth {name}")

    return delete


def _host_peer(ports: Ports, link: LinkView) -> LinkView | None:
    """The host end of a container's veth (None when it has no peer there)."""
    return ports.host.link_by_index(link.peer_index) if link.peer_index else None


def _owned_by_another(request: Request, conf: NetConf, peer: LinkView | None) -> bool:
    """The host end of a veth we made names its attachment (plan.port_alias). One naming
    another network or container is not this DEL's to remove: a runtime that reused an ifname
    across networks would otherwise take down the other network's interface. A veth without
    our alias (made by the reference, or before aliases) is removed as the reference does."""
    owner = plan.parse_port_alias(peer.alias) if peer is not None else None
    return owner is not None and owner != (conf.name, request.container_id, request.ifname)


def _release(request: Request, conf: NetConf, ports: Ports) -> list[IPInterface]:
    who = Attachment(request.container_id, request.ifname)
    return ports.ipam(conf.ipam, request).delete(who)


def _remove_macspoofchk(request: Request, ports: Ports) -> None:
    """Found by container ID and ifname alone, so also without a netns. Unlike the reference
    (which only logs), a failure fails DEL: a leftover jump matches the host veth name, which
    a later container may be given."""
    checker = ports.spoof()
    if checker is not None:  # without nft there is nothing we could have installed
        checker.teardown(SpoofCheck(request.container_id, request.ifname))


def _remove_masquerade(
    request: Request,
    conf: NetConf,
    ports: Ports,
    addresses: list[IPInterface],
    released: list[IPInterface],
) -> None:
    sources = {a.ip: a for a in [*addresses, *released]}
    if conf.prev_result is not None:
        sources.update({ip.address.ip: ip.address for ip in conf.prev_result.ips})
    # With no address known (no netns, no reservation), every rule of the container goes.
    masq = MasqRequest(conf.name, request.container_id, tuple(sources.values()), request.ifname)
    # Both backends: the config may have switched, or the reference may have written them.
    for backend in ports.masq_all():
        backend.teardown(masq)
