"""host-local through the engine, the way the verbs and cni-host-local-py use it: every
host-local key, requested addresses from all three sources, runtimeConfig.ipRanges."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from cni_bridge_py import config, front
from cni_bridge_py.errors import (
    CniError,
    IncompatibleVersion,
    InvalidConfig,
    IOFailure,
    PluginUnavailable,
    TryAgainLater,
    UnknownContainer,
)
from cni_bridge_py.ipam.allocator import Attachment
from cni_bridge_py.ipam.disk import DiskStore
from cni_bridge_py.ipam.engine import HostLocal, NoIpam, ipam_for
from cni_bridge_py.ipam.interface import IpamResult
from cni_bridge_py.ipam.store import Store
from cni_bridge_py.request import Notes, Request
from cni_bridge_py.result import DNS, IPConfig, Route
from tests.doubles.store import MemoryStore

ip = ipaddress.ip_address
iface = ipaddress.ip_interface
net = ipaddress.ip_network


def network(version: str = "1.0.0", **top: Any) -> dict[str, Any]:
    ipam = {"type": "host-local", "subnet": "10.0.0.0/24", **top.pop("ipam", {})}
    return {"cniVersion": version, "name": "mynet", "type": "bridge", "ipam": ipam, **top}


def make_request(
    conf: dict[str, Any], command: str = "ADD", cid: str = "red", cni_args: str = ""
) -> Request:
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": "/var/run/netns/x",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/opt/cni/bin",
        "CNI_ARGS": cni_args,
    }
    return front.parse_request(env, json.dumps(conf).encode())


class Harness:
    def __init__(self, store: Store) -> None:
        self.store = store

    def run(
        self, conf: dict[str, Any], command: str = "ADD", cid: str = "red", cni_args: str = ""
    ) -> Any:
        request = make_request(conf, command, cid, cni_args)
        parsed = config.parse(request.config, request.cni_version, request.args, command)
        ipam = ipam_for(parsed.ipam, request, lambda _dir, _name: self.store, Notes())
        who = Attachment(request.container_id, request.ifname)
        calls = {
            "ADD": lambda: ipam.add(who),
            "DEL": lambda: ipam.delete(who),
            "CHECK": lambda: ipam.check(who),
            "GC": lambda: ipam.gc(parsed.valid_attachments),
            "STATUS": ipam.status,
        }
        return calls[command]()

    def add(self, conf: dict[str, Any], cid: str = "red", cni_args: str = "") -> IpamResult:
        got = self.run(conf, "ADD", cid, cni_args)
        assert isinstance(got, IpamResult)
        return got

    def addresses(self, conf: dict[str, Any], cid: str = "red", cni_args: str = "") -> list[str]:
        return [str(c.address) for c in self.add(conf, cid, cni_args).ips]


@pytest.fixture(params=["memory", "disk"])
def h(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    if request.param == "memory":
        return Harness(MemoryStore())
    return Harness(DiskStore(str(tmp_path), "mynet", lock_timeout=1.0))


# ---- which IPAM ----


def test_no_ipam_is_l2() -> None:
    parsed = config.parse({"cniVersion": "1.0.0", "name": "n", "type": "bridge"}, "1.0.0")
    request = make_request({"cniVersion": "1.0.0", "name": "n"})
    ipam = ipam_for(parsed.ipam, request, lambda _d, _n: MemoryStore(), Notes())
    assert isinstance(ipam, NoIpam)
    assert ipam.add(Attachment("c", "eth0")) == IpamResult()
    assert ipam.gc(set()) == []
    ipam.status()


def test_host_local_runs_in_process() -> None:
    parsed = config.parse(network(), "1.0.0")
    request = make_request(network())
    assert isinstance(
        ipam_for(parsed.ipam, request, lambda _d, _n: MemoryStore(), Notes()), HostLocal
    )


def test_other_types_are_delegated() -> None:
    from cni_bridge_py.ipam.delegate import Delegated

    parsed = config.parse({**network(), "ipam": {"type": "static"}}, "1.0.0")
    request = make_request(network())
    ipam = ipam_for(parsed.ipam, request, lambda _d, _n: MemoryStore(), Notes())
    assert isinstance(ipam, Delegated) and ipam.plugin == "static"


def test_delegating_to_the_plugin_itself_is_refused() -> None:
    # A config error, found while parsing: before anything is created.
    with pytest.raises(InvalidConfig, match="is the plugin itself"):
        config.parse({**network(), "ipam": {"type": "bridge"}}, "1.0.0")


# ---- ranges ----


def test_several_ranges_in_one_set_are_used_in_turn(h: Harness) -> None:
    conf = network(
        ipam={"subnet": None, "ranges": [[{"subnet": "10.0.0.0/30"}, {"subnet": "10.0.1.0/30"}]]}
    )
    assert h.addresses(conf, "a") == ["10.0.0.2/30"]
    assert h.addresses(conf, "b") == ["10.0.1.2/30"]
    with pytest.raises(TryAgainLater) as info:
        h.add(conf, "c")
    assert info.value.msg == (
        "failed to allocate for range 0:"
        " no IP addresses available in range set: 10.0.0.1-10.0.0.2,10.0.1.1-10.0.1.2"
    )


def test_range_start_and_end_bound_the_allocation(h: Harness) -> None:
    conf = network(ipam={"rangeStart": "10.0.0.10", "rangeEnd": "10.0.0.11"})
    assert [h.addresses(conf, f"c{i}")[0] for i in range(2)] == ["10.0.0.10/24", "10.0.0.11/24"]
    with pytest.raises(TryAgainLater, match=r"10\.0\.0\.10-10\.0\.0\.11"):
        h.add(conf, "c3")


def test_each_range_has_its_own_gateway(h: Harness) -> None:
    conf = network(
        ipam={
            "subnet": None,
            "ranges": [
                [
                    {"subnet": "10.0.0.0/24", "rangeEnd": "10.0.0.2", "gateway": "10.0.0.254"},
                    {"subnet": "10.0.1.0/24", "gateway": "10.0.1.9"},
                ]
            ],
        }
    )
    got = [h.add(conf, f"c{i}").ips[0] for i in range(3)]
    assert got == [
        IPConfig(iface("10.0.0.1/24"), ip("10.0.0.254")),
        IPConfig(iface("10.0.0.2/24"), ip("10.0.0.254")),
        IPConfig(iface("10.0.1.1/24"), ip("10.0.1.9")),
    ]


def test_a_gateway_inside_the_range_is_skipped(h: Harness) -> None:
    conf = network(ipam={"subnet": "10.0.0.0/29", "gateway": "10.0.0.3"})
    assert [h.addresses(conf, f"c{i}")[0] for i in range(3)] == [
        "10.0.0.1/29",
        "10.0.0.2/29",
        "10.0.0.4/29",
    ]


def test_dual_stack_gives_one_address_per_set(h: Harness) -> None:
    conf = network(
        ipam={"subnet": None, "ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]]}
    )
    assert h.addresses(conf) == ["10.0.0.2/24", "fd00::2/64"]


# ---- routes and dns ----


def test_routes_are_returned_verbatim_with_and_without_gw(h: Harness) -> None:
    routes = [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.0.0.254"}]
    got = h.add(network(ipam={"routes": routes}))
    assert got.routes == (
        Route(net("0.0.0.0/0")),
        Route(net("192.168.0.0/16"), ip("10.0.0.254")),
    )
    assert got.dns == DNS()


def test_resolv_conf_becomes_the_dns(h: Harness, tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    path.write_text(
        "# generated\nnameserver 10.0.0.53\nnameserver fd00::53\n"
        "domain example.com\nsearch a.example b.example\noptions ndots:2 edns0\n"
    )
    got = h.add(network(ipam={"resolvConf": str(path)}))
    assert got.dns == DNS(
        nameservers=("10.0.0.53", "fd00::53"),
        domain="example.com",
        search=("a.example", "b.example"),
        options=("ndots:2", "edns0"),
    )


def test_missing_resolv_conf_is_an_io_error_and_reserves_nothing(
    h: Harness, tmp_path: Path
) -> None:
    with pytest.raises(IOFailure) as info:
        h.add(network(ipam={"resolvConf": str(tmp_path / "nope")}))
    assert info.value.code == 5
    assert "resolvConf" in info.value.details
    assert h.store.owners() == []


# ---- requested addresses ----


@pytest.mark.parametrize(
    ("top", "cni_args"),
    [
        ({}, "IP=10.0.0.7"),
        ({}, "IP=10.0.0.7/24"),
        ({"args": {"cni": {"ips": ["10.0.0.7"]}}}, ""),
        ({"args": {"cni": {"ips": ["10.0.0.7/24"]}}}, ""),
        ({"runtimeConfig": {"ips": ["10.0.0.7"]}}, ""),
        ({"runtimeConfig": {"ips": ["10.0.0.7/24"]}}, ""),
    ],
)
def test_requested_address_from_each_source(h: Harness, top: dict[str, Any], cni_args: str) -> None:
    assert h.addresses(network(**top), cni_args=cni_args) == ["10.0.0.7/24"]


def test_requested_addresses_from_all_sources_fill_their_sets(h: Harness) -> None:
    conf = network(
        ipam={"subnet": None, "ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]]},
        args={"cni": {"ips": ["fd00::7"]}},
        runtimeConfig={"ips": ["10.0.0.7/24"]},
    )
    assert h.addresses(conf) == ["10.0.0.7/24", "fd00::7/64"]


def test_the_same_address_requested_twice_is_one_request(h: Harness) -> None:
    conf = network(runtimeConfig={"ips": ["10.0.0.7/24"]})
    assert h.addresses(conf, cni_args="IP=10.0.0.7") == ["10.0.0.7/24"]


def test_requesting_the_gateway_uses_the_reference_message(h: Harness) -> None:
    with pytest.raises(CniError) as info:
        h.add(network(runtimeConfig={"ips": ["10.0.0.1"]}))
    assert (
        info.value.msg
        == "failed to allocate for range 0: requested ip 10.0.0.1 is subnet's gateway"
    )


def test_requesting_a_taken_address_uses_the_reference_message(h: Harness) -> None:
    h.add(network(), "blue", cni_args="IP=10.0.0.9")
    with pytest.raises(CniError) as info:
        h.add(network(args={"cni": {"ips": ["10.0.0.9"]}}))
    assert info.value.msg == (
        "failed to allocate for range 0:"
        " requested IP address 10.0.0.9 is not available in range set 10.0.0.1-10.0.0.254"
    )


def test_a_request_outside_every_set_fails_and_releases(h: Harness) -> None:
    conf = network(runtimeConfig={"ips": ["10.9.9.9"]})
    with pytest.raises(CniError, match=r"failed to allocate all requested IPs: 10\.9\.9\.9"):
        h.add(conf)
    assert h.store.owners() == []


@pytest.mark.parametrize(
    "top",
    [
        {"runtimeConfig": {"ips": ["nope"]}},
        {"runtimeConfig": {"ips": [5]}},
        {"args": {"cni": {"ips": ["10.0.0.300"]}}},
        {"runtimeConfig": {"ips": "10.0.0.7"}},
    ],
)
def test_bad_requested_addresses_are_config_errors(h: Harness, top: dict[str, Any]) -> None:
    with pytest.raises(InvalidConfig) as info:
        h.add(network(**top))
    assert info.value.code == 7
    assert h.store.owners() == []


# ---- runtimeConfig.ipRanges ----


def test_ip_ranges_go_in_front_of_legacy_and_ranges(h: Harness) -> None:
    conf = network(
        ipam={"subnet": "10.1.0.0/24", "ranges": [[{"subnet": "10.2.0.0/24"}]]},
        runtimeConfig={"ipRanges": [[{"subnet": "10.3.0.0/24"}]]},
    )
    assert h.addresses(conf) == ["10.3.0.2/24", "10.1.0.2/24", "10.2.0.2/24"]


def test_ip_ranges_overlapping_the_configured_ones_are_refused(h: Harness) -> None:
    conf = network(runtimeConfig={"ipRanges": [[{"subnet": "10.0.0.0/25"}]]})
    with pytest.raises(InvalidConfig, match=r"runtimeConfig\.ipRanges.*overlaps"):
        h.add(conf)


def test_bad_ip_ranges_name_the_field(h: Harness) -> None:
    conf = network(runtimeConfig={"ipRanges": [[{"subnet": "10.3.0.1/24"}]]})
    with pytest.raises(InvalidConfig, match=r'"runtimeConfig\.ipRanges\[0\]\[0\]\.subnet"'):
        h.add(conf)


# ---- 0.1.0 / 0.2.0: one address per family ----


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0"])
def test_legacy_versions_allow_one_set_per_family(h: Harness, version: str) -> None:
    ranges = [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.1.0.0/24"}]]
    with pytest.raises(IncompatibleVersion) as info:
        h.add(network(version, ipam={"subnet": None, "ranges": ranges}))
    assert info.value.code == 1
    assert info.value.msg == (
        f"CNI version {version} does not support more than 1 address per family"
    )


def test_legacy_versions_count_ip_ranges_too(h: Harness) -> None:
    conf = network("0.2.0", runtimeConfig={"ipRanges": [[{"subnet": "10.3.0.0/24"}]]})
    with pytest.raises(IncompatibleVersion):
        h.add(conf)


def test_legacy_versions_take_one_set_of_each_family(h: Harness) -> None:
    ranges = [[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]]
    assert h.addresses(network("0.2.0", ipam={"subnet": None, "ranges": ranges})) == [
        "10.0.0.2/24",
        "fd00::2/64",
    ]


def test_0_3_0_allows_several_sets_per_family(h: Harness) -> None:
    ranges = [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.1.0.0/24"}]]
    assert len(h.add(network("0.3.0", ipam={"subnet": None, "ranges": ranges})).ips) == 2


# ---- DEL, CHECK ----


def test_delete_returns_addresses_with_their_prefix(h: Harness) -> None:
    conf = network(runtimeConfig={"ipRanges": [[{"subnet": "10.3.0.0/16"}]]})
    h.add(conf)
    assert sorted(map(str, h.run(conf, "DEL"))) == ["10.0.0.2/24", "10.3.0.2/16"]
    assert h.store.owners() == []


def test_delete_releases_even_with_a_damaged_capability(h: Harness) -> None:
    h.add(network())
    damaged = network(runtimeConfig={"ipRanges": [[{"subnet": "bogus"}]], "ips": ["x"]})
    assert [str(a) for a in h.run(damaged, "DEL")] == ["10.0.0.2/24"]


def test_delete_of_an_unknown_attachment_succeeds(h: Harness) -> None:
    assert h.run(network(), "DEL", "ghost") == []


def test_check(h: Harness) -> None:
    h.add(network())
    h.run(network(), "CHECK")
    with pytest.raises(UnknownContainer) as info:
        h.run(network(), "CHECK", "ghost")
    assert info.value.msg == "host-local: failed to find address added by container ghost"


# ---- GC, STATUS through the engine ----


def test_gc_keeps_the_valid_attachments(h: Harness) -> None:
    for cid in ("a", "b", "c"):
        h.add(network(), cid)
    gc_conf = network(
        "1.1.0", **{"cni.dev/valid-attachments": [{"containerID": "b", "ifname": "eth0"}]}
    )
    assert sorted(str(a) for a in h.run(gc_conf, "GC")) == ["10.0.0.2", "10.0.0.4"]
    assert [o.container_id for _, o in h.store.owners()] == ["b"]


def test_status(h: Harness) -> None:
    conf = network("1.1.0", ipam={"subnet": "10.0.0.0/30"})
    h.run(conf, "STATUS")
    h.add(conf)
    with pytest.raises(PluginUnavailable) as info:
        h.run(conf, "STATUS")
    assert info.value.code == 50
    assert info.value.msg == "no IP addresses available in range set 0: 10.0.0.1-10.0.0.2"
