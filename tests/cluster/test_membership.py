"""Nodes joining and leaving: ten joins at once get ten distinct subnets; a stopped node's key
expires after the TTL and the others remove its routes; a node restarted within the TTL keeps
its subnet and its pods keep working."""

from __future__ import annotations

import ipaddress
import time
from functools import partial

from tests.cluster.lab import TTL, Cluster, Node, wait_for


def test_ten_nodes_joining_at_once_get_ten_distinct_subnets(cluster: Cluster) -> None:
    # A /20 holds 16 node subnets: ten random picks collide often, so the transactions that
    # lose have to move on.
    nodes = [cluster.add_node(clusterRange="10.244.0.0/20") for _ in range(10)]
    started = time.monotonic()
    for node in nodes:
        node.start()
    for node in nodes:
        node.wait_subnet(timeout=60)
    elapsed = time.monotonic() - started
    subnets = [node.subnet() for node in nodes]
    assert len(set(subnets)) == 10, subnets
    assert all(
        ipaddress.IPv4Network(s or "").subnet_of(ipaddress.IPv4Network("10.244.0.0/20"))
        for s in subnets
    )
    assert len(cluster.etcd_keys()) == 10
    joins = sorted(node.join_ms() for node in nodes)
    print(f"\nten joins at once: all leased {elapsed:.1f}s after the starts (services"
          f" included); lease transactions {joins[0]:.0f}-{joins[-1]:.0f} ms")  # fmt: skip
    # Every node routes to the nine others.
    for node in nodes:
        wait_for(partial(routes_held, node, 9), 20, f"{node.name}'s routes")


def routes_held(node: Node, count: int) -> bool:
    return len(node.routes()) == count


def route_to(node: Node, subnet: str) -> bool:
    return any(r["dst"] == subnet for r in node.routes())


def test_a_stopped_node_expires_and_a_restarted_one_keeps_its_subnet(cluster: Cluster) -> None:
    first, second, third = (cluster.add_node() for _ in range(3))
    for node in (first, second, third):
        node.start()
    for node in (first, second, third):
        node.wait_subnet()
        cluster.add_pod(node, "a").ok()
    for node in (first, second, third):
        wait_for(partial(routes_held, node, 2), 10, f"{node.name}'s routes")

    # The third node stops for good: its key lives out its TTL, then the routes go.
    gone = third.subnet() or ""
    stopped = time.monotonic()
    assert third.stop() == 0, third.log_text()  # SIGTERM: a clean exit, watch closed
    exited = time.monotonic() - stopped
    key = f"{cluster.key_prefix}/podnet/subnets/{gone.replace('/', '-')}"
    assert key in cluster.etcd_keys()
    wait_for(lambda: key not in cluster.etcd_keys(), TTL + 5, "the stopped node's key to expire")
    expired = time.monotonic() - stopped
    wait_for(lambda: not route_to(first, gone) and not route_to(second, gone), 5,
             "the other nodes to remove the route")  # fmt: skip
    removed = time.monotonic() - stopped
    assert TTL - 1.5 <= expired <= TTL + 3, expired
    assert "removing route" in first.log_text()

    # The second node restarts within the TTL: same subnet, its pod reachable throughout.
    kept = second.subnet()
    pod_address = second.pods["a"][1]
    second.stop()
    second.start()
    wait_for(lambda: "kept subnet" in second.log_text(), 15, "the restarted service's lease")
    assert second.subnet() == kept
    assert first.pods["a"][0].ping(pod_address)
    # It now holds the key with a new lease, so the old lease's expiry takes nothing away.
    time.sleep(TTL + 1)
    assert (
        f"{cluster.key_prefix}/podnet/subnets/{(kept or '').replace('/', '-')}"
        in cluster.etcd_keys()
    )
    assert route_to(first, kept or "")
    assert first.pods["a"][0].ping(pod_address)
    print(f"\nnode stopped (exited {exited:.2f}s after SIGTERM): key expired {expired:.1f}s after"
          f" the SIGTERM (TTL {TTL}s), routes removed after {removed:.1f}s; restart within the"
          f" TTL kept {kept}")  # fmt: skip


def test_the_watch_shows_a_change_at_once_not_at_the_next_interval(cluster: Cluster) -> None:
    """With a long interval, a new node is routed to as soon as its key exists: the services
    watch the keys, the interval is only the fallback (and the lease's refresh)."""
    first = cluster.add_node(syncInterval=2.5)
    first.start()
    first.wait_subnet()
    time.sleep(0.3)  # its first sync is done: it now waits for its next interval
    second = cluster.add_node(syncInterval=2.5)
    second.start()
    subnet = second.wait_subnet()
    seen = wait_for(lambda: route_to(first, subnet), 5, "the first node's route to the second")
    print(
        f"\na new node's route was in place {seen * 1000:.0f} ms after its lease (interval 2.5 s)"
    )
    assert seen < 1.0
