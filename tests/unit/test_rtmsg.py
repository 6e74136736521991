"""kernel/rtmsg.py: the rtnetlink reads packed and their answers parsed, on messages built
here the way the kernel lays them out (the root suites read real ones)."""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from socket import AF_INET, AF_INET6
from typing import TypeVar

from cni_bridge_py.kernel import rtmsg

NLA_F_NESTED = 0x8000
T = TypeVar("T")


def attr(kind: int, payload: bytes) -> bytes:
    size = 4 + len(payload)
    return struct.pack("=HH", size, kind) + payload + b"\0" * (-size % 4)


def nested(kind: int, *attrs: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(attrs))


def u32(value: int) -> bytes:
    return struct.pack("=I", value)


def message(mtype: int, body: bytes) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), mtype, 0, 1, 0) + body


def parse(parser: Callable[[bytes, int, int], T], data: bytes) -> T:
    return parser(data, 0, len(data))


def link_message(index: int, flags: int, *attrs: bytes) -> bytes:
    return message(
        rtmsg.RTM_NEWLINK, struct.pack("=BxHiII", 0, 1, index, flags, 0) + b"".join(attrs)
    )


def test_a_bridge_port_veth() -> None:
    data = link_message(
        7,
        0x1 | rtmsg.IFF_PROMISC,
        attr(rtmsg.IFLA_IFNAME, b"veth0123abcd\0"),
        attr(rtmsg.IFLA_MTU, u32(1500)),
        attr(rtmsg.IFLA_ADDRESS, bytes.fromhex("0a58c0a80f02")),
        attr(rtmsg.IFLA_OPERSTATE, b"\x06"),
        attr(rtmsg.IFLA_LINK, u32(2)),
        attr(rtmsg.IFLA_MASTER, u32(3)),
        attr(rtmsg.IFLA_IFALIAS, b"cni-bridge-py net c eth0\0"),
        attr(99, b"\xff" * 40),  # statistics and the like: skipped
        nested(
            rtmsg.IFLA_LINKINFO,
            attr(rtmsg.IFLA_INFO_KIND, b"veth\0"),
            attr(4, b"bridge\0"),  # IFLA_INFO_SLAVE_KIND
            nested(rtmsg.IFLA_INFO_SLAVE_DATA, attr(rtmsg.IFLA_BRPORT_MODE, b"\x01")),
        ),
    )
    assert parse(rtmsg.parse_link, data) == rtmsg.Link(
        index=7,
        name="veth0123abcd",
        kind="veth",
        mac="0a:58:c0:a8:0f:02",
        master=3,
        peer_index=2,
        operstate="UP",
        mtu=1500,
        promisc=True,
        hairpin=True,
        vlan_filtering=False,
        alias="cni-bridge-py net c eth0",
    )


def test_a_bridge_with_vlan_filtering_and_a_plain_link() -> None:
    bridge = link_message(
        3,
        0,
        attr(rtmsg.IFLA_IFNAME, b"cni0\0"),
        nested(
            rtmsg.IFLA_LINKINFO,
            attr(rtmsg.IFLA_INFO_KIND, b"bridge\0"),
            nested(rtmsg.IFLA_INFO_DATA, attr(rtmsg.IFLA_BR_VLAN_FILTERING, b"\x01")),
        ),
        attr(rtmsg.IFLA_OPERSTATE, b"\x02"),
    )
    found = parse(rtmsg.parse_link, bridge)
    assert (found.kind, found.vlan_filtering, found.operstate, found.master) == (
        "bridge",
        True,
        "DOWN",
        None,
    )
    plain = parse(rtmsg.parse_link, link_message(1, 0, attr(rtmsg.IFLA_IFNAME, b"lo\0")))
    assert (plain.kind, plain.mac, plain.operstate, plain.mtu, plain.peer_index) == (
        "",
        "",
        "",
        0,
        None,
    )


def test_a_truncated_attribute_ends_the_walk() -> None:
    data = link_message(4, 0, attr(rtmsg.IFLA_IFNAME, b"eth0\0")) + struct.pack("=HH", 40, 1)
    data = struct.pack("=I", len(data)) + data[4:]
    assert parse(rtmsg.parse_link, data).name == "eth0"


def test_addresses_of_both_families() -> None:
    v4 = message(
        rtmsg.RTM_NEWADDR,
        struct.pack("=BBBBI", AF_INET, 24, 0, 0, 5)
        + attr(rtmsg.IFA_ADDRESS, bytes([10, 251, 0, 2]))
        + attr(2, bytes([10, 251, 0, 2])),  # IFA_LOCAL
    )
    v6 = message(
        rtmsg.RTM_NEWADDR,
        struct.pack("=BBBBI", AF_INET6, 64, 0, 0, 5)
        + attr(rtmsg.IFA_ADDRESS, ipaddress.IPv6Address("fd00::2").packed),
    )
    bare = message(rtmsg.RTM_NEWADDR, struct.pack("=BBBBI", AF_INET, 24, 0, 0, 5))
    assert parse(rtmsg.parse_address, v4) == (5, ipaddress.ip_interface("10.251.0.2/24"))
    assert parse(rtmsg.parse_address, v6) == (5, ipaddress.ip_interface("fd00::2/64"))
    assert parse(rtmsg.parse_address, bare) == (5, None)


def route_message(family: int, dst_len: int, table: int, *attrs: bytes) -> bytes:
    header = struct.pack("=BBBBBBBBI", family, dst_len, 0, 0, table, 3, 0, 1, 0)
    return message(rtmsg.RTM_NEWROUTE, header + b"".join(attrs))


def test_routes() -> None:
    default = route_message(
        AF_INET, 0, 254, attr(rtmsg.RTA_OIF, u32(5)), attr(rtmsg.RTA_GATEWAY, bytes([10, 0, 0, 1]))
    )
    assert parse(rtmsg.parse_route, default) == rtmsg.Route(
        family=AF_INET,
        table=254,
        oif=5,
        dst=ipaddress.ip_network("0.0.0.0/0"),
        gateway=ipaddress.ip_address("10.0.0.1"),
    )
    # A table past 255 is in RTA_TABLE (rtm_table says RT_TABLE_COMPAT, 252).
    v6 = route_message(
        AF_INET6,
        64,
        252,
        attr(rtmsg.RTA_TABLE, u32(1000)),
        attr(rtmsg.RTA_DST, ipaddress.IPv6Address("fd00::").packed),
    )
    found = parse(rtmsg.parse_route, v6)
    assert (found.table, found.dst, found.gateway, found.oif) == (
        1000,
        ipaddress.ip_network("fd00::/64"),
        None,
        None,
    )


def test_requests_are_packed_as_the_headers_say() -> None:
    no_stats = attr(rtmsg.IFLA_EXT_MASK, u32(rtmsg.RTEXT_FILTER_SKIP_STATS))
    assert rtmsg.link_request(index=7) == struct.pack("=BxHiII", 0, 0, 7, 0, 0) + no_stats
    by_name = rtmsg.link_request(name="cni0")
    assert (
        by_name[16:] == no_stats + struct.pack("=HH", 9, rtmsg.IFLA_IFNAME) + b"cni0\0" + b"\0" * 3
    )
    assert rtmsg.address_request(5) == struct.pack("=BBBBI", 0, 0, 0, 0, 5)
    route = rtmsg.route_request(AF_INET6, 254, 5)
    assert route == struct.pack("=BBBBBBBBI", AF_INET6, 0, 0, 0, 254, 0, 0, 0, 0) + attr(
        rtmsg.RTA_OIF, u32(5)
    )
