from __future__ import annotations

import ipaddress

from cni_bridge_py.config import NetConf
from cni_bridge_py.ipam.config import HostLocalConf
from cni_bridge_py.plan import (
    bridge_addresses,
    kernel_routes,
    parse_port_alias,
    port_alias,
    result_routes,
    with_gateways,
)
from cni_bridge_py.result import IPConfig, Route
from cni_bridge_py.verbs.container import container_sysctls, strict_keys

V4 = IPConfig(ipaddress.ip_interface("10.1.0.7/24"), ipaddress.ip_address("10.1.0.1"))
V6 = IPConfig(ipaddress.ip_interface("fd00::7/64"), ipaddress.ip_address("fd00::1"))


def conf(**kwargs: object) -> NetConf:
    return NetConf(cni_version="1.0.0", name="n", **kwargs)  # type: ignore[arg-type]


def test_is_gateway_without_ipam_gateway_uses_network_plus_one() -> None:
    bare = IPConfig(ipaddress.ip_interface("10.2.0.9/24"))
    [ip] = with_gateways([bare], conf(is_gateway=True))
    assert ip.gateway == ipaddress.ip_address("10.2.0.1") and ip.interface == 2
    [kept] = with_gateways([bare], conf())
    assert kept.gateway is None


def test_bridge_gets_each_gateway_once_with_its_prefix_only_with_is_gateway() -> None:
    assert bridge_addresses([V4, V4, V6], conf(is_gateway=True)) == [
        ipaddress.ip_interface("10.1.0.1/24"),
        ipaddress.ip_interface("fd00::1/64"),
    ]
    assert bridge_addresses([V4], conf()) == []


def test_default_gateway_adds_a_default_route_per_family_unless_ipam_has_one() -> None:
    ipam_default = Route(ipaddress.ip_network("0.0.0.0/0"))
    routes = result_routes([ipam_default], [V4, V6], conf(is_default_gateway=True))
    assert routes == [ipam_default, Route(ipaddress.ip_network("::/0"), V6.gateway)]
    assert result_routes([], [V4], conf()) == []


def test_kernel_routes_without_gw_go_via_the_family_gateway() -> None:
    routes = [Route(ipaddress.ip_network("0.0.0.0/0")), Route(ipaddress.ip_network("fd01::/64"))]
    resolved = kernel_routes(routes, [V4, V6])
    assert [(str(r.dst), str(r.gateway)) for r in resolved] == [
        ("0.0.0.0/0", "10.1.0.1"),
        ("fd01::/64", "fd00::1"),
    ]


def test_port_alias_round_trip_and_foreign_aliases() -> None:
    alias = port_alias("net-1", "abc.def", "eth0")
    assert parse_port_alias(alias) == ("net-1", "abc.def", "eth0")
    assert parse_port_alias("") is None
    assert parse_port_alias("someone else's port") is None


def test_container_sysctls_follow_the_reference() -> None:
    v4_only = dict(container_sysctls("eth0", [V4], conf()))
    assert v4_only == {
        "net/ipv4/conf/eth0/arp_notify": "1",
        "net/ipv6/conf/eth0/accept_dad": "0",
    }
    dual = dict(container_sysctls("eth0", [V4, V6], conf(enable_dad=True)))
    assert dual["net/ipv6/conf/eth0/accept_dad"] == "1"
    assert dual["net/ipv6/conf/eth0/enhanced_dad"] == "1"
    assert dual["net/ipv6/conf/eth0/disable_ipv6"] == "0"
    assert dual["net/ipv6/conf/lo/disable_ipv6"] == "0"
    assert strict_keys("eth0", [V4]) == []
    assert strict_keys("eth0", [V6]) == ["net/ipv6/conf/eth0/disable_ipv6"]


def test_host_local_conf_defaults() -> None:
    assert HostLocalConf(range_sets=()).data_dir == "/var/lib/cni/networks"
