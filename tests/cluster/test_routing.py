"""Three nodes, each with a pod: pods reach each other across nodes by pod address (host-gw
and vxlan), the receiver sees the sender's pod address, and only traffic that leaves the
cluster range is masqueraded."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from tests.cluster.conftest import Lab
from tests.cluster.lab import SYNC, Cluster, Node, udp_source, wait_for
from tests.support.netns import sh

OUTSIDE_NODE = "10.200.0.1"
OUTSIDE = "10.200.0.2"


@pytest.fixture(scope="module", params=["host-gw", "vxlan"])
def three(request: pytest.FixtureRequest, lab: Lab, installed: Path) -> Iterator[Cluster]:
    world = lab.cluster(installed, backend=request.param)
    try:
        nodes = [world.add_node() for _ in range(3)]
        for node in nodes:
            node.start()
        for node in nodes:
            node.wait_subnet()
        for node in nodes:
            world.add_pod(node, "a").ok()
        # Every node has routes to the two others.
        for node in nodes:
            wait_for(partial(routes_to_others, node), 10, f"{node.name}'s routes")
        yield world
    finally:
        world.close()


def routes_to_others(node: Node) -> bool:
    return len(node.routes()) == 2


def test_three_nodes_hold_three_distinct_subnets(three: Cluster) -> None:
    subnets = {node.subnet() for node in three.nodes}
    assert len(subnets) == 3
    assert len(three.etcd_keys()) == 3
    for node in three.nodes:
        _, address = node.pods["a"]
        assert ipaddress.ip_address(address) in ipaddress.ip_network(node.subnet() or "")


def test_pods_ping_each_other_across_nodes(three: Cluster) -> None:
    for sender in three.nodes:
        ns, _ = sender.pods["a"]
        for receiver in three.nodes:
            if receiver is not sender:
                address = receiver.pods["a"][1]
                assert ns.ping(address), f"{sender.name} -> {receiver.name} ({address})"


def test_the_receiving_pod_sees_the_senders_pod_address(three: Cluster) -> None:
    first, second = three.nodes[0], three.nodes[1]
    sender, sender_address = first.pods["a"]
    receiver, receiver_address = second.pods["a"]
    assert udp_source(receiver, receiver_address, sender) == sender_address


def test_traffic_leaving_the_cluster_range_is_masqueraded(three: Cluster) -> None:
    node = three.nodes[0]
    outside = three.factory.host("outside")
    # An outside network on node 1 only, with no route back to the pods' range.
    sh("ip", "-n", node.ns.name, "link", "add", "out0", "type", "veth",
       "peer", "name", "out", "netns", outside.name)  # fmt: skip
    node.ns.exec("ip", "addr", "add", f"{OUTSIDE_NODE}/24", "dev", "out0")
    node.ns.exec("ip", "link", "set", "out0", "up")
    outside.exec("ip", "addr", "add", f"{OUTSIDE}/24", "dev", "out")
    outside.exec("ip", "link", "set", "out", "up")
    sender, _ = node.pods["a"]
    assert sender.ping(OUTSIDE)
    assert udp_source(outside, OUTSIDE, sender) == OUTSIDE_NODE


def test_each_node_holds_what_the_backend_needs(three: Cluster) -> None:
    node = three.nodes[0]
    others = three.nodes[1:]
    routes = {r["dst"]: r for r in node.routes()}
    assert set(routes) == {o.subnet() for o in others}
    if three.backend == "host-gw":
        assert {routes[o.subnet() or ""]["gateway"] for o in others} == {o.address for o in others}
        return
    device = node.cluster.get("vxlanDevice", "cbp.vxlan")
    link = node.ns.link(device)
    assert link is not None and link["linkinfo"]["info_kind"] == "vxlan"
    assert link["linkinfo"]["info_data"]["id"] == 1
    fdb = node.ns.exec("bridge", "fdb", "show", "dev", device)
    for other in others:
        assert f"dst {other.address}" in fdb, fdb
        vtep = str(ipaddress.ip_network(other.subnet() or "").network_address)
        assert routes[other.subnet() or ""]["gateway"] == vtep


def test_node_status_prints_the_cluster(three: Cluster) -> None:
    node = three.nodes[0]
    status = node.status()
    assert status.returncode == 0, status.stderr
    for other in three.nodes:
        assert other.name in status.stdout and (other.subnet() or "") in status.stdout
        assert other.address in status.stdout
    assert "routes held by this node (2)" in status.stdout
    if three.backend == "vxlan":
        assert "FDB entries on cbp.vxlan (2)" in status.stdout
        assert "neighbours on cbp.vxlan (2)" in status.stdout


def test_a_sync_with_nothing_new_changes_nothing(three: Cluster) -> None:
    """The service reads back what it wrote: later syncs plan no change (the log names each
    route and FDB entry once)."""
    node = three.nodes[1]
    time.sleep(3 * SYNC)
    log = node.log_text()
    assert log.count("route 10.244.") == 2, log
    if three.backend == "vxlan":
        assert log.count("FDB ") == 2, log
        assert len(node.ns.ip_json("neigh", "show", "dev", "cbp.vxlan")) == 2
