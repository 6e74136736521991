"""A failure at any ADD step undoes every earlier step; a DEL that failed midway is finished
by the next DEL. Faults come from the plugin's hook CNI_BRIDGE_PY_FAULT=<step>."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.netns import Namespace, NamespaceFactory
from tests.support.plugin import (
    FAULT_ENV,
    Outcome,
    Plugin,
    nat_rules_for,
    reservations,
    store_files,
)
from tests.support.state import unchanged

ADD_STEPS = ["ipam", "bridge", "veth", "container", "gateway", "masq", "port"]
DEL_STEPS = ["del-link", "del-ipam"]
SUBNET = "192.168.15.0/24"
GATEWAY_CIDR = "192.168.15.5/24"


def faulty(plugin: Plugin, command: str, conf: dict[str, Any], step: str, ns: Namespace) -> Outcome:
    """Run `command` for container red1/blue1 (named after the namespace's tag) with a fault."""
    cid = ns.name.rsplit("-", 1)[1] + "1"
    env = {FAULT_ENV: step}
    return plugin.run(command, conf, container_id=cid, netns=ns.path, extra_env=env)


def assert_injected_fault(outcome: Outcome, step: str) -> None:
    body = outcome.cni_error()
    assert body["code"] == 5, body
    assert step in body["msg"], body


def assert_nothing_of(plugin: Plugin, container: Namespace, data_dir: Path, cid: str) -> None:
    assert container.link_names() == ["lo"]
    assert not any(f'id: \\"{cid}\\"' in rule for rule in plugin.host.nat_rules())
    assert not any(
        owner.startswith(cid.encode()) for owner in reservations(data_dir, "testnet").values()
    )
    leftovers = set(store_files(data_dir, "testnet")) - set(reservations(data_dir, "testnet"))
    assert leftovers <= {"lock", "last_reserved_ip.0"}


@pytest.mark.parametrize("step", ADD_STEPS)
def test_add_fault_on_first_container_leaves_nothing(
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    data_dir: Path,
    step: str,
) -> None:
    bridge_name = netconf["bridge"]
    red = namespaces.new("red")
    assert_injected_fault(faulty(plugin, "ADD", netconf, step, red), step)

    assert_nothing_of(plugin, red, data_dir, "red1")
    assert plugin.host.links("veth") == []
    assert plugin.host.nat_rules() == []
    assert reservations(data_dir, "testnet") == {}
    if plugin.host.link(bridge_name) is not None:  # the bridge itself is shared and may stay
        assert plugin.host.addresses(bridge_name) == []

    result = plugin.run("ADD", netconf, container_id="red1", netns=red.path).ok().json
    address = result["ips"][0]["address"]
    assert red.addresses("eth0") == [address]
    assert plugin.host.addresses(bridge_name) == [GATEWAY_CIDR]
    assert plugin.host.nat_rules() == nat_rules_for(
        "testnet", "red1", address.split("/")[0], SUBNET
    )
    assert red.ping("192.168.15.5")


@pytest.mark.parametrize("step", ADD_STEPS)
def test_add_fault_on_second_container_keeps_the_first(
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    data_dir: Path,
    step: str,
) -> None:
    bridge_name = netconf["bridge"]
    red, blue = namespaces.new("red"), namespaces.new("blue")
    plugin.run("ADD", netconf, container_id="red1", netns=red.path).ok()
    verify_red, nat_before = unchanged(red), plugin.host.nat_rules()
    veths_before = [v["ifname"] for v in plugin.host.links("veth")]

    outcome = faulty(plugin, "ADD", netconf, step, blue)
    assert_injected_fault(outcome, step)

    assert_nothing_of(plugin, blue, data_dir, "blue1")
    verify_red()
    assert plugin.host.nat_rules() == nat_before
    assert [v["ifname"] for v in plugin.host.links("veth")] == veths_before
    # red routes through the gateway: the rollback must not take it off the bridge.
    assert plugin.host.addresses(bridge_name) == [GATEWAY_CIDR]
    assert reservations(data_dir, "testnet") == {"192.168.15.1": b"red1\r\neth0"}
    assert red.ping("192.168.15.5")

    plugin.run("ADD", netconf, container_id="blue1", netns=blue.path).ok()
    assert len(blue.addresses("eth0")) == 1
    assert blue.ping("192.168.15.5")


@pytest.mark.parametrize("step", DEL_STEPS)
def test_failed_del_then_del_leaves_nothing(
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    data_dir: Path,
    step: str,
) -> None:
    bridge_name = netconf["bridge"]
    red = namespaces.new("red")
    plugin.run("ADD", netconf, container_id="red1", netns=red.path).ok()

    assert_injected_fault(faulty(plugin, "DEL", netconf, step, red), step)
    plugin.run("DEL", netconf, container_id="red1", netns=red.path).ok()

    assert_nothing_of(plugin, red, data_dir, "red1")
    assert plugin.host.links("veth") == []
    assert plugin.host.nat_rules() == []
    assert reservations(data_dir, "testnet") == {}
    assert plugin.host.addresses(bridge_name) == [GATEWAY_CIDR]


def test_unknown_fault_step_is_ignored(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any]
) -> None:
    """Sanity: the hook fires only at a named step, so the tests above prove those steps."""
    red = namespaces.new("red")
    faulty(plugin, "ADD", netconf, "no-such-step", red).ok()
    assert red.addresses("eth0") == ["192.168.15.1/24"]
