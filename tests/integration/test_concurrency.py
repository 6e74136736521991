"""Concurrent plugin processes on one network: distinct addresses, every container configured,
and a clean slate after concurrent DELs; racing ADDs on a bridge that does not exist yet."""

from __future__ import annotations

import ipaddress
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.support.netns import Namespace, NamespaceFactory
from tests.support.plugin import Outcome, Plugin, chain_name, reservations

COUNT = 20
GATEWAY = "192.168.15.5"


def run_all(
    plugin: Plugin, command: str, conf: dict[str, Any], nss: list[Namespace]
) -> list[Outcome]:
    with ThreadPoolExecutor(max_workers=len(nss)) as pool:
        futures = [
            pool.submit(plugin.run, command, conf, container_id=f"c{i}", netns=ns.path)
            for i, ns in enumerate(nss)
        ]
        return [f.result() for f in futures]


def test_twenty_concurrent_adds_then_dels(
    plugin: Plugin,
    namespaces: NamespaceFactory,
    netconf: dict[str, Any],
    data_dir: Path,
    bridge_name: str,
) -> None:
    nss = [namespaces.new(f"c{i}") for i in range(COUNT)]

    results = [o.ok().json for o in run_all(plugin, "ADD", netconf, nss)]

    addresses = [r["ips"][0]["address"] for r in results]
    assert len(set(addresses)) == COUNT
    assert all(
        ipaddress.ip_interface(a) in ipaddress.ip_network("192.168.15.0/24") for a in addresses
    )
    assert f"{GATEWAY}/24" not in addresses
    for ns, address in zip(nss, addresses, strict=True):
        assert ns.addresses("eth0") == [address]
    veths = plugin.host.links("veth")
    assert len(veths) == COUNT
    assert {v["master"] for v in veths} == {bridge_name}
    assert plugin.host.addresses(bridge_name) == [f"{GATEWAY}/24"]
    rules = plugin.host.nat_rules()
    assert sorted(r.split()[1] for r in rules if r.startswith("-N ")) == sorted(
        chain_name("testnet", f"c{i}") for i in range(COUNT)
    )
    assert len(rules) == 4 * COUNT
    assert reservations(data_dir, "testnet") == {
        a.split("/")[0]: f"c{i}\r\neth0".encode() for i, a in enumerate(addresses)
    }
    for ns in nss[:3]:
        assert ns.ping(GATEWAY)
    assert nss[0].ping(addresses[-1].split("/")[0])
    assert nss[-1].ping(addresses[0].split("/")[0])

    for outcome in run_all(plugin, "DEL", netconf, nss):
        outcome.ok()

    assert plugin.host.links("veth") == []
    assert plugin.host.nat_rules() == []
    assert reservations(data_dir, "testnet") == {}
    assert all(ns.link_names() == ["lo"] for ns in nss)
    assert plugin.host.addresses(bridge_name) == [f"{GATEWAY}/24"]


def test_two_adds_race_to_create_the_bridge(
    plugin: Plugin, namespaces: NamespaceFactory, netconf: dict[str, Any], data_dir: Path
) -> None:
    """plugins#366: both see no bridge, both create it and add the gateway (EEXIST is fine).
    Three rounds, each with its own bridge and subnet, to give the race a chance."""
    for round_no in range(3):
        bridge = f"{netconf['bridge']}r{round_no}"
        subnet = f"192.168.{20 + round_no}"
        ipam = {"type": "host-local", "subnet": f"{subnet}.0/24", "dataDir": str(data_dir)}
        conf = {**netconf, "bridge": bridge, "name": f"race{round_no}", "ipam": ipam}
        pair = [namespaces.new(f"r{round_no}a"), namespaces.new(f"r{round_no}b")]

        for outcome in run_all(plugin, "ADD", conf, pair):
            outcome.ok()

        assert plugin.host.addresses(bridge) == [f"{subnet}.1/24"]
        got = sorted(ns.addresses("eth0")[0] for ns in pair)
        assert got == [f"{subnet}.2/24", f"{subnet}.3/24"]
        assert pair[0].ping(f"{subnet}.1")
        other = pair[1].addresses("eth0")[0].split("/")[0]
        assert pair[0].ping(other)
