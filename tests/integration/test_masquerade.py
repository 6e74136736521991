"""MASQUERADE really works: a container reaches an "outside" namespace that has no route back
to the container subnet, which only succeeds if its source address was rewritten. Once with
the default (iptables-nft, via iptables-restore) and once with a legacy iptables on PATH
(python-iptables)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.netns import Namespace, NamespaceFactory
from tests.support.plugin import Plugin, nat_rules_for

OUTSIDE_HOST_SIDE = "10.250.7.1"
OUTSIDE_ADDRESS = "10.250.7.2"
SUBNET = "192.168.15.0/24"
LEGACY_TOOLS = {
    "iptables": "iptables-legacy",
    "ip6tables": "ip6tables-legacy",
    "iptables-save": "iptables-legacy-save",
    "iptables-restore": "iptables-legacy-restore",
    "ip6tables-save": "ip6tables-legacy-save",
    "ip6tables-restore": "ip6tables-legacy-restore",
}


@pytest.fixture
def outside(plugin: Plugin, namespaces: NamespaceFactory) -> Namespace:
    """A namespace on 10.250.7.0/24 linked to the test's host namespace, with no route to
    192.168.15.0/24: it can only answer a container whose source was masqueraded."""
    out = namespaces.new("outside")
    plugin.host.exec("ip", "link", "add", "vout", "type", "veth", "peer", "name", "vin")
    plugin.host.exec("ip", "link", "set", "vin", "netns", out.name)
    plugin.host.exec("ip", "addr", "add", f"{OUTSIDE_HOST_SIDE}/24", "dev", "vout")
    plugin.host.exec("ip", "link", "set", "vout", "up")
    out.exec("ip", "addr", "add", f"{OUTSIDE_ADDRESS}/24", "dev", "vin")
    out.exec("ip", "link", "set", "vin", "up")
    out.exec("ip", "link", "set", "lo", "up")
    assert [r["dst"] for r in out.routes()] == ["10.250.7.0/24"]  # no way back to the bridge
    assert plugin.host.ping(OUTSIDE_ADDRESS)
    return out


def test_container_reaches_outside_only_through_masquerade(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], outside: Namespace
) -> None:
    red = namespaces.new("red")
    plugin.run("ADD", netconf, container_id="red1", netns=red.path).ok()
    assert plugin.host.nat_rules() == nat_rules_for("testnet", "red1", "192.168.15.1", SUBNET)
    assert red.ping(OUTSIDE_ADDRESS)

    plugin.run("DEL", netconf, container_id="red1", netns=red.path).ok()
    assert plugin.host.nat_rules() == []


def test_without_ipmasq_outside_is_unreachable(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], outside: Namespace
) -> None:
    """The control: the same topology without masquerade gets no reply."""
    red = namespaces.new("red")
    plugin.run("ADD", {**netconf, "ipMasq": False}, container_id="red1", netns=red.path).ok()
    assert plugin.host.nat_rules() == []
    assert red.ping("192.168.15.5")
    assert not red.ping(OUTSIDE_ADDRESS)


def test_multicast_and_own_subnet_not_masqueraded(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any]
) -> None:
    """Container-to-container traffic keeps its source (the ACCEPT rule comes first)."""
    red, blue = namespaces.new("red"), namespaces.new("blue")
    plugin.run("ADD", netconf, container_id="red1", netns=red.path).ok()
    plugin.run("ADD", netconf, container_id="blue1", netns=blue.path).ok()
    chain = nat_rules_for("testnet", "red1", "192.168.15.1", SUBNET)[0].split()[1]
    listing = plugin.host.exec("iptables", "-t", "nat", "-S", chain)
    accept, masquerade = (line for line in listing.splitlines() if line.startswith("-A"))
    assert accept.endswith("-j ACCEPT") and masquerade.endswith("-j MASQUERADE")
    assert red.ping("192.168.15.2")


@pytest.fixture
def legacy_path(tmp_path: Path) -> str:
    """A PATH whose iptables is the legacy one, as on a host that chose iptables-legacy."""
    shim = tmp_path / "legacy-bin"
    shim.mkdir()
    for name, target in LEGACY_TOOLS.items():
        (shim / name).symlink_to(f"/usr/sbin/{target}")
    return f"{shim}:/usr/sbin:/usr/bin:/sbin:/bin"


def test_legacy_backend_rules_masquerade_and_del(
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    outside: Namespace,
    legacy_path: str,
) -> None:
    env = {"PATH": legacy_path}
    red = namespaces.new("red")
    result = plugin.run("ADD", netconf, container_id="red1", netns=red.path, extra_env=env)

    expected = nat_rules_for("testnet", "red1", "192.168.15.1", SUBNET)
    assert plugin.host.nat_rules("iptables-legacy") == expected
    assert plugin.host.nat_rules("iptables-nft") == []
    assert red.ping(OUTSIDE_ADDRESS)
    check = {**netconf, "prevResult": result.ok().json}
    plugin.run("CHECK", check, container_id="red1", netns=red.path, extra_env=env).ok()
    # CHECK reads the legacy table: a missing jump there is reported.
    plugin.host.exec("iptables-legacy", "-t", "nat", "-F", "POSTROUTING")
    out = plugin.run("CHECK", check, container_id="red1", netns=red.path, extra_env=env)
    assert "POSTROUTING" in out.cni_error()["msg"]

    plugin.run("DEL", netconf, container_id="red1", netns=red.path, extra_env=env).ok()
    assert plugin.host.nat_rules("iptables-legacy") == []
    assert plugin.host.nat_rules("iptables-nft") == []
