"""ADD, CHECK and DEL through the installed executable, for every result version, asserting
the kernel state (links, addresses, routes, bridge ports, sysctls, NAT rules) and the
host-local files after each step."""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.support.netns import Namespace, NamespaceFactory
from tests.support.plugin import Plugin, nat_rules_for, reservations, store_files

VERSIONS = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
GATEWAY = "192.168.15.5"
SUBNET = "192.168.15.0/24"
DEFAULT_ROUTE = {"dst": "0.0.0.0/0", "gw": GATEWAY}


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def host_veths(host: Namespace) -> list[dict[str, Any]]:
    return host.links("veth")


def the_host_veth(host: Namespace) -> dict[str, Any]:
    veths = host_veths(host)
    assert len(veths) == 1, [v["ifname"] for v in veths]
    return veths[0]


def default_routes(ns: Namespace) -> list[dict[str, Any]]:
    return [r for r in ns.routes() if r["dst"] == "default"]


def assert_result_shape(result: dict[str, Any], version: str, netns: str, bridge: str) -> None:
    address = "192.168.15.1/24"
    if version_tuple(version) < (0, 3, 0):
        assert result == {
            "cniVersion": version,
            "ip4": {"ip": address, "gateway": GATEWAY, "routes": [DEFAULT_ROUTE]},
            "dns": {},
        }
        return
    assert result["cniVersion"] == version
    assert list(result) == ["cniVersion", "interfaces", "ips", "routes", "dns"]
    names = [i["name"] for i in result["interfaces"]]
    assert names[0] == bridge and re.fullmatch(r"veth[0-9a-f]{8}", names[1]) and names[2] == "eth0"
    assert [sorted(i) for i in result["interfaces"]] == [
        ["mac", "name"],
        ["mac", "name"],
        ["mac", "name", "sandbox"],
    ]
    assert result["interfaces"][2]["sandbox"] == netns
    ip = {"interface": 2, "address": address, "gateway": GATEWAY}
    if version_tuple(version) < (1, 0, 0):
        assert result["ips"] == [{"version": "4", **ip}]
        assert next(iter(result["ips"][0])) == "version"
    else:
        assert result["ips"] == [ip]
    assert result["routes"] == [DEFAULT_ROUTE]
    assert result["dns"] == {}


def assert_attached(
    plugin: Plugin, container: Namespace, bridge: str, address: str = "192.168.15.1/24"
) -> dict[str, Any]:
    """The container is wired to the bridge as the seed network says; returns the host veth."""
    eth0 = container.link("eth0")
    assert eth0 is not None
    assert eth0["linkinfo"]["info_kind"] == "veth"
    assert "UP" in eth0["flags"] and eth0["operstate"] == "UP"
    assert eth0["mtu"] == 1500
    assert container.addresses("eth0") == [address]
    assert default_routes(container) == [
        {"dst": "default", "gateway": GATEWAY, "dev": "eth0", "flags": []}
    ]
    assert "UP" in (container.link("lo") or {})["flags"]

    br = plugin.host.link(bridge)
    assert br is not None
    assert br["linkinfo"]["info_kind"] == "bridge"
    assert "UP" in br["flags"]
    assert plugin.host.addresses(bridge) == [f"{GATEWAY}/24"]

    veths = [v for v in host_veths(plugin.host) if v["ifindex"] == eth0["link_index"]]
    assert len(veths) == 1, "the container's eth0 has no peer in the host namespace"
    veth = veths[0]
    assert re.fullmatch(r"veth[0-9a-f]{8}", veth["ifname"])
    assert veth["master"] == bridge
    assert "UP" in veth["flags"]
    assert veth["linkinfo"]["info_slave_kind"] == "bridge"
    return veth


def assert_detached(plugin: Plugin, container: Namespace, bridge: str, data_dir: Path) -> None:
    assert container.link_names() == ["lo"]
    assert host_veths(plugin.host) == []
    assert plugin.host.nat_rules() == []
    assert reservations(data_dir, "testnet") == {}
    # The bridge and its address are shared: DEL never removes them.
    assert plugin.host.addresses(bridge) == [f"{GATEWAY}/24"]


@pytest.mark.parametrize("version", VERSIONS)
def test_add_check_del_each_version(
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    data_dir: Path,
    version: str,
) -> None:
    bridge_name = netconf["bridge"]
    red = namespaces.new("red")
    conf = {**netconf, "cniVersion": version}

    result = plugin.run("ADD", conf, container_id="red1", netns=red.path).ok().json
    assert_result_shape(result, version, red.path, bridge_name)
    veth = assert_attached(plugin, red, bridge_name)
    if "interfaces" in result:
        bridge_entry, veth_entry, eth0_entry = result["interfaces"]
        assert veth_entry == {"name": veth["ifname"], "mac": veth["address"]}
        assert eth0_entry["mac"] == (red.link("eth0") or {})["address"]
        assert bridge_entry["mac"] == (plugin.host.link(bridge_name) or {})["address"]
    assert plugin.host.nat_rules() == nat_rules_for("testnet", "red1", "192.168.15.1", SUBNET)
    assert reservations(data_dir, "testnet") == {"192.168.15.1": b"red1\r\neth0"}

    if version_tuple(version) >= (0, 4, 0):
        check = plugin.run(
            "CHECK", {**conf, "prevResult": result}, container_id="red1", netns=red.path
        ).ok()
        assert check.stdout == ""

    deleted = plugin.run("DEL", conf, container_id="red1", netns=red.path).ok()
    assert deleted.stdout == ""
    assert_detached(plugin, red, bridge_name, data_dir)


def test_store_file_format_and_modes(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], data_dir: Path
) -> None:
    red = namespaces.new("red")
    plugin.run("ADD", netconf, container_id="red1", netns=red.path).ok()
    network_dir = data_dir / "testnet"
    assert stat.S_IMODE(network_dir.stat().st_mode) == 0o755
    files = store_files(data_dir, "testnet")
    assert files == {
        "192.168.15.1": b"red1\r\neth0",
        "last_reserved_ip.0": b"192.168.15.1",
        "lock": b"",
    }
    assert stat.S_IMODE((network_dir / "192.168.15.1").stat().st_mode) == 0o600
    assert stat.S_IMODE((network_dir / "last_reserved_ip.0").stat().st_mode) == 0o600


def test_round_robin_after_last_reserved_skipping_gateway(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], data_dir: Path
) -> None:
    # .4 was handed out last: the next are .6 (skipping the gateway .5), then .7.
    (data_dir / "testnet").mkdir()
    (data_dir / "testnet" / "last_reserved_ip.0").write_bytes(b"192.168.15.4")
    red, blue = namespaces.new("red"), namespaces.new("blue")
    plugin.run("ADD", netconf, container_id="red1", netns=red.path).ok()
    plugin.run("ADD", netconf, container_id="blue1", netns=blue.path).ok()
    assert red.addresses("eth0") == ["192.168.15.6/24"]
    assert blue.addresses("eth0") == ["192.168.15.7/24"]
    assert reservations(data_dir, "testnet") == {
        "192.168.15.6": b"red1\r\neth0",
        "192.168.15.7": b"blue1\r\neth0",
    }
    assert (data_dir / "testnet" / "last_reserved_ip.0").read_bytes() == b"192.168.15.7"


def test_ip_forward_enabled_in_host_namespace(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any]
) -> None:
    assert plugin.host.sysctl("net/ipv4/ip_forward") == "0"  # a new namespace starts with 0
    red = namespaces.new("red")
    plugin.run("ADD", netconf, container_id="red1", netns=red.path).ok()
    assert plugin.host.sysctl("net/ipv4/ip_forward") == "1"


def test_without_default_gateway_no_default_route(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], bridge_name: str
) -> None:
    red = namespaces.new("red")
    conf = {**netconf, "isDefaultGateway": False}
    result = plugin.run("ADD", conf, container_id="red1", netns=red.path).ok().json
    assert "routes" not in result
    assert default_routes(red) == []
    assert [r["dst"] for r in red.routes()] == [SUBNET]
    # isGateway alone still puts the gateway on the bridge.
    assert plugin.host.addresses(bridge_name) == [f"{GATEWAY}/24"]


def test_ipam_routes_go_via_gateway(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any]
) -> None:
    red = namespaces.new("red")
    ipam = {**netconf["ipam"], "routes": [{"dst": "10.99.0.0/16"}]}
    conf = {**netconf, "isDefaultGateway": False, "ipam": ipam}
    result = plugin.run("ADD", conf, container_id="red1", netns=red.path).ok().json
    assert result["routes"] == [{"dst": "10.99.0.0/16"}]
    via = [r for r in red.routes() if r["dst"] == "10.99.0.0/16"]
    assert via == [{"dst": "10.99.0.0/16", "gateway": GATEWAY, "dev": "eth0", "flags": []}]


def test_no_gateway_no_masq_plain_l3(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], bridge_name: str
) -> None:
    red = namespaces.new("red")
    conf = {**netconf, "isGateway": False, "isDefaultGateway": False, "ipMasq": False}
    plugin.run("ADD", conf, container_id="red1", netns=red.path).ok()
    assert red.addresses("eth0") == ["192.168.15.1/24"]
    assert plugin.host.addresses(bridge_name) == []
    assert plugin.host.nat_rules() == []
    assert plugin.host.sysctl("net/ipv4/ip_forward") == "0"


def test_hairpin_off_by_default(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any]
) -> None:
    red = namespaces.new("red")
    plugin.run("ADD", netconf, container_id="red1", netns=red.path).ok()
    veth = the_host_veth(plugin.host)
    assert veth["linkinfo"]["info_slave_data"]["hairpin"] is False


def test_hairpin_mode_on(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any]
) -> None:
    red = namespaces.new("red")
    plugin.run("ADD", {**netconf, "hairpinMode": True}, container_id="red1", netns=red.path).ok()
    veth = the_host_veth(plugin.host)
    assert veth["linkinfo"]["info_slave_data"]["hairpin"] is True


def test_mtu_on_both_ends_and_new_bridge(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], bridge_name: str
) -> None:
    red = namespaces.new("red")
    plugin.run("ADD", {**netconf, "mtu": 1400}, container_id="red1", netns=red.path).ok()
    assert (red.link("eth0") or {})["mtu"] == 1400
    assert the_host_veth(plugin.host)["mtu"] == 1400
    assert (plugin.host.link(bridge_name) or {})["mtu"] == 1400


def test_bridge_mac_is_pinned(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], bridge_name: str
) -> None:
    """A bridge follows its lowest port MAC unless its MAC was set explicitly (cni#285)."""
    red, blue = namespaces.new("red"), namespaces.new("blue")
    first = plugin.run("ADD", netconf, container_id="red1", netns=red.path).ok().json
    before = (plugin.host.link(bridge_name) or {})["address"]
    assert first["interfaces"][0]["mac"] == before

    second = plugin.run("ADD", netconf, container_id="blue1", netns=blue.path).ok().json
    assert second["interfaces"][0]["mac"] == before
    assert (plugin.host.link(bridge_name) or {})["address"] == before

    # Give the newest port a MAC lower than any random one: an unpinned bridge would take it.
    lowest = "02:00:00:00:00:01"
    assert lowest < before
    plugin.host.exec("ip", "link", "set", second["interfaces"][1]["name"], "address", lowest)
    assert (plugin.host.link(bridge_name) or {})["address"] == before


def test_dns_from_config_in_result(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any]
) -> None:
    red = namespaces.new("red")
    dns = {"nameservers": ["10.1.1.1", "10.1.1.2"], "domain": "t.test", "search": ["a.test"]}
    result = plugin.run("ADD", {**netconf, "dns": dns}, container_id="red1", netns=red.path)
    assert result.ok().json["dns"] == dns


def test_second_container_gets_next_address_and_own_rules(
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    data_dir: Path,
    bridge_name: str,
) -> None:
    red, blue = namespaces.new("red"), namespaces.new("blue")
    plugin.run("ADD", netconf, container_id="red1", netns=red.path).ok()
    plugin.run("ADD", netconf, container_id="blue1", netns=blue.path).ok()
    assert_attached(plugin, blue, bridge_name, "192.168.15.2/24")
    assert sorted(plugin.host.nat_rules()) == sorted(
        nat_rules_for("testnet", "red1", "192.168.15.1", SUBNET)
        + nat_rules_for("testnet", "blue1", "192.168.15.2", SUBNET)
    )
    assert [v["master"] for v in host_veths(plugin.host)] == [bridge_name, bridge_name]
    assert red.ping("192.168.15.2")
    assert blue.ping(GATEWAY)
    assert reservations(data_dir, "testnet") == {
        "192.168.15.1": b"red1\r\neth0",
        "192.168.15.2": b"blue1\r\neth0",
    }


def test_legacy_top_level_and_ranges_forms_agree(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], data_dir: Path
) -> None:
    red = namespaces.new("red")
    ipam = {
        "type": "host-local",
        "ranges": [[{"subnet": SUBNET, "gateway": GATEWAY, "rangeStart": "192.168.15.100"}]],
        "dataDir": str(data_dir),
    }
    result = plugin.run("ADD", {**netconf, "ipam": ipam}, container_id="red1", netns=red.path)
    assert result.ok().json["ips"] == [
        {"interface": 2, "address": "192.168.15.100/24", "gateway": GATEWAY}
    ]
    assert red.addresses("eth0") == ["192.168.15.100/24"]


def test_container_can_reach_gateway(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any]
) -> None:
    red = namespaces.new("red")
    plugin.run("ADD", netconf, container_id="red1", netns=red.path).ok()
    assert red.ping(GATEWAY)
    assert plugin.host.ping("192.168.15.1")


def test_default_gateway_implies_gateway(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], bridge_name: str
) -> None:
    red = namespaces.new("red")
    conf = {**netconf, "isGateway": False, "isDefaultGateway": True}
    plugin.run("ADD", conf, container_id="red1", netns=red.path).ok()
    assert plugin.host.addresses(bridge_name) == [f"{GATEWAY}/24"]
    assert [r["gateway"] for r in default_routes(red)] == [GATEWAY]


def test_promisc_mode_sets_bridge_promiscuous(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], bridge_name: str
) -> None:
    red = namespaces.new("red")
    plugin.run("ADD", {**netconf, "promiscMode": True}, container_id="red1", netns=red.path).ok()
    assert "PROMISC" in (plugin.host.link(bridge_name) or {})["flags"]


def test_existing_bridge_address_conflict_needs_force_address(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], bridge_name: str
) -> None:
    plugin.host.exec("ip", "link", "add", bridge_name, "type", "bridge")
    plugin.host.exec("ip", "addr", "add", "10.77.0.1/16", "dev", bridge_name)
    red = namespaces.new("red")

    body = plugin.run("ADD", netconf, container_id="red1", netns=red.path).cni_error()
    assert body["code"] == 7 and "10.77.0.1/16" in body["msg"], body
    assert plugin.host.addresses(bridge_name) == ["10.77.0.1/16"]
    assert plugin.host.links("veth") == [] and red.link_names() == ["lo"]

    conf = {**netconf, "forceAddress": True}
    plugin.run("ADD", conf, container_id="red1", netns=red.path).ok()
    assert plugin.host.addresses(bridge_name) == [f"{GATEWAY}/24"]
    assert red.ping(GATEWAY)


def test_requested_ip_and_mac_from_cni_args(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], data_dir: Path
) -> None:
    red = namespaces.new("red")
    args = "IgnoreUnknown=1;K8S_POD_NAME=red;IP=192.168.15.50;MAC=02:42:c0:a8:0f:32"
    result = plugin.run("ADD", netconf, container_id="red1", netns=red.path, cni_args=args)
    body = result.ok().json
    assert body["ips"][0]["address"] == "192.168.15.50/24"
    assert body["interfaces"][2]["mac"] == "02:42:c0:a8:0f:32"
    assert red.addresses("eth0") == ["192.168.15.50/24"]
    assert (red.link("eth0") or {})["address"] == "02:42:c0:a8:0f:32"
    assert reservations(data_dir, "testnet") == {"192.168.15.50": b"red1\r\neth0"}
