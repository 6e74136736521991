"""GC and STATUS (spec 1.1) through the installed executable: what the runtime still
knows stays, everything else of this network goes, other networks are untouched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.netns import NamespaceFactory
from tests.support.plugin import Plugin, chain_name

VALID = "cni.dev/valid-attachments"


@pytest.fixture
def conf11(netconf: dict[str, Any]) -> dict[str, Any]:
    return {**netconf, "cniVersion": "1.1.0"}


def reservation_owners(data_dir: Path, network: str) -> list[bytes]:
    directory = data_dir / network
    return sorted(
        p.read_bytes()
        for p in directory.iterdir()
        if p.name != "lock" and not p.name.startswith("last_reserved_ip")
    )


def test_gc_keeps_valid_attachments_and_removes_the_rest(
    plugin: Plugin, namespaces: NamespaceFactory, conf11: dict[str, Any], data_dir: Path
) -> None:
    red, blue = namespaces.new("red"), namespaces.new("blue")
    plugin.run("ADD", conf11, container_id="red", netns=red.path).ok()
    plugin.run("ADD", conf11, container_id="blue", netns=blue.path).ok()

    gc_conf = {**conf11, VALID: [{"containerID": "red", "ifname": "eth0"}]}
    outcome = plugin.run("GC", gc_conf).ok()
    assert "blue" in outcome.stderr  # the operator sees what went

    assert reservation_owners(data_dir, conf11["name"]) == [b"red\r\neth0"]
    chains = {rule.split()[1] for rule in plugin.host.nat_rules() if rule.startswith("-N")}
    assert chains == {chain_name(conf11["name"], "red")}
    assert red.link("eth0") is not None
    assert blue.link("eth0") is None  # the orphaned host veth went, and its peer with it
    assert len(plugin.host.links("veth")) == 1
    assert red.ping("192.168.15.5")


def test_gc_without_a_valid_list_removes_everything_of_this_network_only(
    plugin: Plugin,
    namespaces: NamespaceFactory,
    conf11: dict[str, Any],
    data_dir: Path,
    bridge_name: str,
) -> None:
    red, green = namespaces.new("red"), namespaces.new("green")
    other = {
        **conf11,
        "name": "othernet",
        "bridge": bridge_name[:-1] + "o",
        "ipam": {**conf11["ipam"], "subnet": "10.99.0.0/24", "gateway": "10.99.0.1"},
    }
    plugin.run("ADD", conf11, container_id="red", netns=red.path).ok()
    plugin.run("ADD", other, container_id="green", netns=green.path).ok()

    plugin.run("GC", conf11).ok()

    assert reservation_owners(data_dir, conf11["name"]) == []
    assert reservation_owners(data_dir, "othernet") == [b"green\r\neth0"]
    assert red.link("eth0") is None and green.link("eth0") is not None
    chains = {rule.split()[1] for rule in plugin.host.nat_rules() if rule.startswith("-N")}
    assert chains == {chain_name("othernet", "green")}


def test_gc_needs_spec_1_1(plugin: Plugin, netconf: dict[str, Any]) -> None:
    plugin.run("GC", netconf).error(1)


def test_status_is_ok_on_a_usable_network(plugin: Plugin, conf11: dict[str, Any]) -> None:
    outcome = plugin.run("STATUS", conf11).ok()
    assert outcome.stdout == ""


def test_status_reports_an_exhausted_range_with_code_50(
    plugin: Plugin, namespaces: NamespaceFactory, conf11: dict[str, Any]
) -> None:
    small = {**conf11, "ipam": {**conf11["ipam"], "subnet": "10.98.0.0/30", "gateway": "10.98.0.1"}}
    red = namespaces.new("red")
    plugin.run("ADD", small, container_id="red", netns=red.path).ok()
    body = plugin.run("STATUS", small).error(50)
    assert "10.98.0.2" in body["msg"] or "available" in body["msg"]


def test_status_reports_a_non_bridge_link_with_code_50(
    plugin: Plugin, conf11: dict[str, Any]
) -> None:
    plugin.host.add_plain_link(conf11["bridge"])
    body = plugin.run("STATUS", conf11).error(50)
    assert "not a bridge" in body["msg"]
