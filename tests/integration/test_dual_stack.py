"""IPv6 and dual stack: one address per range set, IPv6 on the bridge without DAD delay,
the container's IPv6 sysctls, forwarding, ip6tables masquerade, and clean DEL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.netns import NamespaceFactory
from tests.support.plugin import Plugin, chain_name


@pytest.fixture
def dual(netconf: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    conf = dict(netconf)
    conf["ipam"] = {
        "type": "host-local",
        "ranges": [[{"subnet": "10.77.0.0/24"}], [{"subnet": "fd77::/64"}]],
        "dataDir": str(data_dir),
    }
    return conf


def test_dual_stack_add_check_del(
    plugin: Plugin, namespaces: NamespaceFactory, dual: dict[str, Any], data_dir: Path
) -> None:
    red, blue = namespaces.new("red"), namespaces.new("blue")
    result = plugin.run("ADD", dual, container_id="red", netns=red.path).ok().json
    plugin.run("ADD", dual, container_id="blue", netns=blue.path).ok()

    assert [ip["address"] for ip in result["ips"]] == ["10.77.0.2/24", "fd77::2/64"]
    assert {r["dst"]: r["gw"] for r in result["routes"]} == {
        "0.0.0.0/0": "10.77.0.1",
        "::/0": "fd77::1",
    }
    assert red.addresses("eth0", "inet6") == ["fd77::2/64"]
    assert [r["gateway"] for r in red.routes("-6") if r["dst"] == "default"] == ["fd77::1"]
    # The gateway is usable at once: added without duplicate address detection.
    bridge_v6 = plugin.host.ip_json("-6", "addr", "show", "dev", dual["bridge"])[0]["addr_info"]
    gateway = [a for a in bridge_v6 if a["local"] == "fd77::1"]
    assert gateway and gateway[0].get("nodad") and not gateway[0].get("tentative")
    assert red.sysctl("net/ipv6/conf/eth0/accept_dad") == "0"
    assert red.sysctl("net/ipv6/conf/eth0/disable_ipv6") == "0"
    assert plugin.host.sysctl("net/ipv6/conf/all/forwarding") == "1"
    assert red.ping("fd77::3") and red.ping("fd77::1") and red.ping("10.77.0.3")

    v6_rules = plugin.host.nat_rules("ip6tables")
    chain = chain_name(dual["name"], "red")
    comment = f'"name: \\"{dual["name"]}\\" id: \\"red\\""'
    assert f"-A POSTROUTING -s fd77::2/128 -m comment --comment {comment} -j {chain}" in v6_rules
    assert any(f"-A {chain} ! -d ff00::/8" in rule for rule in v6_rules)

    plugin.run("CHECK", {**dual, "prevResult": result}, container_id="red", netns=red.path).ok()
    plugin.run("DEL", dual, container_id="red", netns=red.path).ok()
    plugin.run("DEL", dual, container_id="blue", netns=blue.path).ok()
    assert plugin.host.nat_rules("ip6tables") == [] and plugin.host.nat_rules() == []
    assert sorted(p.name for p in (data_dir / dual["name"]).iterdir()) == [
        "last_reserved_ip.0",
        "last_reserved_ip.1",
        "lock",
    ]


def test_ipv6_only_with_enabledad_waits_for_nothing_and_sets_dad(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], data_dir: Path
) -> None:
    conf = {
        **netconf,
        "enabledad": True,
        "ipam": {"type": "host-local", "subnet": "fd78::/120", "dataDir": str(data_dir)},
    }
    red = namespaces.new("red")
    plugin.run("ADD", conf, container_id="red", netns=red.path).ok()
    assert red.sysctl("net/ipv6/conf/eth0/accept_dad") == "1"
    assert red.sysctl("net/ipv6/conf/eth0/enhanced_dad") == "1"
    assert red.addresses("eth0", "inet6") == ["fd78::2/120"]
    plugin.run("DEL", conf, container_id="red", netns=red.path).ok()
    assert red.link("eth0") is None
