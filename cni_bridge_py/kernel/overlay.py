"""The node service's kernel work: routes to other nodes' subnets, one VXLAN device with its
FDB and neighbour entries (kernel/rtnl.py's socket, pyroute2's message classes).

Every route we add carries our own protocol number (RTPROT_CLUSTER), so listing "ours" is a
filter on the dump and a route someone else made is never removed. Changes are idempotent
(create-or-replace), so a service restarted half-way just converges.
"""

from __future__ import annotations

import errno
import ipaddress
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from socket import AF_INET
from typing import Any

from pyroute2.netlink.rtnl.ndmsg import ndmsg

from cni_bridge_py.kernel import rtnl
from cni_bridge_py.kernel.netlink import (
    CREATE_NEW,
    RT_SCOPE_UNIVERSE,
    RT_TABLE_MAIN,
    RTN_UNICAST,
    NetlinkSession,
    _dump,
    _linkinfo,
    _netlink,
)
from cni_bridge_py.kernel.rtmsg import Link
from cni_bridge_py.kernel.rtnl import (
    NLM_F_ACK,
    NLM_F_CREATE,
    RTM_DELNEIGH,
    RTM_DELROUTE,
    RTM_GETNEIGH,
    RTM_GETROUTE,
    RTM_NEWLINK,
    RTM_NEWNEIGH,
    RTM_NEWROUTE,
    RtnlSocket,
    link_message,
    route_message,
)

rtnl.register_decoder(RTM_NEWNEIGH, ndmsg)

# Our routes' rtm_protocol: `ip route` shows "proto 211". Unassigned in iproute2's rt_protos.
RTPROT_CLUSTER = 211
NLM_F_REPLACE = 0x100
# Create, or replace what is there (`ip route replace`, `bridge fdb replace`).
REPLACE = NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
RTNH_F_ONLINK = 0x4  # the gateway is on the link even though no address says so
AF_BRIDGE = 7
NUD_PERMANENT = 0x80
NTF_SELF = 0x2  # an FDB entry of the device itself (the VXLAN device's remote table)


@dataclass(frozen=True)
class KernelRoute:
    dst: ipaddress.IPv4Network
    via: ipaddress.IPv4Address | None
    oif: int


def _neighbour_message(**fields: Any) -> Any:
    msg = ndmsg()
    for key, value in fields.items():
        msg[key] = value
    return msg


class OverlaySession(NetlinkSession):
    """NetlinkSession plus what the node service needs."""

    # ---- routes ----
    def cluster_routes(self) -> list[KernelRoute]:
        """The main table's IPv4 routes with our protocol number."""
        query = route_message(family=AF_INET, table=RT_TABLE_MAIN, proto=RTPROT_CLUSTER)
        out = []
        for msg in _dump(f"listing routes in {self.where}", self.sock, query, RTM_GETROUTE):
            table = msg.get_attr("RTA_TABLE") or msg["table"]
            if table != RT_TABLE_MAIN or msg["proto"] != RTPROT_CLUSTER:
                continue
            dst = ipaddress.IPv4Network(f"{msg.get_attr('RTA_DST') or '0.0.0.0'}/{msg['dst_len']}")
            gw = msg.get_attr("RTA_GATEWAY")
            via = ipaddress.IPv4Address(gw) if gw else None
            out.append(KernelRoute(dst, via, int(msg.get_attr("RTA_OIF") or 0)))
        return out

    def replace_route(
        self,
        dst: ipaddress.IPv4Network,
        via: ipaddress.IPv4Address,
        oif: int | None = None,
        *,
        onlink: bool = False,
    ) -> None:
        attrs: list[tuple[str, Any]] = [
            ("RTA_DST", str(dst.network_address)),
            ("RTA_GATEWAY", str(via)),
        ]
        if oif is not None:
            attrs.append(("RTA_OIF", oif))
        msg = route_message(
            family=AF_INET,
            dst_len=dst.prefixlen,
            table=RT_TABLE_MAIN,
            proto=RTPROT_CLUSTER,
            scope=RT_SCOPE_UNIVERSE,
            type=RTN_UNICAST,
            flags=RTNH_F_ONLINK if onlink else 0,
            attrs=attrs,
        )
        with _netlink(f"routing {dst} via {via} in {self.where}"):
            self.sock.request(msg, RTM_NEWROUTE, REPLACE)

    def delete_route(self, route: KernelRoute) -> None:
        attrs: list[tuple[str, Any]] = [("RTA_DST", str(route.dst.network_address))]
        if route.oif:
            attrs.append(("RTA_OIF", route.oif))
        msg = route_message(
            family=AF_INET,
            dst_len=route.dst.prefixlen,
            table=RT_TABLE_MAIN,
            proto=RTPROT_CLUSTER,
            attrs=attrs,
        )
        # ESRCH: already gone (its device went away, or another run removed it).
        with _netlink(f"removing route {route.dst} in {self.where}", tolerate=(errno.ESRCH,)):
            self.sock.request(msg, RTM_DELROUTE)

    def route_to(self, address: ipaddress.IPv4Address) -> int | None:
        """The link the kernel would send to `address` through (the underlay), or None."""
        query = route_message(family=AF_INET, dst_len=32, attrs=[("RTA_DST", str(address))])
        with _netlink(f"looking up the route to {address}", tolerate=(errno.ENETUNREACH,)):
            answers = self.sock.request(query, RTM_GETROUTE, 0)
            return int(answers[0].get_attr("RTA_OIF")) if answers else None
        return None

    def default_route_link(self) -> int | None:
        query = route_message(family=AF_INET, table=RT_TABLE_MAIN)
        for msg in _dump(f"listing routes in {self.where}", self.sock, query, RTM_GETROUTE):
            if msg["dst_len"] == 0 and (msg.get_attr("RTA_TABLE") or msg["table"]) == 254:
                oif = msg.get_attr("RTA_OIF")
                if oif:
                    return int(oif)
        return None

    # ---- the VXLAN device ----
    def create_vxlan(
        self,
        name: str,
        *,
        vni: int,
        local: ipaddress.IPv4Address,
        port: int,
        underlay: int,
        mtu: int,
    ) -> bool:
        """False when a link of that name exists already (a restarted service keeps its
        device, and so its MAC, which the other nodes have in their tables)."""
        data = {
            "IFLA_VXLAN_ID": vni,
            "IFLA_VXLAN_LOCAL": str(local),
            "IFLA_VXLAN_LINK": underlay,
            "IFLA_VXLAN_PORT": port,
            # Remote MACs come from etcd, never from flooding and learning.
            "IFLA_VXLAN_LEARNING": 0,
        }
        attrs: list[tuple[str, Any]] = [("IFLA_IFNAME", name), _linkinfo("vxlan", **data)]
        if mtu:
            attrs.append(("IFLA_MTU", mtu))
        with _netlink(f"creating VXLAN device {name}", tolerate=(errno.EEXIST,)):
            self.sock.request(link_message(attrs=attrs), RTM_NEWLINK, CREATE_NEW)
            return True
        return False

    # ---- neighbours (ARP) and FDB entries of a device ----
    def neighbours(self, index: int) -> dict[ipaddress.IPv4Address, str]:
        """Permanent IPv4 neighbours of link `index`: address -> MAC."""
        msgs = self._neigh_dump(AF_INET, index)
        return {
            ipaddress.IPv4Address(m.get_attr("NDA_DST")): str(m.get_attr("NDA_LLADDR"))
            for m in msgs
            if m["state"] & NUD_PERMANENT and m.get_attr("NDA_LLADDR")
        }

    def replace_neighbour(self, index: int, ip: ipaddress.IPv4Address, mac: str) -> None:
        msg = _neighbour_message(
            family=AF_INET,
            ifindex=index,
            state=NUD_PERMANENT,
            attrs=[("NDA_DST", str(ip)), ("NDA_LLADDR", mac)],
        )
        with _netlink(f"setting neighbour {ip} at {mac}"):
            self.sock.request(msg, RTM_NEWNEIGH, REPLACE)

    def delete_neighbour(self, index: int, ip: ipaddress.IPv4Address) -> None:
        msg = _neighbour_message(family=AF_INET, ifindex=index, attrs=[("NDA_DST", str(ip))])
        with _netlink(f"removing neighbour {ip}", tolerate=(errno.ENOENT,)):
            self.sock.request(msg, RTM_DELNEIGH)

    def fdb(self, index: int) -> dict[str, ipaddress.IPv4Address]:
        """The VXLAN device's remote entries: MAC -> the remote node's underlay address."""
        out = {}
        for m in self._neigh_dump(AF_BRIDGE, index):
            mac, dst = m.get_attr("NDA_LLADDR"), m.get_attr("NDA_DST")
            if mac and dst and mac != "00:00:00:00:00:00":
                out[str(mac)] = ipaddress.IPv4Address(dst)
        return out

    def replace_fdb(self, index: int, mac: str, dst: ipaddress.IPv4Address) -> None:
        msg = _neighbour_message(
            family=AF_BRIDGE,
            ifindex=index,
            state=NUD_PERMANENT,
            flags=NTF_SELF,
            attrs=[("NDA_LLADDR", mac), ("NDA_DST", str(dst))],
        )
        with _netlink(f"setting FDB entry {mac} -> {dst}"):
            self.sock.request(msg, RTM_NEWNEIGH, REPLACE)

    def delete_fdb(self, index: int, mac: str, dst: ipaddress.IPv4Address) -> None:
        msg = _neighbour_message(
            family=AF_BRIDGE,
            ifindex=index,
            flags=NTF_SELF,
            attrs=[("NDA_LLADDR", mac), ("NDA_DST", str(dst))],
        )
        with _netlink(f"removing FDB entry {mac}", tolerate=(errno.ENOENT,)):
            self.sock.request(msg, RTM_DELNEIGH)

    def _neigh_dump(self, family: int, index: int) -> list[Any]:
        # Strict dumps filter neighbours by the NDA_IFINDEX attribute (a header ifindex
        # matches nothing), FDB entries by the header's ifindex.
        query = (
            _neighbour_message(family=family, ifindex=index)
            if family == AF_BRIDGE
            else _neighbour_message(family=family, attrs=[("NDA_IFINDEX", index)])
        )
        doing = f"listing neighbours of link #{index} in {self.where}"
        return [m for m in _dump(doing, self.sock, query, RTM_GETNEIGH) if m["ifindex"] == index]


__all__ = ["KernelRoute", "Link", "OverlaySession", "overlay_session"]


@contextmanager
def overlay_session() -> Iterator[OverlaySession]:
    """The node service's session, in its own network namespace."""
    with RtnlSocket() as sock:
        yield OverlaySession(sock, "this namespace")
