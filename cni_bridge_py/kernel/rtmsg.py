"""The rtnetlink reads (a link, a namespace's links, a link's addresses and routes) packed and
parsed with struct alone (pure, standard library only).

pyroute2 decodes every attribute of an answer into objects, the link statistics and the
bridge's ~40 options included: ~0.3 ms per link message here, against ~10 us for the kernel's
round trip. These reads happen on every CHECK and DEL (and GC, STATUS, an ADD's lookups), so
they are packed here and their answers are walked for the few attributes the verbs use;
writes still go through pyroute2's messages (rtnl.py).

Layouts are the Linux uapi headers': nlattr (linux/netlink.h), ifinfomsg and IFLA_*
(linux/rtnetlink.h, linux/if_link.h), ifaddrmsg and IFA_* (linux/if_addr.h), rtmsg and RTA_*
(linux/rtnetlink.h).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterator
from socket import AF_INET, AF_INET6

from cni_bridge_py.netaddr import IPAddress, IPInterface, IPNetwork
from cni_bridge_py.record import record

RTM_NEWLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 20, 24

_NLA = struct.Struct("=HH")  # nla_len, nla_type
# nla_type's flag bits (NLA_F_NESTED, NLA_F_NET_BYTEORDER) are not part of the type.
NLA_TYPE_MASK = 0x3FFF
_IFINFO = struct.Struct("=BxHiII")  # family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope,
#                                        type, flags
_U32 = struct.Struct("=I")
_HEADER_SIZE = 16  # nlmsghdr

# linux/if_link.h
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER = 1, 3, 4, 5, 10
IFLA_OPERSTATE, IFLA_LINKINFO, IFLA_IFALIAS = 16, 18, 20
IFLA_EXT_MASK = 29
RTEXT_FILTER_SKIP_STATS = 1 << 3
IFLA_LINK_NETNSID = 37  # a veth's peer lives in the namespace of this nsid (s32)
IFLA_INFO_KIND, IFLA_INFO_DATA, IFLA_INFO_SLAVE_DATA = 1, 2, 5
IFLA_BR_VLAN_FILTERING = 7
IFLA_BRPORT_MODE = 4  # hairpin
# IF_OPER_* by value, as `ip link` (and pyroute2) name them.
OPERSTATES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")
IFF_PROMISC = 0x100
# linux/if_addr.h
IFA_ADDRESS = 1
# linux/rtnetlink.h
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
# linux/net_namespace.h: RTM_GETNSID's attributes, after a struct rtgenmsg (padded to 4).
RTM_NEWNSID = 88
NETNSA_NSID, NETNSA_FD = 1, 3
_RTGEN = struct.Struct("=Bxxx")


@record(frozen=True)
class Link:
    index: int
    name: str
    kind: str
    mac: str
    master: int | None
    # For a veth: the peer's ifindex (in the peer's namespace).
    peer_index: int | None
    operstate: str
    mtu: int
    promisc: bool
    hairpin: bool
    vlan_filtering: bool
    alias: str
    # The nsid (as this namespace numbers it) of the namespace the peer lives in; None when
    # the peer is in this namespace. Read by `inspect` only, to find a container's side.
    link_netnsid: int | None = None


@record(frozen=True)
class Route:
    family: int
    table: int
    oif: int | None
    dst: IPNetwork
    gateway: IPAddress | None


# ---- requests: the family header and attributes after nlmsghdr ----


def link_request(*, index: int = 0, name: str = "") -> bytes:
    """RTM_GETLINK of one link, by index or by name (both empty: a dump of all), without its
    statistics: nothing reads them, and they are a third of the answer's bytes."""
    body = _IFINFO.pack(0, 0, index, 0, 0) + attr(IFLA_EXT_MASK, _U32.pack(RTEXT_FILTER_SKIP_STATS))
    return body + attr(IFLA_IFNAME, name.encode() + b"\0") if name else body


def address_request(index: int, family: int = 0) -> bytes:
    """An RTM_GETADDR dump of link `index` only (strict checking), of `family` (every family
    when 0)."""
    return _IFADDR.pack(family, 0, 0, 0, index)


def route_request(family: int, table: int, oif: int) -> bytes:
    """An RTM_GETROUTE dump of `family` in `table` through link `oif` (strict checking)."""
    return _RTMSG.pack(family, 0, 0, 0, table, 0, 0, 0, 0) + attr(RTA_OIF, _U32.pack(oif))


def route_table_request(family: int, table: int) -> bytes:
    """An RTM_GETROUTE dump of `family` in `table`, through any link (doctor's read)."""
    return _RTMSG.pack(family, 0, 0, 0, table, 0, 0, 0, 0)


def nsid_request(netns_fd: int) -> bytes:
    """RTM_GETNSID: the nsid this namespace gave the namespace open at `netns_fd`. A read:
    the kernel answers NETNSA_NSID_NOT_ASSIGNED (-1) rather than assigning one."""
    return _RTGEN.pack(0) + attr(NETNSA_FD, _U32.pack(netns_fd))


def attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes (also nf_tables' requests: nft_netlink)."""
    size = _NLA.size + len(payload)
    return _NLA.pack(size, kind) + payload + b"\0" * (-size % 4)


# ---- answers: each parser takes one whole message, nlmsghdr included ----


def each_attribute(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(type, payload start, payload end) of each attribute between `start` and `end`, in
    order, repeated types included (nf_tables' lists repeat NFTA_LIST_ELEM: nft_netlink)."""
    while start + _NLA.size <= end:
        size, kind = _NLA.unpack_from(data, start)
        if size < _NLA.size or start + size > end:
            return  # malformed: what came before stands
        yield kind & NLA_TYPE_MASK, start + _NLA.size, start + size
        start += (size + 3) & ~3


def attributes(data: bytes, start: int, end: int) -> dict[int, tuple[int, int]]:
    """The attributes between `start` and `end`: type -> (payload start, payload end), the
    first of each type. Only offsets: most of a link's attributes (statistics, per-family
    settings) are never read."""
    found: dict[int, tuple[int, int]] = {}
    for kind, payload_start, payload_end in each_attribute(data, start, end):
        found.setdefault(kind, (payload_start, payload_end))
    return found


def _nested(data: bytes, span: tuple[int, int] | None) -> dict[int, tuple[int, int]]:
    return attributes(data, *span) if span else {}


def first_attribute(data: bytes, span: tuple[int, int] | None, kind: int) -> tuple[int, int] | None:
    """(payload start, payload end) of the first attribute of type `kind` in the nest at
    `span`; the walk stops there."""
    if span:
        for found, start, end in each_attribute(data, *span):
            if found == kind:
                return start, end
    return None


def _u32(data: bytes, span: tuple[int, int] | None) -> int | None:
    return _U32.unpack_from(data, span[0])[0] if span and span[1] - span[0] >= 4 else None


def _s32(data: bytes, span: tuple[int, int] | None) -> int | None:
    value = _u32(data, span)
    return None if value is None else value - (1 << 32) if value & (1 << 31) else value


def _u8(data: bytes, span: tuple[int, int] | None) -> int:
    return data[span[0]] if span and span[1] > span[0] else 0


def _text(data: bytes, span: tuple[int, int] | None) -> str:
    if not span:
        return ""
    return data[span[0] : span[1]].split(b"\0", 1)[0].decode(errors="replace")


def _mac(data: bytes, span: tuple[int, int] | None) -> str:
    return ":".join(f"{b:02x}" for b in data[span[0] : span[1]]) if span else ""


def parse_link(data: bytes, start: int, end: int) -> Link:
    _family, _type, index, flags, _change = _IFINFO.unpack_from(data, start + _HEADER_SIZE)
    top = attributes(data, start + _HEADER_SIZE + _IFINFO.size, end)
    info = _nested(data, top.get(IFLA_LINKINFO))
    kind = _text(data, info.get(IFLA_INFO_KIND))
    # One attribute of each ~40-attribute nest, near its start: not worth a walk of it all.
    hairpin = first_attribute(data, info.get(IFLA_INFO_SLAVE_DATA), IFLA_BRPORT_MODE)
    vlan_filtering = first_attribute(data, info.get(IFLA_INFO_DATA), IFLA_BR_VLAN_FILTERING)
    operstate = _u8(data, top.get(IFLA_OPERSTATE)) if IFLA_OPERSTATE in top else None
    return Link(
        index=index,
        name=_text(data, top.get(IFLA_IFNAME)),
        kind=kind,
        mac=_mac(data, top.get(IFLA_ADDRESS)),
        master=_u32(data, top.get(IFLA_MASTER)),
        peer_index=_u32(data, top.get(IFLA_LINK)),
        operstate="" if operstate is None else _operstate(operstate),
        mtu=_u32(data, top.get(IFLA_MTU)) or 0,
        promisc=bool(flags & IFF_PROMISC),
        hairpin=bool(_u8(data, hairpin)),
        vlan_filtering=kind == "bridge" and bool(_u8(data, vlan_filtering)),
        alias=_text(data, top.get(IFLA_IFALIAS)),
        link_netnsid=_s32(data, top.get(IFLA_LINK_NETNSID)),
    )


def parse_nsid(data: bytes, start: int, end: int) -> int | None:
    """The NETNSA_NSID of an RTM_NEWNSID answer; None when it names none (-1)."""
    top = attributes(data, start + _HEADER_SIZE + _RTGEN.size, end)
    nsid = _s32(data, top.get(NETNSA_NSID))
    return None if nsid is None or nsid < 0 else nsid


def _operstate(code: int) -> str:
    return OPERSTATES[code] if code < len(OPERSTATES) else str(code)


def parse_address(data: bytes, start: int, end: int) -> tuple[int, IPInterface | None]:
    """(link index, address/prefix); None when the message carries no IFA_ADDRESS."""
    family, prefixlen, _flags, _scope, index = _IFADDR.unpack_from(data, start + _HEADER_SIZE)
    found = attributes(data, start + _HEADER_SIZE + _IFADDR.size, end).get(IFA_ADDRESS)
    address = _ip(data, found, family)
    if address is None:
        return index, None
    return index, ipaddress.ip_interface((address, prefixlen))


def parse_route(data: bytes, start: int, end: int) -> Route:
    family, dst_len, _src, _tos, table, *_rest = _RTMSG.unpack_from(data, start + _HEADER_SIZE)
    attrs = attributes(data, start + _HEADER_SIZE + _RTMSG.size, end)
    # RTA_TABLE holds tables past 255, where rtm_table says RT_TABLE_COMPAT.
    table = _u32(data, attrs.get(RTA_TABLE)) or table
    dst = _ip(data, attrs.get(RTA_DST), family)
    if dst is None:
        dst = ipaddress.ip_address(0 if family == AF_INET else "::")
    return Route(
        family=family,
        table=table,
        oif=_u32(data, attrs.get(RTA_OIF)),
        dst=ipaddress.ip_network((dst, dst_len), strict=False),
        gateway=_ip(data, attrs.get(RTA_GATEWAY), family),
    )


def _ip(data: bytes, span: tuple[int, int] | None, family: int) -> IPAddress | None:
    if not span:
        return None
    raw = data[span[0] : span[1]]
    if family == AF_INET and len(raw) == 4:
        return ipaddress.IPv4Address(raw)
    if family == AF_INET6 and len(raw) == 16:
        return ipaddress.IPv6Address(raw)
    return None
