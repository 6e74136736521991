"""The result model printed in every spec version, and read back."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from cni_bridge_py import result as results
from cni_bridge_py.errors import CniError, DecodingFailure, IncompatibleVersion
from cni_bridge_py.result import DNS, Interface, IPConfig, Result, Route
from tests.reference import CAPTURE

ALL = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

ip = ipaddress.ip_address
net = ipaddress.ip_network
iface = ipaddress.ip_interface

# The reference's ADD result for red (its MACs and veth name as captured).
RED = Result(
    interfaces=(
        Interface("refbr0", "82:5b:b0:c7:a4:dd"),
        Interface("veth8d151757", "62:b4:db:0f:94:b6"),
        Interface("eth0", "de:1e:6f:b4:ec:4c", sandbox="/var/run/netns/cnih-red"),
    ),
    ips=(IPConfig(iface("10.188.0.2/24"), ip("10.188.0.1"), interface=2),),
    routes=(Route(net("0.0.0.0/0")),),
)

DUAL = Result(
    interfaces=(
        Interface("cni0", "0a:58:0a:58:00:01", mtu=1500),
        Interface("eth0", "ce:00:00:00:00:01", sandbox="/run/netns/x", mtu=1500),
    ),
    ips=(
        IPConfig(iface("10.88.0.5/16"), ip("10.88.0.1"), interface=1),
        IPConfig(iface("2001:db8::5/64"), ip("2001:db8::1"), interface=1),
    ),
    routes=(
        Route(net("0.0.0.0/0")),
        Route(net("::/0"), ip("2001:db8::1")),
        Route(net("192.168.0.0/16"), ip("10.88.0.254"), mtu=1400, advmss=1360, priority=10),
        Route(net("172.16.0.0/12"), table=100, scope=0),
    ),
    dns=DNS(("10.88.0.1",), "example.com", ("example.com",), ("ndots:5",)),
)


def test_1_0_0_matches_the_reference_byte_for_byte() -> None:
    assert RED.to_json("1.0.0") == (CAPTURE / "add-red.stdout").read_text()


def test_1_0_0_layout() -> None:
    text = RED.to_json("1.0.0")
    assert not text.endswith("\n")
    assert text.startswith('{\n    "cniVersion": "1.0.0",\n    "interfaces": [\n        {\n')
    data = json.loads(text)
    assert list(data) == ["cniVersion", "interfaces", "ips", "routes", "dns"]
    assert list(data["interfaces"][2]) == ["name", "mac", "sandbox"]
    assert list(data["ips"][0]) == ["interface", "address", "gateway"]
    assert data["dns"] == {}


def test_empty_lists_are_dropped() -> None:
    assert json.loads(Result().to_json("1.0.0")) == {"cniVersion": "1.0.0", "dns": {}}
    assert json.loads(Result().to_json("0.4.0")) == {"cniVersion": "0.4.0", "dns": {}}


def test_ipam_result_has_no_interface_index() -> None:
    ipam = Result(ips=(IPConfig(iface("10.1.0.2/24"), ip("10.1.0.1")),))
    assert json.loads(ipam.to_json("1.0.0"))["ips"] == [
        {"address": "10.1.0.2/24", "gateway": "10.1.0.1"}
    ]
    assert json.loads(ipam.to_json("0.3.1"))["ips"] == [
        {"version": "4", "address": "10.1.0.2/24", "gateway": "10.1.0.1"}
    ]


def test_1_1_0_full() -> None:
    data = json.loads(DUAL.to_json("1.1.0"))
    assert data == {
        "cniVersion": "1.1.0",
        "interfaces": [
            {"name": "cni0", "mac": "0a:58:0a:58:00:01", "mtu": 1500},
            {"name": "eth0", "mac": "ce:00:00:00:00:01", "mtu": 1500, "sandbox": "/run/netns/x"},
        ],
        "ips": [
            {"interface": 1, "address": "10.88.0.5/16", "gateway": "10.88.0.1"},
            {"interface": 1, "address": "2001:db8::5/64", "gateway": "2001:db8::1"},
        ],
        "routes": [
            {"dst": "0.0.0.0/0"},
            {"dst": "::/0", "gw": "2001:db8::1"},
            {
                "dst": "192.168.0.0/16",
                "gw": "10.88.0.254",
                "mtu": 1400,
                "advmss": 1360,
                "priority": 10,
            },
            {"dst": "172.16.0.0/12", "table": 100, "scope": 0},
        ],
        "dns": {
            "nameservers": ["10.88.0.1"],
            "domain": "example.com",
            "search": ["example.com"],
            "options": ["ndots:5"],
        },
    }
    assert list(data["interfaces"][1]) == ["name", "mac", "mtu", "sandbox"]
    assert list(data["dns"]) == ["nameservers", "domain", "search", "options"]


def test_1_0_0_drops_the_1_1_0_keys() -> None:
    data = json.loads(DUAL.to_json("1.0.0"))
    assert data["interfaces"][1] == {
        "name": "eth0",
        "mac": "ce:00:00:00:00:01",
        "sandbox": "/run/netns/x",
    }
    assert data["routes"][2] == {"dst": "192.168.0.0/16", "gw": "10.88.0.254"}
    assert data["routes"][3] == {"dst": "172.16.0.0/12"}


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.4.0"])
def test_0_3_and_0_4_put_version_first_in_each_ip(version: str) -> None:
    text = RED.to_json(version)
    assert text == (
        "{\n"
        f'    "cniVersion": "{version}",\n'
        '    "interfaces": [\n'
        '        {\n            "name": "refbr0",\n'
        '            "mac": "82:5b:b0:c7:a4:dd"\n        },\n'
        '        {\n            "name": "veth8d151757",\n            "mac": "62:b4:db:0f:94:b6"\n'
        "        },\n"
        '        {\n            "name": "eth0",\n            "mac": "de:1e:6f:b4:ec:4c",\n'
        '            "sandbox": "/var/run/netns/cnih-red"\n        }\n'
        "    ],\n"
        '    "ips": [\n'
        '        {\n            "version": "4",\n            "interface": 2,\n'
        '            "address": "10.188.0.2/24",\n            "gateway": "10.188.0.1"\n        }\n'
        "    ],\n"
        '    "routes": [\n        {\n            "dst": "0.0.0.0/0"\n        }\n    ],\n'
        '    "dns": {}\n'
        "}"
    )
    data = json.loads(DUAL.to_json(version))
    assert [i["version"] for i in data["ips"]] == ["4", "6"]
    assert all(next(iter(i)) == "version" for i in data["ips"])
    assert all("mtu" not in i for i in data["interfaces"])


def test_0_2_0_blocks() -> None:
    dual = Result(
        interfaces=DUAL.interfaces,
        ips=DUAL.ips,
        routes=(
            Route(net("0.0.0.0/0")),
            Route(net("::/0"), ip("2001:db8::1")),
            Route(net("192.168.0.0/16"), ip("10.88.0.254")),
        ),
        dns=DNS(("10.88.0.1",)),
    )
    text = dual.to_json("0.2.0")
    data = json.loads(text)
    assert data == {
        "cniVersion": "0.2.0",
        "ip4": {
            "ip": "10.88.0.5/16",
            "gateway": "10.88.0.1",
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.88.0.254"}],
        },
        "ip6": {
            "ip": "2001:db8::5/64",
            "gateway": "2001:db8::1",
            "routes": [{"dst": "::/0", "gw": "2001:db8::1"}],
        },
        "dns": {"nameservers": ["10.88.0.1"]},
    }
    assert list(data) == ["cniVersion", "ip4", "ip6", "dns"]
    assert list(data["ip4"]) == ["ip", "gateway", "routes"]
    assert not text.endswith("\n")


def test_0_1_0_single_family_drops_the_other_familys_routes() -> None:
    data = json.loads(RED.to_json("0.1.0"))
    assert data == {
        "cniVersion": "0.1.0",
        "ip4": {"ip": "10.188.0.2/24", "gateway": "10.188.0.1", "routes": [{"dst": "0.0.0.0/0"}]},
        "dns": {},
    }
    v6_only = Result(ips=(IPConfig(iface("2001:db8::5/64")),), routes=(Route(net("0.0.0.0/0")),))
    assert json.loads(v6_only.to_json("0.1.0")) == {
        "cniVersion": "0.1.0",
        "ip6": {"ip": "2001:db8::5/64"},
        "dns": {},
    }


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0"])
def test_legacy_versions_refuse_two_addresses_of_one_family(version: str) -> None:
    two = Result(
        ips=(IPConfig(iface("10.1.0.2/24")), IPConfig(iface("10.2.0.2/24"))),
    )
    with pytest.raises(IncompatibleVersion) as info:
        two.to_json(version)
    assert info.value.code == 1
    assert (
        info.value.msg == f"CNI version {version} does not support more than 1 address per family"
    )


# ---- reading results back ----


def simple(result: Result, version: str) -> Result:
    """What survives a trip through `version`: legacy versions keep only ips, routes, dns."""
    if version in ("0.1.0", "0.2.0"):
        return Result(
            (), tuple(IPConfig(i.address, i.gateway) for i in result.ips), result.routes, result.dns
        )
    if version == "1.1.0":
        return result
    interfaces = tuple(Interface(i.name, i.mac, i.sandbox) for i in result.interfaces)
    routes = tuple(Route(r.dst, r.gw) for r in result.routes)
    return Result(interfaces, result.ips, routes, result.dns)


@pytest.mark.parametrize("version", ALL)
def test_round_trip(version: str) -> None:
    for original in (RED, DUAL if version not in ("0.1.0", "0.2.0") else RED):
        data = json.loads(original.to_json(version))
        back = results.from_dict(data)
        assert back == simple(original, version)
        assert back.to_json(version) == original.to_json(version)


def test_from_dict_defaults_the_version() -> None:
    data: dict[str, Any] = json.loads(RED.to_json("0.2.0"))
    del data["cniVersion"]
    assert results.from_dict(data, default_version="0.2.0") == simple(RED, "0.2.0")


def test_from_dict_reads_the_reference_check_prev_result() -> None:
    stdin = json.loads((CAPTURE / "check-red.stdin.json").read_text())
    assert results.from_dict(stdin["prevResult"]) == RED


@pytest.mark.parametrize(
    "data",
    [
        {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1"}]},
        {"cniVersion": "1.0.0", "ips": [{"gateway": "10.0.0.1"}]},
        {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1/24", "gateway": "x"}]},
        {"cniVersion": "1.0.0", "interfaces": [{"mac": "aa"}]},
        {"cniVersion": "1.0.0", "interfaces": {"name": "eth0"}},
        {"cniVersion": "1.0.0", "interfaces": ["eth0"]},
        {"cniVersion": "1.0.0", "routes": [{"gw": "10.0.0.1"}]},
        {"cniVersion": "1.0.0", "routes": [{"dst": "0.0.0.0/0", "mtu": "big"}]},
        {"cniVersion": "1.0.0", "dns": ["10.0.0.1"]},
        {"cniVersion": "0.2.0", "ip4": "10.0.0.2/24"},
        {"cniVersion": "0.2.0", "ip4": {"gateway": "10.0.0.1"}},
        {"cniVersion": "1.0"},
    ],
)
def test_from_dict_errors_are_decoding_failures(data: dict[str, Any]) -> None:
    with pytest.raises(DecodingFailure) as info:
        results.from_dict(data)
    assert info.value.code == 6
    assert isinstance(info.value, CniError)
