"""The range sets and requested addresses of one host-local request (pure)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from cni_bridge_py.errors import IncompatibleVersion, InvalidConfig
from cni_bridge_py.fields import Fields
from cni_bridge_py.ipam.config import HostLocalConf, parse_host_local
from cni_bridge_py.ipam.effective import effective, known_range_sets

ip = ipaddress.ip_address
net = ipaddress.ip_network


def settings(**ipam: Any) -> HostLocalConf:
    problems: list[str] = []
    parsed = parse_host_local(Fields(ipam, "ipam", problems))
    assert problems == []
    return parsed


BASE = settings(subnet="10.1.0.0/24", ranges=[[{"subnet": "10.2.0.0/24"}]])


def subnets(range_sets: Any) -> list[str]:
    return [str(s.ranges[0].subnet) for s in range_sets]


def test_without_runtime_config_the_configured_sets() -> None:
    plan = effective(BASE, {}, "1.0.0")
    assert plan.range_sets == BASE.range_sets
    assert plan.requested == ()


def test_ip_ranges_come_first() -> None:
    config = {
        "runtimeConfig": {"ipRanges": [[{"subnet": "10.3.0.0/24"}], [{"subnet": "fd00::/64"}]]}
    }
    assert subnets(effective(BASE, config, "1.0.0").range_sets) == [
        "10.3.0.0/24",
        "fd00::/64",
        "10.1.0.0/24",
        "10.2.0.0/24",
    ]


def test_ip_ranges_alone_when_no_range_is_configured() -> None:
    problems: list[str] = []
    runtime_only = parse_host_local(Fields({"type": "host-local"}, "ipam", problems), True)
    assert problems == [] and runtime_only.range_sets == ()
    config = {"runtimeConfig": {"ipRanges": [[{"subnet": "10.199.0.0/24"}]]}}
    assert subnets(effective(runtime_only, config, "1.0.0").range_sets) == ["10.199.0.0/24"]
    # ADD with neither: "no IP ranges specified" (code 7).
    neithers: list[dict[str, Any]] = [{}, {"runtimeConfig": {"ipRanges": []}}]
    for neither in neithers:
        with pytest.raises(InvalidConfig) as info:
            effective(runtime_only, neither, "1.0.0")
        assert "no IP ranges specified" in info.value.msg


def test_requested_order_and_duplicates() -> None:
    config = {
        "args": {"cni": {"ips": ["10.2.0.9", "10.1.0.8/24"]}},
        "runtimeConfig": {"ips": ["10.1.0.8", "10.3.0.1/16"]},
    }
    plan = effective(BASE, config, "1.0.0", (ip("10.1.0.7"),))
    assert plan.requested == (ip("10.1.0.7"), ip("10.2.0.9"), ip("10.1.0.8"), ip("10.3.0.1"))


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"runtimeConfig": []}, '"runtimeConfig"'),
        ({"args": {"cni": {"ips": [True]}}}, '"args.cni.ips[0]"'),
        ({"args": {"cni": "x"}}, '"args.cni"'),
        ({"runtimeConfig": {"ipRanges": [[]]}}, '"runtimeConfig.ipRanges[0]"'),
        ({"runtimeConfig": {"ipRanges": [[{"subnet": "10.9.0.0/31"}]]}}, "too small"),
    ],
)
def test_problems_name_the_field(config: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidConfig) as info:
        effective(BASE, config, "1.0.0")
    assert field in str(info.value)


def test_all_problems_are_reported_at_once() -> None:
    config = {"args": {"cni": {"ips": ["x"]}}, "runtimeConfig": {"ips": ["y"]}}
    with pytest.raises(InvalidConfig) as info:
        effective(BASE, config, "1.0.0")
    assert "(and 1 more)" in info.value.msg
    assert "'x'" in info.value.details and "'y'" in info.value.details


def test_one_set_per_family_before_0_3_0() -> None:
    with pytest.raises(IncompatibleVersion) as info:
        effective(BASE, {}, "0.2.0")
    assert info.value.msg == "CNI version 0.2.0 does not support more than 1 address per family"
    effective(BASE, {}, "0.3.0")


def test_known_range_sets_skip_a_damaged_capability() -> None:
    good = {"runtimeConfig": {"ipRanges": [[{"subnet": "10.3.0.0/24"}]]}}
    assert subnets(known_range_sets(BASE, good)) == ["10.3.0.0/24", "10.1.0.0/24", "10.2.0.0/24"]
    overlapping = {"runtimeConfig": {"ipRanges": [[{"subnet": "10.1.0.0/16"}]]}}
    assert known_range_sets(BASE, overlapping) == BASE.range_sets
    broken = {"runtimeConfig": {"ipRanges": "x"}}
    assert known_range_sets(BASE, broken) == BASE.range_sets
    assert known_range_sets(BASE, {"runtimeConfig": 5}) == BASE.range_sets
