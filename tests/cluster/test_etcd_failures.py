"""etcd failing under the nodes (an etcd cluster of this module's own, since it is killed):
one member killed, the whole cluster stopped and started again, etcd unreachable."""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from tests.cluster.conftest import Lab, make_lab
from tests.cluster.lab import TTL, Cluster, Node, wait_for


def routes_held(node: Node, count: int) -> bool:
    return len(node.routes()) == count


@pytest.fixture(scope="module")
def own_lab(root: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from make_lab(tmp_path_factory.mktemp("etcd-failures"))


@pytest.fixture
def world(own_lab: Lab, installed: Path) -> Iterator[Cluster]:
    world = own_lab.cluster(installed)
    try:
        for _ in range(2):
            world.add_node().start()
        for node in world.nodes:
            node.wait_subnet()
            world.add_pod(node, "a").ok()
        for node in world.nodes:  # each routes to the other before etcd is disturbed
            wait_for(partial(routes_held, node, 1), 10, f"{node.name}'s route")
        yield world
    finally:
        world.close()
        # The next test starts from a whole etcd cluster.
        for member in own_lab.etcd.members:
            if member.proc is None or member.proc.poll() is not None:
                member.start(own_lab.etcd.initial, own_lab.etcd.token)
        own_lab.etcd.wait_healthy()


def test_one_member_killed_leases_joins_and_adds_still_work(world: Cluster) -> None:
    before = sorted(world.etcd_keys())
    # The first endpoint: the one every service asks first.
    world.etcd.members[0].kill()
    killed = time.monotonic()
    late = world.add_node()
    late.start()
    subnet = late.wait_subnet()
    joined = time.monotonic() - killed
    world.add_pod(late, "a").ok()
    first = world.nodes[0]
    wait_for(lambda: len(first.routes()) == 2 and len(late.routes()) == 2, 10, "the routes")
    assert first.pods["a"][0].ping(late.pods["a"][1])
    # The leases of the first two nodes are kept alive by the two members left.
    time.sleep(TTL + 1)
    assert set(before) <= set(world.etcd_keys())
    assert len(world.etcd_keys()) == 3
    assert late.subnet() == subnet
    assert "etcd: now using" in first.log_text()
    print(f"\none member killed: a new node leased {subnet} {joined:.1f}s after the kill")


def test_the_whole_etcd_cluster_stopped_and_started_again(world: Cluster) -> None:
    first, second = world.nodes
    keys = sorted(world.etcd_keys())
    world.etcd.stop()
    stopped = time.monotonic()
    wait_for(lambda: "waiting for etcd" in first.log_text(), 10, "the service to notice")

    # etcd unreachable: a node that holds a lease still adds pods (its local file)...
    world.add_pod(first, "b").ok()
    assert second.pods["a"][0].ping(first.pods["b"][1]), (
        second.routes(),
        first.log_text(),
        second.log_text(),
    )
    # ... and a node without one answers 11, its service saying what it waits for.
    late = world.add_node()
    late.start()
    wait_for(lambda: "no subnet yet" in late.log_text(), 15, "the new node's log")
    assert "waiting for etcd" in late.log_text()
    body = world.add_pod(late, "a").error(11)
    assert "no subnet lease yet" in body["msg"]
    for node in (first, second, late):
        assert node.proc is not None and node.proc.poll() is None, node.log_text()
    # `node --status` still shows the local side, and says what is missing.
    status = first.status()
    assert status.returncode == 1, status.stdout + status.stderr
    assert "etcd unreachable" in status.stdout
    assert f"local lease: {first.subnet()}" in status.stdout
    assert "routes held by this node (1)" in status.stdout

    # An outage longer than the TTL: the leases survive it (etcd renews every lease when a
    # leader takes over, and the services refresh theirs as soon as it answers).
    time.sleep(max(0.0, TTL + 1 - (time.monotonic() - stopped)))
    down = time.monotonic() - stopped
    restarted = time.monotonic()
    healthy = world.etcd.start()
    # Nothing lost, and the services reconnect by themselves.
    late.wait_subnet(timeout=30)
    rejoined = time.monotonic() - restarted
    assert set(keys) <= set(world.etcd_keys())
    assert len(world.etcd_keys()) == 3
    wait_for(lambda: "etcd answers again" in first.log_text(), 10, "the first node to reconnect")
    world.add_pod(late, "a").ok()
    wait_for(lambda: len(first.routes()) == 2 and len(late.routes()) == 2, 10, "the routes")
    assert first.pods["a"][0].ping(late.pods["a"][1])
    time.sleep(TTL + 1)  # the leases were renewed, not merely not expired yet
    assert set(keys) <= set(world.etcd_keys())
    print(f"\nwhole etcd cluster down {down:.1f}s; started again, it answered after"
          f" {healthy:.1f}s and the waiting node held a lease after {rejoined:.1f}s")  # fmt: skip
