"""nft_netlink's parse of the kernel's rule messages (pure): rules are built here as the
kernel sends them (tests/integration compares with libnftables on real rules)."""

from __future__ import annotations

import ipaddress
import struct

from cni_bridge_py.firewall import nft_netlink as nn
from cni_bridge_py.firewall import nft_uapi as uapi
from cni_bridge_py.kernel.rtmsg import attr

NESTED = 0x8000


def _nest(kind: int, *parts: bytes) -> bytes:
    return attr(kind | NESTED, b"".join(parts))


def _be32(value: int) -> bytes:
    return struct.pack(">I", value & 0xFFFFFFFF)


def _expr(name: str, *data: bytes) -> bytes:
    return _nest(
        uapi.NFTA_LIST_ELEM,
        attr(uapi.NFTA_EXPR_NAME, name.encode() + b"\0"),
        _nest(uapi.NFTA_EXPR_DATA, *data),
    )


def _payload(offset: int, length: int) -> bytes:
    return _expr(
        "payload",
        attr(uapi.NFTA_PAYLOAD_BASE, _be32(uapi.NFT_PAYLOAD_NETWORK_HEADER)),
        attr(uapi.NFTA_PAYLOAD_OFFSET, _be32(offset)),
        attr(uapi.NFTA_PAYLOAD_LEN, _be32(length)),
    )


def _cmp(value: bytes, op: int = uapi.NFT_CMP_EQ) -> bytes:
    return _expr(
        "cmp",
        attr(uapi.NFTA_CMP_OP, _be32(op)),
        _nest(uapi.NFTA_CMP_DATA, attr(uapi.NFTA_DATA_VALUE, value)),
    )


def _bitwise(mask: bytes) -> bytes:
    return _expr("bitwise", _nest(uapi.NFTA_BITWISE_MASK, attr(uapi.NFTA_DATA_VALUE, mask)))


def _verdict(code: int, chain: str = "") -> bytes:
    parts = [attr(uapi.NFTA_VERDICT_CODE, _be32(code))]
    if chain:
        parts.append(attr(uapi.NFTA_VERDICT_CHAIN, chain.encode() + b"\0"))
    return _expr(
        "immediate", _nest(uapi.NFTA_IMMEDIATE_DATA, _nest(uapi.NFTA_DATA_VERDICT, *parts))
    )


def _rule(handle: int, *exprs: bytes) -> bytes:
    return (
        uapi.NFGENMSG.pack(2, 0, 0)
        + attr(uapi.NFTA_RULE_TABLE, b"nat\0")
        + attr(uapi.NFTA_RULE_CHAIN, b"POSTROUTING\0")
        + attr(uapi.NFTA_RULE_HANDLE, struct.pack(">Q", handle))
        + _nest(uapi.NFTA_RULE_EXPRESSIONS, *exprs)
    )


def _v4(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def test_a_jump_from_a_host_address_reads_as_nft_prints_it() -> None:
    rules = [
        _rule(7, _payload(12, 4), _cmp(_v4("10.0.0.2")), _expr("counter"), _verdict(-3, "CNI-a")),
        _rule(8, _payload(12, 4), _cmp(_v4("10.0.0.3")), _verdict(-3, "CNI-b")),
    ]
    assert nn.parse_jumps(rules, 4, "CNI-a") == [
        (7, ("ip", "saddr", "10.0.0.2", "counter", "jump", "CNI-a"))
    ]


def test_prefixes_negation_and_destinations() -> None:
    jump = _verdict(-3, "CNI-a")
    rules = [
        # iptables-nft loads only the prefix's whole bytes for a /24...
        _rule(1, _payload(12, 3), _cmp(_v4("10.0.0.0")[:3]), jump),
        # ...and masks the last one for a /23
        _rule(2, _payload(12, 3), _bitwise(b"\xff\xff\xfe"), _cmp(b"\x0a\x00\x00"), jump),
        _rule(3, _payload(12, 4), _cmp(_v4("10.0.0.6"), uapi.NFT_CMP_NEQ), jump),
        _rule(4, _payload(16, 4), _cmp(_v4("10.0.0.7")), jump),
        # a mask that is no prefix matches nothing
        _rule(5, _payload(12, 4), _bitwise(b"\xff\x00\xff\x00"), _cmp(_v4("10.0.0.0")), jump),
    ]
    assert [words[:4] for _, words in nn.parse_jumps(rules, 4, "CNI-a")] == [
        ("ip", "saddr", "10.0.0.0/24", "jump"),
        ("ip", "saddr", "10.0.0.0/23", "jump"),
        ("ip", "saddr", "!=", "10.0.0.6"),
        ("ip", "daddr", "10.0.0.7", "jump"),
        ("cmp", "jump", "CNI-a"),
    ]


def test_a_goto_another_verdict_or_a_name_that_only_contains_ours_is_no_jump() -> None:
    rules = [
        _rule(1, _payload(12, 4), _cmp(_v4("10.0.0.2")), _verdict(-4, "CNI-a")),
        _rule(2, _payload(12, 4), _cmp(_v4("10.0.0.2")), _verdict(-3, "CNI-ab")),
        _rule(3, _expr("match", attr(uapi.NFTA_XT_NAME, b"CNI-a\0")), _verdict(1)),
    ]
    assert nn.parse_jumps(rules, 4, "CNI-a") == []


def test_ipv6_fields() -> None:
    source = ipaddress.ip_address("fd00::5").packed
    rule = _rule(9, _payload(8, 16), _cmp(source), _verdict(-3, "CNI-a"))
    assert nn.parse_jumps([rule], 6, "CNI-a") == [(9, ("ip6", "saddr", "fd00::5", "jump", "CNI-a"))]


# --- expressions read once (nft_netlink._READ): the words never depend on what came before


def _counter(packets: int) -> bytes:
    return _expr(
        "counter",
        attr(uapi.NFTA_COUNTER_BYTES, struct.pack(">Q", packets * 60)),
        attr(uapi.NFTA_COUNTER_PACKETS, struct.pack(">Q", packets)),
    )


def test_an_expression_read_before_says_the_same_in_another_rule() -> None:
    load = _payload(12, 4)
    first = [_rule(1, load, _cmp(_v4("10.0.0.2")), _verdict(-3, "CNI-a"))]
    # The same load now ends its rule, and a compare follows no load: each is said alone.
    second = [_rule(2, _cmp(_v4("10.0.0.2")), load, _verdict(-3, "CNI-a"))]
    for _ in range(2):
        assert nn.parse_rules(first, 4) == [(1, ("ip", "saddr", "10.0.0.2", "jump", "CNI-a"))]
        assert nn.parse_rules(second, 4) == [(2, ("cmp", "jump", "CNI-a"))]


def test_the_same_bytes_read_for_ipv6_are_not_an_ipv4_source() -> None:
    rule = _rule(3, _payload(12, 4), _cmp(_v4("10.0.0.2")), _verdict(-3, "CNI-a"))
    assert nn.parse_rules([rule], 4)[0][1][:3] == ("ip", "saddr", "10.0.0.2")
    # In an IPv6 header, 4 bytes at 12 are the middle of the source: no address match.
    assert nn.parse_rules([rule], 6)[0][1] == ("cmp", "jump", "CNI-a")


def test_counters_are_read_each_time_and_never_kept() -> None:
    rules = [_rule(9, _counter(packets), _verdict(1)) for packets in range(200)]
    nn.parse_rules(rules[:1], 4)
    kept = len(nn._READ[4])
    assert [words for _, words in nn.parse_rules(rules, 4)] == [("counter", "accept")] * 200
    assert len(nn._READ[4]) == kept


def test_what_is_kept_stays_bounded() -> None:
    rules = [_rule(i, _verdict(-3, f"CNI-{i}")) for i in range(nn._READ_LIMIT + 100)]
    assert nn.parse_rules(rules, 4)[-1][1] == ("jump", f"CNI-{nn._READ_LIMIT + 99}")
    assert len(nn._READ[4]) <= nn._READ_LIMIT
