"""DEL is idempotent and complete whatever is already gone, and touches nothing shared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.integration.conftest import Unchanged
from tests.support.netns import Namespace, NamespaceFactory
from tests.support.plugin import Plugin, nat_rules_for, reservations
from tests.support.state import unchanged as unchanged_since

SUBNET = "192.168.15.0/24"
GATEWAY_CIDR = "192.168.15.5/24"


def add_red(plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any]) -> Namespace:
    red = namespaces.new("red")
    plugin.run("ADD", netconf, container_id="red1", netns=red.path).ok()
    assert plugin.host.nat_rules() == nat_rules_for("testnet", "red1", "192.168.15.1", SUBNET)
    return red


def test_del_twice_succeeds(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], data_dir: Path
) -> None:
    red = add_red(plugin, namespaces, netconf)
    plugin.run("DEL", netconf, container_id="red1", netns=red.path).ok()
    again = plugin.run("DEL", netconf, container_id="red1", netns=red.path).ok()
    assert again.stdout == ""
    assert red.link_names() == ["lo"]
    assert plugin.host.links("veth") == []
    assert plugin.host.nat_rules() == []
    assert reservations(data_dir, "testnet") == {}


def test_del_with_empty_netns_releases_ipam_and_nat(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], data_dir: Path
) -> None:
    """containerd's ctr and nerdctl send DEL without CNI_NETNS (plugins#810)."""
    red = add_red(plugin, namespaces, netconf)
    plugin.run("DEL", netconf, container_id="red1", netns="").ok()
    assert reservations(data_dir, "testnet") == {}
    assert plugin.host.nat_rules() == []
    # Without a namespace the interface cannot be reached; it goes with the namespace.
    assert red.addresses("eth0") == ["192.168.15.1/24"]


def test_del_with_missing_netns_variable_entirely(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], data_dir: Path
) -> None:
    add_red(plugin, namespaces, netconf)
    # CNI_NETNS absent from the environment altogether (not just empty).
    plugin.run("DEL", netconf, container_id="red1", unset=("CNI_NETNS",)).ok()
    assert reservations(data_dir, "testnet") == {}
    assert plugin.host.nat_rules() == []


def test_del_after_netns_deleted_removes_nat_too(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], data_dir: Path
) -> None:
    """The reference leaks the chain and jump here; the chain name needs no namespace."""
    red = add_red(plugin, namespaces, netconf)
    red.delete()
    assert not Path(red.path).exists()
    plugin.run("DEL", netconf, container_id="red1", netns=red.path).ok()
    assert plugin.host.nat_rules() == []
    assert reservations(data_dir, "testnet") == {}
    assert plugin.host.links("veth") == []  # the pair died with the namespace


def test_del_unknown_container_succeeds_and_changes_nothing(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], unchanged: Unchanged
) -> None:
    red = add_red(plugin, namespaces, netconf)
    ghost = namespaces.new("ghost")
    verify = unchanged(red)
    plugin.run("DEL", netconf, container_id="nobody", netns=ghost.path).ok()
    plugin.run("DEL", netconf, container_id="nobody", netns="").ok()
    verify()


def test_del_on_fresh_host_succeeds(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], data_dir: Path
) -> None:
    """Nothing was ever added: no bridge, no data dir, no chain."""
    red = namespaces.new("red")
    plugin.run("DEL", netconf, container_id="red1", netns=red.path).ok()
    assert plugin.host.link_names() == ["lo"]
    assert plugin.host.nat_rules() == []
    assert reservations(data_dir, "testnet") == {}


def test_del_keeps_bridge_and_its_address(
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    bridge_name: str,
) -> None:
    red = add_red(plugin, namespaces, netconf)
    plugin.run("DEL", netconf, container_id="red1", netns=red.path).ok()
    bridge = plugin.host.link(bridge_name)
    assert bridge is not None and bridge["linkinfo"]["info_kind"] == "bridge"
    assert "UP" in bridge["flags"]
    assert plugin.host.addresses(bridge_name) == [GATEWAY_CIDR]


def test_del_one_leaves_the_other_intact(
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    data_dir: Path,
    bridge_name: str,
) -> None:
    red = add_red(plugin, namespaces, netconf)
    blue = namespaces.new("blue")
    plugin.run("ADD", netconf, container_id="blue1", netns=blue.path).ok()
    verify_blue = unchanged_since(blue)
    veths_before = plugin.host.links("veth")

    plugin.run("DEL", netconf, container_id="red1", netns=red.path).ok()

    assert red.link_names() == ["lo"]
    verify_blue()
    blue_peer = (blue.link("eth0") or {})["link_index"]
    blue_veth = [v["ifname"] for v in veths_before if v["ifindex"] == blue_peer]
    assert [v["ifname"] for v in plugin.host.links("veth")] == blue_veth
    assert plugin.host.nat_rules() == nat_rules_for("testnet", "blue1", "192.168.15.2", SUBNET)
    assert reservations(data_dir, "testnet") == {"192.168.15.2": b"blue1\r\neth0"}
    assert plugin.host.addresses(bridge_name) == [GATEWAY_CIDR]
    assert blue.ping("192.168.15.5")


def test_del_only_the_named_ifname(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], data_dir: Path
) -> None:
    """Two interfaces of one container on one network share the chain (the name has no
    ifname); DEL of one keeps the other's jump and the chain."""
    red = namespaces.new("red")
    plugin.run("ADD", netconf, container_id="red1", netns=red.path, ifname="eth0").ok()
    plugin.run("ADD", netconf, container_id="red1", netns=red.path, ifname="eth1").ok()
    plugin.run("DEL", netconf, container_id="red1", netns=red.path, ifname="eth0").ok()
    assert red.link_names() == ["eth1", "lo"]
    assert reservations(data_dir, "testnet") == {"192.168.15.2": b"red1\r\neth1"}
    assert sorted(plugin.host.nat_rules()) == sorted(
        nat_rules_for("testnet", "red1", "192.168.15.2", SUBNET)
    )


def test_check_after_del_fails_naming_the_problem(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any]
) -> None:
    red = namespaces.new("red")
    result = plugin.run("ADD", netconf, container_id="red1", netns=red.path).ok().json
    plugin.run("DEL", netconf, container_id="red1", netns=red.path).ok()
    out = plugin.run(
        "CHECK", {**netconf, "prevResult": result}, container_id="red1", netns=red.path
    )
    body = out.cni_error()
    assert body["code"] == 3
    assert "red1" in body["msg"] or "eth0" in body["msg"], body


def test_check_detects_removed_container_address(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any]
) -> None:
    red = namespaces.new("red")
    result = plugin.run("ADD", netconf, container_id="red1", netns=red.path).ok().json
    red.exec("ip", "addr", "del", "192.168.15.1/24", "dev", "eth0")
    out = plugin.run(
        "CHECK", {**netconf, "prevResult": result}, container_id="red1", netns=red.path
    )
    body = out.cni_error()
    assert "192.168.15.1/24" in body["msg"], body


def test_check_detects_missing_masquerade_jump(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any]
) -> None:
    red = namespaces.new("red")
    result = plugin.run("ADD", netconf, container_id="red1", netns=red.path).ok().json
    jump = nat_rules_for("testnet", "red1", "192.168.15.1", SUBNET)[1]
    plugin.host.exec("sh", "-c", f"iptables -t nat {jump.replace('-A', '-D', 1)}")
    out = plugin.run(
        "CHECK", {**netconf, "prevResult": result}, container_id="red1", netns=red.path
    )
    body = out.cni_error()
    assert "masquerade" in body["msg"] and "POSTROUTING" in body["msg"], body


def test_del_in_plugins_own_namespace_removes_no_host_link(
    plugin: Plugin, netconf: dict[str, Any]
) -> None:
    """CNI_NETNS naming the plugin's own namespace must not make DEL remove a host link
    called like CNI_IFNAME (here: a plain eth0 in the test's host namespace)."""
    kind = plugin.host.add_plain_link("eth0")
    verify = unchanged_since(host=plugin.host)
    for netns in ("/proc/self/ns/net", plugin.host.path):
        out = plugin.run("DEL", netconf, container_id="red1", netns=netns)
        if out.code != 0:
            out.cni_error()
        verify()
    assert (plugin.host.link("eth0") or {})["linkinfo"]["info_kind"] == kind


def test_del_leaves_a_non_veth_ifname_alone(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any]
) -> None:
    """Only a veth can be ours: a same-named interface of another kind stays."""
    red = namespaces.new("red")
    kind = red.add_plain_link("eth0")
    verify = unchanged_since(red)
    plugin.run("DEL", netconf, container_id="red1", netns=red.path).ok()
    verify()
    assert (red.link("eth0") or {})["linkinfo"]["info_kind"] == kind
