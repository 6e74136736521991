"""Ranges and range sets: host-local's defaults and its round-robin candidate order."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cni_bridge_py.ipam.ranges import Range, RangeError, RangeSet, check_no_overlap
from cni_bridge_py.netaddr import IPAddress

ip = ipaddress.ip_address
net = ipaddress.ip_network


def rng(
    subnet: str, start: str | None = None, end: str | None = None, gw: str | None = None
) -> Range:
    return Range.build(
        net(subnet),
        ip(start) if start else None,
        ip(end) if end else None,
        ip(gw) if gw else None,
    )


def order(range_set: RangeSet, last: str | None = None) -> list[str]:
    return [str(a) for a, _ in range_set.candidates(ip(last) if last else None)]


# ---- canonical defaults and validation ----


def test_v4_defaults() -> None:
    r = rng("10.188.0.0/24")
    assert (r.range_start, r.range_end, r.gateway) == (
        ip("10.188.0.1"),
        ip("10.188.0.254"),
        ip("10.188.0.1"),
    )
    assert str(r) == "10.188.0.1-10.188.0.254"


def test_v6_defaults_end_at_the_last_address() -> None:
    r = rng("2001:db8::/64")
    assert r.range_start == ip("2001:db8::1")
    assert r.range_end == ip("2001:db8::ffff:ffff:ffff:ffff")
    assert r.gateway == ip("2001:db8::1")


def test_smallest_subnets() -> None:
    assert str(rng("10.0.0.0/30")) == "10.0.0.1-10.0.0.2"
    assert str(rng("2001:db8::/126")) == "2001:db8::1-2001:db8::3"


@pytest.mark.parametrize(
    "subnet", ["10.0.0.0/31", "10.0.0.1/32", "2001:db8::/127", "2001:db8::/128"]
)
def test_too_small(subnet: str) -> None:
    with pytest.raises(RangeError, match="too small"):
        Range.build(net(subnet))


def test_explicit_values_are_kept() -> None:
    r = rng("10.0.0.0/16", "10.0.5.0", "10.0.5.255", "10.0.0.254")
    assert (r.range_start, r.range_end, r.gateway) == (
        ip("10.0.5.0"),
        ip("10.0.5.255"),
        ip("10.0.0.254"),
    )


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (("10.0.0.0/24", "10.0.1.1"), "rangeStart 10.0.1.1 not in network 10.0.0.0/24"),
        (("10.0.0.0/24", None, "10.0.1.1"), "rangeEnd 10.0.1.1 not in network 10.0.0.0/24"),
        (("10.0.0.0/24", "::1"), "rangeStart ::1 not in network"),
        (("10.0.0.0/24", "10.0.0.9", "10.0.0.8"), "rangeStart 10.0.0.9 is after rangeEnd 10.0.0.8"),
    ],
)
def test_invalid_ranges(args: tuple[str, ...], text: str) -> None:
    with pytest.raises(RangeError) as info:
        rng(*args)
    assert text in str(info.value)


def test_contains_is_the_start_end_interval() -> None:
    r = rng("10.0.0.0/24", "10.0.0.10", "10.0.0.20")
    assert r.contains(ip("10.0.0.10")) and r.contains(ip("10.0.0.20"))
    assert not r.contains(ip("10.0.0.9")) and not r.contains(ip("10.0.0.21"))
    assert not r.contains(ip("::a"))


def test_overlaps() -> None:
    a = rng("10.0.0.0/24", "10.0.0.10", "10.0.0.20")
    assert a.overlaps(rng("10.0.0.0/24", "10.0.0.20", "10.0.0.30"))
    assert a.overlaps(rng("10.0.0.0/24", "10.0.0.12", "10.0.0.13"))
    assert a.overlaps(rng("10.0.0.0/16"))
    assert not a.overlaps(rng("10.0.0.0/24", "10.0.0.21", "10.0.0.30"))
    assert not a.overlaps(rng("2001:db8::/64"))


def test_range_set_build() -> None:
    with pytest.raises(RangeError, match="empty"):
        RangeSet.build([])
    with pytest.raises(RangeError, match="mixed"):
        RangeSet.build([rng("10.0.0.0/24"), rng("2001:db8::/64")])
    with pytest.raises(RangeError, match="overlaps"):
        RangeSet.build([rng("10.0.0.0/24"), rng("10.0.0.0/25")])
    s = RangeSet.build([rng("10.0.0.0/24"), rng("10.0.1.0/24", "10.0.1.100", "10.0.1.110")])
    assert str(s) == "10.0.0.1-10.0.0.254,10.0.1.100-10.0.1.110"
    assert s.version == 4
    assert s.range_for(ip("10.0.1.105")) == s.ranges[1]
    assert s.range_for(ip("10.0.1.5")) is None


def test_check_no_overlap() -> None:
    a = RangeSet.build([rng("10.0.0.0/24")])
    b = RangeSet.build([rng("10.0.1.0/24")])
    c = RangeSet.build([rng("2001:db8::/64")])
    check_no_overlap([a, b, c])
    with pytest.raises(RangeError, match="overlaps"):
        check_no_overlap([a, c, RangeSet.build([rng("10.0.0.0/16")])])


# ---- candidate order ----

SMALL = RangeSet.build([rng("10.0.0.0/29")])  # .1 is the gateway; .2-.6 usable
TWO = RangeSet.build([rng("10.0.0.0/29"), rng("10.0.1.0/29", "10.0.1.4", "10.0.1.5")])


def test_fresh_order_starts_at_range_start_and_skips_the_gateway() -> None:
    assert order(SMALL) == ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]


def test_round_robin_after_last_reserved() -> None:
    assert order(SMALL, "10.0.0.3") == ["10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.2", "10.0.0.3"]


def test_last_reserved_at_range_end() -> None:
    assert order(SMALL, "10.0.0.6") == ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]


def test_last_reserved_outside_the_set_starts_fresh() -> None:
    for last in ("10.0.0.7", "10.0.0.0", "192.168.0.1", "2001:db8::1"):
        assert order(SMALL, last) == order(SMALL)


def test_last_reserved_is_the_gateway() -> None:
    assert order(SMALL, "10.0.0.1") == order(SMALL)


def test_wrapping_over_several_ranges() -> None:
    first = ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
    assert order(TWO) == [*first, "10.0.1.4", "10.0.1.5"]
    assert order(TWO, "10.0.0.4") == ["10.0.0.5", "10.0.0.6", "10.0.1.4", "10.0.1.5", *first[:3]]
    assert order(TWO, "10.0.0.6") == ["10.0.1.4", "10.0.1.5", *first]
    assert order(TWO, "10.0.1.4") == ["10.0.1.5", *first, "10.0.1.4"]
    assert order(TWO, "10.0.1.5") == [*first, "10.0.1.4", "10.0.1.5"]


def test_three_ranges_from_the_middle() -> None:
    s = RangeSet.build(
        [
            rng("10.0.0.0/24", "10.0.0.10", "10.0.0.11"),
            rng("10.0.1.0/24", "10.0.1.10", "10.0.1.11"),
            rng("10.0.2.0/24", "10.0.2.10", "10.0.2.11"),
        ]
    )
    assert order(s, "10.0.1.10") == [
        "10.0.1.11",
        "10.0.2.10",
        "10.0.2.11",
        "10.0.0.10",
        "10.0.0.11",
        "10.0.1.10",
    ]


def test_gateway_inside_an_explicit_range_is_skipped() -> None:
    s = RangeSet.build([rng("10.0.0.0/24", "10.0.0.10", "10.0.0.13", "10.0.0.12")])
    assert order(s) == ["10.0.0.10", "10.0.0.11", "10.0.0.13"]
    assert order(s, "10.0.0.11") == ["10.0.0.13", "10.0.0.10", "10.0.0.11"]


def test_v6_candidates_are_lazy() -> None:
    s = RangeSet.build([rng("2001:db8::/64")])
    it = s.candidates(ip("2001:db8::ffff:ffff:ffff:fffe"))
    assert [str(next(it)[0]) for _ in range(3)] == [
        "2001:db8::ffff:ffff:ffff:ffff",
        "2001:db8::2",
        "2001:db8::3",
    ]


def test_candidates_carry_their_range() -> None:
    assert {r for _, r in TWO.candidates(None)} == set(TWO.ranges)
    assert all(r.contains(a) for a, r in TWO.candidates(None))


# ---- property: a permutation of every usable address, rotated after last_reserved ----


@st.composite
def range_sets(draw: st.DrawFn) -> tuple[RangeSet, IPAddress | None]:
    v6 = draw(st.booleans())
    count = draw(st.integers(1, 3))
    ranges = []
    for index in draw(st.permutations(range(4)))[:count]:
        prefix = draw(st.integers(26, 30))
        subnet = net(f"2001:db8:{index}::/{prefix + 96}" if v6 else f"10.0.{index}.0/{prefix}")
        hosts = [subnet.network_address + i for i in range(1, subnet.num_addresses)]
        start, end = sorted(draw(st.lists(st.sampled_from(hosts), min_size=2, max_size=2)))
        gateway = draw(st.sampled_from(hosts))
        ranges.append(Range.build(subnet, start, end, gateway))
    range_set = RangeSet.build(ranges)
    everywhere = [a for r in ranges for a in r.subnet] + [
        ip("2001:db8::") if not v6 else ip("10.0.0.1")
    ]
    last = draw(st.none() | st.sampled_from(everywhere))
    return range_set, last


def expected_order(range_set: RangeSet, last: IPAddress | None) -> list[IPAddress]:
    walk = [(a, r) for r in range_set.ranges for a in r.subnet if r.contains(a)]
    addrs = [a for a, _ in walk]
    if last in addrs:
        cut = addrs.index(last) + 1
        walk = walk[cut:] + walk[:cut]
    return [a for a, r in walk if a != r.gateway]


@settings(database=None, max_examples=200)  # no example database in the checkout
@given(range_sets())
def test_candidates_are_a_rotated_permutation_of_the_usable_addresses(
    case: tuple[RangeSet, IPAddress | None],
) -> None:
    range_set, last = case
    got = [a for a, _ in range_set.candidates(last)]
    assert got == expected_order(range_set, last)
    usable = {a for r in range_set.ranges for a in r.addresses(r.range_start) if a != r.gateway}
    assert len(got) == len(set(got)) == len(usable)
    assert set(got) == usable
