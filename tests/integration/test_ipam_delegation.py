"""IPAM delegation for real: cni-bridge-py runs the reference `static` IPAM (and our own
cni-host-local-py) found on CNI_PATH, uses its result, passes its errors through, and calls
its DEL on DEL and when a later ADD step fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.netns import Namespace, NamespaceFactory
from tests.support.plugin import (
    FAULT_ENV,
    REFERENCE_DIR,
    Plugin,
    installed_plugin,
    reservations,
)

STATIC = {
    "type": "static",
    "addresses": [{"address": "10.10.0.5/24", "gateway": "10.10.0.1"}],
    "routes": [{"dst": "10.20.0.0/16"}],
}


@pytest.fixture
def bridge(installed: Path, host: Namespace) -> Plugin:
    """Ours, with the reference plugins on CNI_PATH after our bin dir."""
    if not (REFERENCE_DIR / "static").is_file():
        pytest.skip("the reference plugins are not installed in /usr/lib/cni")
    return installed_plugin(installed, host, REFERENCE_DIR)


@pytest.fixture
def static_conf(netconf: dict[str, Any]) -> dict[str, Any]:
    return {**netconf, "ipMasq": False, "ipam": STATIC}


def test_static_add_check_del(
    bridge: Plugin, namespaces: NamespaceFactory, static_conf: dict[str, Any]
) -> None:
    red = namespaces.new("red")
    result = bridge.run("ADD", static_conf, container_id="red1", netns=red.path).ok().json
    assert result["ips"] == [{"interface": 2, "address": "10.10.0.5/24", "gateway": "10.10.0.1"}]
    assert {"dst": "10.20.0.0/16"} in result["routes"]
    assert red.addresses("eth0") == ["10.10.0.5/24"]
    routes = {r["dst"]: r.get("gateway") for r in red.routes()}
    assert routes["10.20.0.0/16"] == "10.10.0.1"  # a route without gw goes via the gateway
    assert bridge.host.addresses(static_conf["bridge"]) == ["10.10.0.1/24"]

    # static's CHECK needs prevResult: it gets the same stdin, prevResult included.
    prev = {**static_conf, "prevResult": result}
    bridge.run("CHECK", prev, container_id="red1", netns=red.path).ok()

    bridge.run("DEL", static_conf, container_id="red1", netns=red.path).ok()
    assert red.link_names() == ["lo"]
    assert bridge.host.links("veth") == []


def test_static_in_a_0_2_0_config(
    bridge: Plugin, namespaces: NamespaceFactory, static_conf: dict[str, Any]
) -> None:
    red = namespaces.new("red")
    conf = {**static_conf, "cniVersion": "0.2.0"}
    result = bridge.run("ADD", conf, container_id="red1", netns=red.path).ok().json
    assert result["ip4"]["ip"] == "10.10.0.5/24"
    assert red.addresses("eth0") == ["10.10.0.5/24"]
    bridge.run("DEL", conf, container_id="red1", netns=red.path).ok()


def test_static_error_is_passed_through_and_nothing_is_left(
    bridge: Plugin, namespaces: NamespaceFactory, static_conf: dict[str, Any]
) -> None:
    red = namespaces.new("red")
    conf = {**static_conf, "ipam": {"type": "static", "addresses": [{"address": "bogus"}]}}
    outcome = bridge.run("ADD", conf, container_id="red1", netns=red.path)
    body = outcome.error(999)  # static's own code, not ours
    assert body["msg"] == "the 'address' field is expected to be in CIDR notation, got: 'bogus'"
    assert "details" not in body
    assert red.link_names() == ["lo"]
    assert bridge.host.links("veth") == []


def test_missing_ipam_plugin_is_code_7(
    bridge: Plugin, namespaces: NamespaceFactory, static_conf: dict[str, Any]
) -> None:
    red = namespaces.new("red")
    conf = {**static_conf, "ipam": {"type": "no-such-ipam"}}
    body = bridge.run("ADD", conf, container_id="red1", netns=red.path).error(7)
    assert body["msg"].startswith('failed to find IPAM plugin "no-such-ipam" in CNI_PATH [')
    assert str(REFERENCE_DIR) in body["msg"]
    assert red.link_names() == ["lo"]


def test_delegate_del_on_del_and_on_rollback(
    bridge: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    data_dir: Path,
) -> None:
    """Our standalone host-local as the delegate: its store shows every DEL it was sent."""
    conf = {
        **netconf,
        "ipam": {"type": "cni-host-local-py", "subnet": "10.30.0.0/24", "dataDir": str(data_dir)},
    }
    red = namespaces.new("red")
    failed = bridge.run(
        "ADD",
        conf,
        container_id="red1",
        netns=red.path,
        extra_env={FAULT_ENV: "veth"},
    )
    assert failed.error(5)["msg"].startswith("injected fault")
    assert reservations(data_dir, "testnet") == {}  # released by the delegate's DEL
    assert red.link_names() == ["lo"]

    result = bridge.run("ADD", conf, container_id="red1", netns=red.path).ok().json
    # Round robin: .2 was handed out (and given back) by the failed ADD.
    assert result["ips"][0]["address"] == "10.30.0.3/24"
    assert red.addresses("eth0") == ["10.30.0.3/24"]
    assert reservations(data_dir, "testnet") == {"10.30.0.3": b"red1\r\neth0"}

    bridge.run("DEL", conf, container_id="red1", netns=red.path).ok()
    assert reservations(data_dir, "testnet") == {}
    assert bridge.host.nat_rules() == []
