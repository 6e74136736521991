"""What host-local reads outside its "ipam" object, parsed once with the rest of the config:
the runtime's ipRanges and the requested addresses (pure)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from cni_bridge_py import config
from cni_bridge_py.errors import IncompatibleVersion, InvalidConfig
from cni_bridge_py.ipam.config import HostLocalConf

ip = ipaddress.ip_address
IPAM = {"type": "host-local", "subnet": "10.1.0.0/24", "ranges": [[{"subnet": "10.2.0.0/24"}]]}


def host_local(
    command: str = "ADD",
    ipam: dict[str, Any] | None = None,
    cni_args: dict[str, str] | None = None,
    version: str = "1.0.0",
    **extra: Any,
) -> HostLocalConf:
    data = {"cniVersion": version, "name": "net", "type": "bridge", "ipam": ipam or IPAM, **extra}
    conf = config.parse(data, version, cni_args, command)
    assert conf.ipam is not None and conf.ipam.host_local is not None
    return conf.ipam.host_local


def refused(command: str = "ADD", **extra: Any) -> InvalidConfig:
    with pytest.raises(InvalidConfig) as info:
        host_local(command, **extra)
    assert info.value.code == 7
    return info.value


def subnets(settings: HostLocalConf) -> list[str]:
    return [str(s.ranges[0].subnet) for s in settings.range_sets]


def test_without_runtime_config_the_configured_sets() -> None:
    settings = host_local()
    assert subnets(settings) == ["10.1.0.0/24", "10.2.0.0/24"]
    assert settings.requested == ()


def test_ip_ranges_come_first() -> None:
    runtime = {"ipRanges": [[{"subnet": "10.3.0.0/24"}], [{"subnet": "fd00::/64"}]]}
    assert subnets(host_local(runtimeConfig=runtime)) == [
        "10.3.0.0/24",
        "fd00::/64",
        "10.1.0.0/24",
        "10.2.0.0/24",
    ]


def test_ip_ranges_alone_when_no_range_is_configured() -> None:
    runtime = {"ipRanges": [[{"subnet": "10.199.0.0/24"}]]}
    only = host_local(ipam={"type": "host-local"}, runtimeConfig=runtime)
    assert subnets(only) == ["10.199.0.0/24"]
    # ADD with neither: "no IP ranges specified" (code 7).
    runtime_configs: list[dict[str, Any]] = [{}, {"ipRanges": []}]
    for runtime_config in runtime_configs:
        error = refused(ipam={"type": "host-local"}, runtimeConfig=runtime_config)
        assert "no IP ranges specified" in error.msg


def test_requested_order_and_duplicates() -> None:
    settings = host_local(
        cni_args={"IP": "10.1.0.7"},
        args={"cni": {"ips": ["10.2.0.9", "10.1.0.8/24"]}},
        runtimeConfig={"ips": ["10.1.0.8", "10.3.0.1/16"]},
    )
    assert settings.requested == (ip("10.1.0.7"), ip("10.2.0.9"), ip("10.1.0.8"), ip("10.3.0.1"))


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"runtimeConfig": []}, '"runtimeConfig"'),
        ({"args": {"cni": {"ips": [True]}}}, '"args.cni.ips[0]"'),
        ({"args": {"cni": "x"}}, '"args.cni"'),
        ({"runtimeConfig": {"ipRanges": [[]]}}, '"runtimeConfig.ipRanges[0]"'),
        ({"runtimeConfig": {"ipRanges": [[{"subnet": "10.9.0.0/31"}]]}}, "too small"),
        ({"runtimeConfig": {"ipRanges": [[{"subnet": "10.1.0.0/16"}]]}}, "runtimeConfig.ipRanges"),
    ],
)
def test_problems_on_add_name_the_field(extra: dict[str, Any], field: str) -> None:
    assert field in str(refused(**extra))


def test_all_problems_are_reported_at_once_with_the_bridge_keys() -> None:
    error = refused(args={"cni": {"ips": ["x"]}}, runtimeConfig={"ips": ["y"]}, mtu=5)
    assert "(and 2 more)" in error.msg
    assert "'x'" in error.details and "'y'" in error.details and '"mtu"' in error.details


def test_one_set_per_family_before_0_3_0_on_add_only() -> None:
    with pytest.raises(IncompatibleVersion) as info:
        host_local(version="0.2.0")
    assert info.value.msg == "CNI version 0.2.0 does not support more than 1 address per family"
    host_local(version="0.3.0")
    host_local("DEL", version="0.2.0")  # releasing never needs a result


@pytest.mark.parametrize("command", ["DEL", "CHECK", "GC", "STATUS"])
def test_a_release_skips_a_damaged_capability_and_ignores_requests(command: str) -> None:
    good = {"ipRanges": [[{"subnet": "10.3.0.0/24"}]]}
    assert subnets(host_local(command, runtimeConfig=good))[0] == "10.3.0.0/24"
    damaged: list[dict[str, Any]] = [
        {"ipRanges": [[{"subnet": "10.1.0.0/16"}]]},  # overlaps the configured ones
        {"ipRanges": "x"},
        {"ipRanges": [[{"subnet": "nonsense"}]], "ips": ["not an address"]},
    ]
    for runtime in damaged:
        settings = host_local(command, runtimeConfig=runtime, args={"cni": {"ips": [5]}})
        assert subnets(settings) == ["10.1.0.0/24", "10.2.0.0/24"]
        assert settings.requested == ()
    # Ranges that only the runtime gives: nothing to complain about on a release.
    runtime_only = host_local(command, ipam={"type": "host-local"}, runtimeConfig=damaged[1])
    assert runtime_only.range_sets == ()
