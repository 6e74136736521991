"""The node's kernel as the service sees it: the VXLAN device, and plan.py's entries read and
written through kernel/overlay.py."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from functools import partial

from cni_bridge_py.cluster.config import VXLAN_OVERHEAD, ClusterConf
from cni_bridge_py.cluster.plan import Changes, Route
from cni_bridge_py.cluster.ports import KernelState
from cni_bridge_py.kernel.errors import KernelError
from cni_bridge_py.kernel.overlay import KernelRoute, OverlaySession

log = logging.getLogger("cni-bridge-py.node")


class NodeKernel:
    def __init__(self, session: OverlaySession, conf: ClusterConf) -> None:
        self.session = session
        self.conf = conf

    def underlay(self, address: ipaddress.IPv4Address) -> tuple[int, int]:
        """(index, MTU) of the link that holds this node's underlay address."""
        for link in self.session.links():
            if any(a.ip == address for a in self.session.addresses(link.index)):
                return link.index, link.mtu
        raise KernelError(f"finding the link with address {address}", 19)

    def default_address(self) -> ipaddress.IPv4Address | None:
        """The first IPv4 address of the default route's link (the config's nodeAddress
        default)."""
        index = self.session.default_route_link()
        if index is None:
            return None
        for address in self.session.addresses(index):
            if isinstance(address, ipaddress.IPv4Interface):
                return address.ip
        return None

    # ---- vxlan ----
    def ensure_vxlan(self, local: ipaddress.IPv4Address) -> str:
        """The VXLAN device, up; its MAC (the other nodes' FDB and neighbour entries)."""
        conf = self.conf
        underlay, mtu = self.underlay(local)
        made = self.session.create_vxlan(
            conf.vxlan_device,
            vni=conf.vni,
            local=local,
            port=conf.vxlan_port,
            underlay=underlay,
            mtu=mtu - VXLAN_OVERHEAD if mtu else 0,
        )
        link = self.session.link(conf.vxlan_device)
        if link is None or link.kind != "vxlan":
            raise KernelError(f"creating VXLAN device {conf.vxlan_device}", 17, "name taken")
        if made:
            log.info("created VXLAN device %s (VNI %d, MAC %s)", link.name, conf.vni, link.mac)
        self.session.set_up(link.index, f"VXLAN device {link.name}")
        return link.mac

    def vxlan_address(self, vtep: ipaddress.IPv4Address) -> None:
        """The device holds exactly `vtep`/32 (flannel's layout: the subnet's .0)."""
        link = self.session.link(self.conf.vxlan_device)
        if link is None:
            return
        wanted = ipaddress.IPv4Interface(f"{vtep}/32")
        for address in self.session.addresses(link.index):
            if address != wanted:
                self.session.delete_address(link.index, address, link.name)
        self.session.add_address(link.index, wanted, link.name)

    def _vxlan_index(self) -> int | None:
        link = self.session.link(self.conf.vxlan_device)
        return link.index if link is not None else None

    # ---- what plan.py compares ----
    def state(self) -> KernelState:
        routes = [
            Route(r.dst, r.via)
            for r in self.session.cluster_routes()
            if r.via is not None and r.dst.subnet_of(self.conf.cluster_range)
        ]
        index = self._vxlan_index() if self.conf.backend == "vxlan" else None
        if index is None:
            return routes, {}, {}
        return routes, self.session.neighbours(index), self.session.fdb(index)

    def apply(self, changes: Changes) -> list[str]:
        """Make the changes; each failure is logged and returned, and the rest still done (the
        next sync tries again). FDB and neighbour entries go in before the routes that use
        them, and out after."""
        session = self.session
        index = self._vxlan_index() if self.conf.backend == "vxlan" else None
        work: list[Callable[[], object]] = [
            partial(self._delete_route, r) for r in changes.del_routes
        ]
        if index is not None:
            work += [partial(session.replace_fdb, index, m, d) for m, d in changes.set_fdb]
            work += [
                partial(session.replace_neighbour, index, i, m) for i, m in changes.set_neighbours
            ]
        work += [
            partial(session.replace_route, r.dst, r.via, index, onlink=index is not None)
            for r in changes.add_routes
        ]
        if index is not None:
            work += [partial(session.delete_neighbour, index, i) for i in changes.del_neighbours]
            work += [partial(session.delete_fdb, index, m, d) for m, d in changes.del_fdb]
        failures = []
        for step in work:
            failures += _try(step)
        return failures

    def _delete_route(self, route: Route) -> None:
        for held in self.session.cluster_routes():
            if held.dst == route.dst and held.via == route.via:
                self.session.delete_route(held)
                return
        self.session.delete_route(KernelRoute(route.dst, route.via, 0))


def _try(work: Callable[[], object]) -> list[str]:
    try:
        work()
    except KernelError as exc:
        log.warning("%s", exc)
        return [str(exc)]
    return []
