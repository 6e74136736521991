"""host-local's allocation rules, over the in-memory store and the on-disk one."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from cni_bridge_py.errors import CniError, TryAgainLater
from cni_bridge_py.ipam import allocator
from cni_bridge_py.ipam.allocator import Attachment
from cni_bridge_py.ipam.disk import DiskStore
from cni_bridge_py.ipam.ranges import Range, RangeSet
from cni_bridge_py.ipam.store import Store
from cni_bridge_py.result import IPConfig
from tests.doubles.store import MemoryStore

ip = ipaddress.ip_address
net = ipaddress.ip_network

V4 = RangeSet.build([Range.build(net("10.0.0.0/29"))])  # .1 gateway, .2-.6 usable
V6 = RangeSet.build([Range.build(net("2001:db8::/126"))])  # ::1 gateway, ::2-::3 usable
RED = Attachment("red", "eth0")
BLUE = Attachment("blue", "eth0")


@pytest.fixture(params=["memory", "disk"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "memory":
        return MemoryStore()
    return DiskStore(str(tmp_path), "mynet", lock_timeout=1.0)


def addresses(configs: list[IPConfig]) -> list[str]:
    return [str(c.address) for c in configs]


def test_sequential_allocation(store: Store) -> None:
    got = [
        addresses(allocator.allocate(store, [V4], Attachment(f"c{i}", "eth0")))[0] for i in range(5)
    ]
    assert got == ["10.0.0.2/29", "10.0.0.3/29", "10.0.0.4/29", "10.0.0.5/29", "10.0.0.6/29"]


def test_result_carries_prefix_and_gateway(store: Store) -> None:
    (config,) = allocator.allocate(store, [V4], RED)
    assert config == IPConfig(ipaddress.ip_interface("10.0.0.2/29"), ip("10.0.0.1"))
    assert config.interface is None


def test_exhaustion_is_code_11_naming_the_range_set(store: Store) -> None:
    for i in range(5):
        allocator.allocate(store, [V4], Attachment(f"c{i}", "eth0"))
    with pytest.raises(TryAgainLater) as info:
        allocator.allocate(store, [V4], RED)
    assert info.value.code == 11
    assert info.value.msg == (
        "failed to allocate for range 0: no IP addresses available in range set: 10.0.0.1-10.0.0.6"
    )


def test_exhaustion_message_lists_every_range(store: Store) -> None:
    two = RangeSet.build(
        [
            Range.build(net("10.0.0.0/24"), ip("10.0.0.10"), ip("10.0.0.10")),
            Range.build(net("10.0.1.0/24"), ip("10.0.1.10"), ip("10.0.1.10")),
        ]
    )
    allocator.allocate(store, [two], BLUE)
    allocator.allocate(store, [two], Attachment("green", "eth0"))
    with pytest.raises(TryAgainLater) as info:
        allocator.allocate(store, [two], RED)
    assert info.value.msg == (
        "failed to allocate for range 0:"
        " no IP addresses available in range set: 10.0.0.10-10.0.0.10,10.0.1.10-10.0.1.10"
    )


def test_round_robin_does_not_reuse_a_freed_address_at_once(store: Store) -> None:
    allocator.allocate(store, [V4], RED)
    allocator.allocate(store, [V4], BLUE)
    assert allocator.release(store, RED) == [ip("10.0.0.2")]
    assert addresses(allocator.allocate(store, [V4], Attachment("c", "eth0"))) == ["10.0.0.4/29"]


def test_freed_addresses_come_back_after_wrapping(store: Store) -> None:
    for i in range(5):
        allocator.allocate(store, [V4], Attachment(f"c{i}", "eth0"))
    allocator.release(store, Attachment("c2", "eth0"))  # 10.0.0.4
    assert addresses(allocator.allocate(store, [V4], RED)) == ["10.0.0.4/29"]


def test_duplicate_allocation_is_refused_and_keeps_the_first(store: Store) -> None:
    allocator.allocate(store, [V4], RED)
    with pytest.raises(CniError) as info:
        allocator.allocate(store, [V4], RED)
    assert (
        info.value.msg == "failed to allocate for range 0:"
        " 10.0.0.2 has been allocated to red, duplicate allocation is not allowed"
    )
    assert allocator.owned(store, RED) == [ip("10.0.0.2")]


def test_same_container_other_ifname_is_a_new_attachment(store: Store) -> None:
    allocator.allocate(store, [V4], RED)
    assert addresses(allocator.allocate(store, [V4], Attachment("red", "net1"))) == ["10.0.0.3/29"]


def test_duplicate_check_is_per_range_set(store: Store) -> None:
    other = RangeSet.build([Range.build(net("10.0.1.0/29"))])
    allocator.allocate(store, [V4], RED)
    assert addresses(allocator.allocate(store, [other], RED)) == ["10.0.1.2/29"]


# ---- requested addresses ----


def test_requested_ip(store: Store) -> None:
    configs = allocator.allocate(store, [V4], RED, [ip("10.0.0.5")])
    assert configs == [IPConfig(ipaddress.ip_interface("10.0.0.5/29"), ip("10.0.0.1"))]
    # Like host-local, a requested address moves the round-robin cursor.
    assert addresses(allocator.allocate(store, [V4], BLUE)) == ["10.0.0.6/29"]


def test_requested_gateway_is_refused(store: Store) -> None:
    with pytest.raises(CniError) as info:
        allocator.allocate(store, [V4], RED, [ip("10.0.0.1")])
    assert (
        info.value.msg
        == "failed to allocate for range 0: requested ip 10.0.0.1 is subnet's gateway"
    )
    assert allocator.owned(store, RED) == []


def test_requested_taken_address_is_refused(store: Store) -> None:
    allocator.allocate(store, [V4], BLUE, [ip("10.0.0.3")])
    with pytest.raises(CniError) as info:
        allocator.allocate(store, [V4], RED, [ip("10.0.0.3")])
    assert info.value.msg == (
        "failed to allocate for range 0:"
        " requested IP address 10.0.0.3 is not available in range set 10.0.0.1-10.0.0.6"
    )
    assert allocator.owned(store, BLUE) == [ip("10.0.0.3")]


@pytest.mark.parametrize("outside", ["192.168.0.5", "10.0.0.7", "2001:db8::2"])
def test_requested_address_outside_every_set(store: Store, outside: str) -> None:
    with pytest.raises(CniError) as info:
        allocator.allocate(store, [V4], RED, [ip(outside)])
    assert info.value.msg == f"failed to allocate all requested IPs: {outside}"
    # Refused before anything is reserved: not even the round-robin cursor moved.
    assert allocator.owned(store, RED) == []
    assert store.last_reserved(0) is None


def test_two_requested_addresses_for_one_set_fail_before_reserving(store: Store) -> None:
    with pytest.raises(CniError) as info:
        allocator.allocate(store, [V4], RED, [ip("10.0.0.3"), ip("10.0.0.4")])
    assert info.value.msg == "failed to allocate all requested IPs: 10.0.0.4"
    assert allocator.owned(store, RED) == [] and store.last_reserved(0) is None


def test_requested_addresses_go_to_their_sets(store: Store) -> None:
    configs = allocator.allocate(store, [V4, V6], RED, [ip("2001:db8::3"), ip("10.0.0.6")])
    assert addresses(configs) == ["10.0.0.6/29", "2001:db8::3/126"]
    assert [str(c.gateway) for c in configs] == ["10.0.0.1", "2001:db8::1"]


def test_requested_in_one_set_and_free_in_the_other(store: Store) -> None:
    configs = allocator.allocate(store, [V4, V6], RED, [ip("2001:db8::3")])
    assert addresses(configs) == ["10.0.0.2/29", "2001:db8::3/126"]


# ---- several range sets: all or nothing ----


def test_one_address_per_set(store: Store) -> None:
    configs = allocator.allocate(store, [V4, V6], RED)
    assert addresses(configs) == ["10.0.0.2/29", "2001:db8::2/126"]
    assert sorted(allocator.owned(store, RED), key=str) == [ip("10.0.0.2"), ip("2001:db8::2")]


def test_second_set_exhausted_releases_the_first(store: Store) -> None:
    allocator.allocate(store, [V6], Attachment("a", "eth0"))
    allocator.allocate(store, [V6], Attachment("b", "eth0"))
    with pytest.raises(TryAgainLater):
        allocator.allocate(store, [V4, V6], RED)
    assert allocator.owned(store, RED) == []
    # The v4 address went back to the pool.
    assert addresses(allocator.allocate(store, [V4], BLUE))[0] in ("10.0.0.2/29", "10.0.0.3/29")


def test_second_set_gateway_request_releases_the_first(store: Store) -> None:
    with pytest.raises(CniError):
        allocator.allocate(store, [V4, V6], RED, [ip("2001:db8::1")])
    assert allocator.owned(store, RED) == []


# ---- release ----


def test_release(store: Store) -> None:
    allocator.allocate(store, [V4, V6], RED)
    allocator.allocate(store, [V4], BLUE)
    assert sorted(allocator.release(store, RED), key=str) == [ip("10.0.0.2"), ip("2001:db8::2")]
    assert allocator.owned(store, RED) == []
    assert allocator.owned(store, BLUE) == [ip("10.0.0.3")]


def test_release_is_idempotent(store: Store) -> None:
    assert allocator.release(store, RED) == []
    allocator.allocate(store, [V4], RED)
    allocator.release(store, RED)
    assert allocator.release(store, RED) == []


def test_release_matches_the_ifname(store: Store) -> None:
    allocator.allocate(store, [V4], RED)
    assert allocator.release(store, Attachment("red", "net1")) == []
    assert allocator.owned(store, RED) == [ip("10.0.0.2")]
