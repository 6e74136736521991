"""The bridge keys beyond the basics: L2 mode, portIsolation, disableContainerInterface,
VLANs (which this kernel cannot do: a clean failure), and MAC precedence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.netns import NamespaceFactory
from tests.support.plugin import Plugin


def slave_data(plugin: Plugin) -> dict[str, Any]:
    veths = plugin.host.links("veth")
    assert len(veths) == 1
    data = veths[0]["linkinfo"]["info_slave_data"]
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("ipam", [None, {}], ids=["no-ipam-key", "empty-ipam"])
def test_l2_mode_brings_the_interface_up_without_addresses(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], ipam: Any
) -> None:
    conf = {k: v for k, v in netconf.items() if k != "ipam"}
    conf["isGateway"] = conf["isDefaultGateway"] = False
    if ipam is not None:
        conf["ipam"] = ipam
    red = namespaces.new("red")
    result = plugin.run("ADD", conf, container_id="red", netns=red.path).ok().json
    assert "ips" not in result and len(result["interfaces"]) == 3
    link = red.link("eth0")
    assert link is not None and "UP" in link["flags"]
    assert red.addresses("eth0") == [] and plugin.host.addresses(conf["bridge"]) == []
    plugin.run("DEL", conf, container_id="red", netns=red.path).ok()
    assert red.link("eth0") is None


def test_ipam_without_type_is_a_config_error(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any]
) -> None:
    conf = {**netconf, "ipam": {"subnet": "10.9.0.0/24"}}
    red = namespaces.new("red")
    body = plugin.run("ADD", conf, container_id="red", netns=red.path).error(7)
    assert "ipam.type" in body["msg"]
    assert plugin.host.links("veth") == []


def test_port_isolation_sets_the_isolated_flag(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any]
) -> None:
    red = namespaces.new("red")
    plugin.run("ADD", {**netconf, "portIsolation": True}, container_id="red", netns=red.path).ok()
    assert slave_data(plugin)["isolated"] is True


def test_ports_are_not_isolated_by_default(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any]
) -> None:
    red = namespaces.new("red")
    plugin.run("ADD", netconf, container_id="red", netns=red.path).ok()
    assert slave_data(plugin)["isolated"] is False


def test_disable_container_interface_leaves_it_down(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any]
) -> None:
    conf = {k: v for k, v in netconf.items() if k != "ipam"}
    conf["disableContainerInterface"] = True
    conf["isGateway"] = conf["isDefaultGateway"] = False
    red = namespaces.new("red")
    plugin.run("ADD", conf, container_id="red", netns=red.path).ok()
    link = red.link("eth0")
    assert link is not None and "UP" not in link["flags"]
    plugin.run("DEL", conf, container_id="red", netns=red.path).ok()


def test_disable_container_interface_with_ipam_is_refused(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any]
) -> None:
    red = namespaces.new("red")
    conf = {**netconf, "disableContainerInterface": True}
    body = plugin.run("ADD", conf, container_id="red", netns=red.path).error(7)
    assert "disableContainerInterface" in body["msg"]


@pytest.mark.parametrize(
    "vlan_keys",
    [{"vlan": 100}, {"vlanTrunk": [{"id": 101}, {"minID": 200, "maxID": 202}]}],
    ids=["vlan", "trunk"],
)
def test_vlan_fails_cleanly_on_a_kernel_without_bridge_vlan_filtering(
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    data_dir: Path,
    vlan_keys: dict[str, Any],
) -> None:
    probe = plugin.host.exec(
        "ip", "link", "add", "vfprobe", "type", "bridge", "vlan_filtering", "1", check=False
    )
    if plugin.host.link("vfprobe") is not None:
        plugin.host.exec("ip", "link", "del", "vfprobe")
        pytest.skip("this kernel has bridge VLAN filtering; the failure path cannot be shown")
    del probe
    red = namespaces.new("red")
    before = plugin.host.link_names(), red.link_names()
    body = plugin.run("ADD", {**netconf, **vlan_keys}, container_id="red", netns=red.path).error(2)
    assert "VLAN filtering" in body["msg"]
    assert (plugin.host.link_names(), red.link_names()) == before
    assert not (data_dir / netconf["name"]).exists()
    assert plugin.host.nat_rules() == []


@pytest.mark.parametrize(
    ("cni_args", "extra", "expected"),
    [
        ("IgnoreUnknown=1;MAC=02:00:00:00:00:01", {}, "02:00:00:00:00:01"),
        (
            "IgnoreUnknown=1;MAC=02:00:00:00:00:01",
            {"args": {"cni": {"mac": "02:00:00:00:00:02"}}},
            "02:00:00:00:00:02",
        ),
        (
            "IgnoreUnknown=1;MAC=02:00:00:00:00:01",
            {
                "args": {"cni": {"mac": "02:00:00:00:00:02"}},
                "runtimeConfig": {"mac": "02:00:00:00:00:03"},
            },
            "02:00:00:00:00:03",
        ),
    ],
    ids=["cni-args", "args-beats-cni-args", "runtime-config-beats-all"],
)
def test_mac_precedence(  # noqa: PLR0917 - pytest passes fixtures and parameters positionally
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    cni_args: str,
    extra: dict[str, Any],
    expected: str,
) -> None:
    red = namespaces.new("red")
    conf = {**netconf, **extra}
    result = (
        plugin.run("ADD", conf, container_id="red", netns=red.path, cni_args=cni_args).ok().json
    )
    link = red.link("eth0")
    assert link is not None and link["address"] == expected
    assert result["interfaces"][2]["mac"] == expected


@pytest.mark.parametrize("gateway", [True, False], ids=["gateway", "no-gateway"])
def test_a_new_bridge_reads_up_right_after_add(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], gateway: bool
) -> None:
    """Read by a dump (`ip link show`, which does not settle an operstate as a read of the one
    link does) as soon as ADD returns: UP, as the reference leaves it, not linkwatch's pending
    UNKNOWN. ADD reads its bridge last, which brings the kernel's operstate up to date."""
    conf = {**netconf, "isGateway": gateway, "isDefaultGateway": gateway}
    for tag in ("red", "blue"):  # the first ADD makes the bridge; the second finds it
        ns = namespaces.new(tag)
        plugin.run("ADD", conf, container_id=tag, netns=ns.path).ok()
        (bridge,) = [
            e for e in plugin.host.ip_json("link", "show") if e["ifname"] == conf["bridge"]
        ]
        assert bridge["operstate"] == "UP", bridge
