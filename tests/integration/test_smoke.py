from __future__ import annotations

from typing import Any

from tests.support.netns import NamespaceFactory
from tests.support.plugin import Plugin


def test_add_configures_container_and_del_removes_everything(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], data_dir: Any
) -> None:
    red = namespaces.new("red")
    result = plugin.run("ADD", netconf, container_id="red1", netns=red.path).ok().json
    assert result["ips"] == [
        {"interface": 2, "address": "192.168.15.1/24", "gateway": "192.168.15.5"}
    ]
    assert red.addresses("eth0") == ["192.168.15.1/24"]
    assert any(r["dst"] == "default" and r["gateway"] == "192.168.15.5" for r in red.routes())
    assert plugin.host.addresses(netconf["bridge"]) == ["192.168.15.5/24"]
    assert len(plugin.host.nat_rules()) == 4
    assert (data_dir / "testnet" / "192.168.15.1").read_bytes() == b"red1\r\neth0"

    plugin.run("DEL", netconf, container_id="red1", netns=red.path).ok()
    assert red.link("eth0") is None
    assert plugin.host.links("veth") == []
    assert plugin.host.nat_rules() == []
    assert not (data_dir / "testnet" / "192.168.15.1").exists()
