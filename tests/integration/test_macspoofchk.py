"""macspoofchk: the reference's bridge-family nft rules, frames with a spoofed source MAC
really dropped, CHECK, rollback on a failed ADD, and DEL with or without the netns. nft runs
in the test's host namespace only."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.netns import Namespace, NamespaceFactory
from tests.support.plugin import FAULT_ENV, Plugin

GATEWAY = "192.168.15.5"
SPOOFED_MAC = "02:00:00:00:be:ef"
EMPTY_TABLE = """\
table bridge nat {
	chain PREROUTING {
		type filter hook prerouting priority dstnat; policy accept;
	}
}
"""


def expected_table(*attachments: tuple[str, str, str, str]) -> str:
    """`nft list table bridge nat` for (containerID, ifname, host veth, MAC) attachments."""
    jumps, chains = [], []
    for cid, ifname, veth, mac in attachments:
        ref = f"{cid}-{ifname}"
        comment = f'comment "macspoofchk-{ref}"'
        jumps.append(f'\t\tiifname "{veth}" jump cni-br-iface-{ref} {comment}')
        chains += [
            "",
            f"\tchain cni-br-iface-{ref} {{",
            f"\t\tjump cni-br-iface-{ref}-mac {comment}",
            "\t}",
            "",
            f"\tchain cni-br-iface-{ref}-mac {{",
            f"\t\tether saddr {mac} return {comment}",
            f"\t\tdrop {comment}",
            "\t}",
        ]
    lines = [
        "table bridge nat {",
        "\tchain PREROUTING {",
        "\t\ttype filter hook prerouting priority dstnat; policy accept;",
        *jumps,
        "\t}",
        *chains,
        "}",
    ]
    return "\n".join(lines) + "\n"


def bridge_table(ns: Namespace) -> str:
    return ns.exec("nft", "list", "table", "bridge", "nat", check=False)


@pytest.fixture
def spoofconf(netconf: dict[str, Any]) -> dict[str, Any]:
    return {**netconf, "macspoofchk": True, "ipMasq": False}


def add(plugin: Plugin, conf: dict[str, Any], cid: str, ns: Namespace) -> dict[str, Any]:
    result: dict[str, Any] = plugin.run("ADD", conf, container_id=cid, netns=ns.path).ok().json
    return result


def attachment(result: dict[str, Any], cid: str) -> tuple[str, str, str, str]:
    host_veth, container = result["interfaces"][1], result["interfaces"][2]
    return (cid, container["name"], host_veth["name"], container["mac"])


def test_rules_are_the_references_and_spoofed_frames_are_dropped(
    plugin: Plugin, namespaces: NamespaceFactory, spoofconf: dict[str, Any]
) -> None:
    red = namespaces.new("red")
    result = add(plugin, spoofconf, "red1", red)
    assert bridge_table(plugin.host) == expected_table(attachment(result, "red1"))
    real_mac = result["interfaces"][2]["mac"]

    assert red.ping(GATEWAY)
    red.exec("ip", "link", "set", "dev", "eth0", "address", SPOOFED_MAC)
    red.exec("ip", "neigh", "flush", "dev", "eth0")
    assert not red.ping(GATEWAY)
    red.exec("ip", "link", "set", "dev", "eth0", "address", real_mac)
    assert red.ping(GATEWAY)

    plugin.run("DEL", spoofconf, container_id="red1", netns=red.path).ok()
    assert bridge_table(plugin.host) == EMPTY_TABLE


def test_without_macspoofchk_a_changed_mac_still_works(
    plugin: Plugin, namespaces: NamespaceFactory, spoofconf: dict[str, Any]
) -> None:
    """The control for the test above: the drop is the rule's doing."""
    red = namespaces.new("red")
    add(plugin, {**spoofconf, "macspoofchk": False}, "red1", red)
    assert bridge_table(plugin.host) == ""
    red.exec("ip", "link", "set", "dev", "eth0", "address", SPOOFED_MAC)
    red.exec("ip", "neigh", "flush", "dev", "eth0")
    assert red.ping(GATEWAY)


def test_check_reports_missing_rules(
    plugin: Plugin, namespaces: NamespaceFactory, spoofconf: dict[str, Any]
) -> None:
    red = namespaces.new("red")
    result = add(plugin, spoofconf, "red1", red)
    check = {**spoofconf, "prevResult": result}
    plugin.run("CHECK", check, container_id="red1", netns=red.path).ok()

    plugin.host.exec("nft", "flush", "chain", "bridge", "nat", "cni-br-iface-red1-eth0-mac")
    body = plugin.run("CHECK", check, container_id="red1", netns=red.path).cni_error()
    assert body["code"] == 3
    assert body["msg"].startswith("macspoofchk rule missing: cni-br-iface-red1-eth0-mac:")

    plugin.host.exec("nft", "flush", "chain", "bridge", "nat", "PREROUTING")
    body = plugin.run("CHECK", check, container_id="red1", netns=red.path).cni_error()
    assert "PREROUTING: iifname veth" in body["msg"]


def test_two_containers_and_del_without_netns(
    plugin: Plugin, namespaces: NamespaceFactory, spoofconf: dict[str, Any]
) -> None:
    red, blue = namespaces.new("red"), namespaces.new("blue")
    red_result = add(plugin, spoofconf, "red1", red)
    blue_result = add(plugin, spoofconf, "blue1", blue)
    both = (attachment(red_result, "red1"), attachment(blue_result, "blue1"))
    assert bridge_table(plugin.host) == expected_table(*both)
    assert red.ping("192.168.15.2")

    red.delete()  # the runtime removed the namespace before DEL: found by ID and ifname
    plugin.run("DEL", spoofconf, container_id="red1", netns=red.path).ok()
    assert bridge_table(plugin.host) == expected_table(both[1])
    assert blue.ping(GATEWAY)

    plugin.run("DEL", spoofconf, container_id="blue1", netns="").ok()
    assert bridge_table(plugin.host) == EMPTY_TABLE
    plugin.run("DEL", spoofconf, container_id="blue1", netns="").ok()  # idempotent


def test_failed_add_removes_the_rules(
    plugin: Plugin, namespaces: NamespaceFactory, spoofconf: dict[str, Any]
) -> None:
    red = namespaces.new("red")
    env = {FAULT_ENV: "port"}  # the last step: every earlier one is undone
    out = plugin.run("ADD", spoofconf, container_id="red1", netns=red.path, extra_env=env)
    assert out.cni_error()["code"] == 5
    assert bridge_table(plugin.host) == EMPTY_TABLE
    assert red.link_names() == ["lo"]


def test_runtime_mac_is_the_one_allowed(
    plugin: Plugin, namespaces: NamespaceFactory, spoofconf: dict[str, Any]
) -> None:
    red = namespaces.new("red")
    conf = {**spoofconf, "runtimeConfig": {"mac": "0a:58:c0:a8:0f:42"}}
    result = add(plugin, conf, "red1", red)
    assert result["interfaces"][2]["mac"] == "0a:58:c0:a8:0f:42"
    assert bridge_table(plugin.host) == expected_table(attachment(result, "red1"))
    assert red.ping(GATEWAY)
