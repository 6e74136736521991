"""What this node's kernel must hold for the other nodes, and the changes to get there (pure).

host-gw: `<their subnet> via <their underlay address>` (the nodes share an L2 underlay).
vxlan (flannel's layout): `<their subnet> via <their VTEP address> dev <vxlan> onlink`, a
permanent neighbour `<their VTEP address> lladdr <their VTEP MAC>`, and an FDB entry
`<their VTEP MAC> dst <their underlay address>`: no flooding, no learning, no multicast.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

from cni_bridge_py.cluster.records import NodeRecord
from cni_bridge_py.record import field, record


@record(frozen=True)
class Route:
    dst: ipaddress.IPv4Network
    via: ipaddress.IPv4Address


@record(frozen=True)
class Wanted:
    routes: frozenset[Route] = frozenset()
    # vxlan only: VTEP address -> VTEP MAC, and VTEP MAC -> underlay address.
    neighbours: Mapping[ipaddress.IPv4Address, str] = field(default_factory=dict)
    fdb: Mapping[str, ipaddress.IPv4Address] = field(default_factory=dict)
    # Peers left out, with why (a record of another backend, a vxlan record without a MAC).
    skipped: tuple[str, ...] = ()


@record(frozen=True)
class Changes:
    add_routes: tuple[Route, ...] = ()
    del_routes: tuple[Route, ...] = ()
    set_neighbours: tuple[tuple[ipaddress.IPv4Address, str], ...] = ()
    del_neighbours: tuple[ipaddress.IPv4Address, ...] = ()
    set_fdb: tuple[tuple[str, ipaddress.IPv4Address], ...] = ()
    del_fdb: tuple[tuple[str, ipaddress.IPv4Address], ...] = ()

    def __bool__(self) -> bool:
        return any(
            (
                self.add_routes,
                self.del_routes,
                self.set_neighbours,
                self.del_neighbours,
                self.set_fdb,
                self.del_fdb,
            )
        )


def wanted(records: Iterable[NodeRecord], me: str, backend: str) -> Wanted:
    routes: set[Route] = set()
    neighbours: dict[ipaddress.IPv4Address, str] = {}
    fdb: dict[str, ipaddress.IPv4Address] = {}
    skipped: list[str] = []
    for peer in records:
        if peer.node == me:
            continue
        if peer.backend != backend:
            skipped.append(f"{peer.node}: backend {peer.backend}, this node runs {backend}")
            continue
        if backend == "host-gw":
            routes.add(Route(peer.subnet, peer.address))
            continue
        if not peer.vtep_mac:
            skipped.append(f"{peer.node}: no VTEP MAC in its record")
            continue
        routes.add(Route(peer.subnet, peer.vtep_address))
        neighbours[peer.vtep_address] = peer.vtep_mac
        fdb[peer.vtep_mac] = peer.address
    return Wanted(frozenset(routes), neighbours, fdb, tuple(skipped))


def diff(
    want: Wanted,
    routes: Iterable[Route],
    neighbours: Mapping[ipaddress.IPv4Address, str],
    fdb: Mapping[str, ipaddress.IPv4Address],
) -> Changes:
    """From what the kernel holds (our routes, our device's permanent neighbours and FDB) to
    `want`. A route whose destination stays but whose next hop moved is replaced in place (one
    netlink replace), not deleted first: no moment without a route."""
    have = set(routes)
    wanted_dsts = {r.dst for r in want.routes}
    return Changes(
        add_routes=tuple(sorted(want.routes - have, key=_route_key)),
        del_routes=tuple(sorted((r for r in have if r.dst not in wanted_dsts), key=_route_key)),
        set_neighbours=tuple(
            sorted((ip, mac) for ip, mac in want.neighbours.items() if neighbours.get(ip) != mac)
        ),
        del_neighbours=tuple(sorted(ip for ip in neighbours if ip not in want.neighbours)),
        set_fdb=tuple(sorted((mac, dst) for mac, dst in want.fdb.items() if fdb.get(mac) != dst)),
        del_fdb=tuple(sorted((mac, dst) for mac, dst in fdb.items() if mac not in want.fdb)),
    )


def _route_key(route: Route) -> tuple[int, int]:
    return int(route.dst.network_address), route.dst.prefixlen
