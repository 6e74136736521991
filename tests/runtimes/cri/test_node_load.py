"""A node under a kubelet's load, one-shot and with the agent: 30 pods started at once, as a
kubelet starts a node's pods after a reboot, and containerd restarted while pods run."""

from __future__ import annotations

import ipaddress
from concurrent.futures import ThreadPoolExecutor

from tests.runtimes.cri.client import Pod
from tests.runtimes.cri.conftest import Lane
from tests.runtimes.cri.test_pods import assert_attached, pod_cidr, reaches
from tests.runtimes.libcni import cache_entries

BURST = 30


def unreachable_from_node(lane: Lane, addresses: list[str]) -> list[str]:
    """The addresses the node cannot ping (one shell on the node for all of them)."""
    loop = "for a in " + " ".join(addresses) + "; do ping -c 1 -W 2 $a >/dev/null || echo $a; done"
    return lane.node.sh(loop).stdout.split()


def test_30_pods_started_at_once_get_distinct_reachable_addresses_and_stopping_leaves_nothing(
    lane: Lane,
) -> None:
    node = lane.node
    with ThreadPoolExecutor(max_workers=BURST) as pool:
        ids = list(pool.map(lambda i: node.run_pod(Pod(f"burst-{i}")), range(BURST)))
        statuses = list(pool.map(node.client.status, ids))
    addresses = [s.ip for s in statuses]
    assert all(s.ready for s in statuses)
    assert len(set(addresses)) == BURST, sorted(addresses)
    assert all(ipaddress.ip_address(a) in pod_cidr(node) for a in addresses)
    assert sorted(node.seed.reservations(node.network)) == sorted(addresses)
    assert len(node.host_veths()) == BURST
    assert unreachable_from_node(lane, addresses) == []
    assert reaches(node, statuses[0], addresses[-1])

    with ThreadPoolExecutor(max_workers=BURST) as pool:
        list(pool.map(node.client.stop, ids))
        list(pool.map(node.client.remove, ids))
    assert node.leftovers() == {}
    lane.check_mode()


def test_pods_keep_their_addresses_across_a_containerd_restart_and_stop_cleanly_after_it(
    lane: Lane,
) -> None:
    node = lane.node
    before = [node.start(Pod(f"steady-{i}")) for i in range(2)]
    assert node.containerd is not None and node.containerd.proc is not None
    first_daemon = node.containerd.proc.pid
    node.restart_containerd()
    assert node.containerd.proc.pid != first_daemon
    after = [node.client.status(pod.id) for pod in before]
    assert [(p.id, p.ip, p.netns) for p in after] == [(p.id, p.ip, p.netns) for p in before]
    for pod in after:
        assert_attached(node, pod)
    assert reaches(node, after[0], after[1].ip)
    # libcni's cache (what containerd's DEL will send as prevResult) and our store agree.
    cached = {
        entry.container_id: entry.result["ips"][0]["address"].split("/")[0]
        for entry in cache_entries(node.seed.dir("/var/lib/cni"), node.network)
    }
    assert cached == {p.id: p.ip for p in after}
    stored = node.seed.reservations(node.network)
    assert {ip: owner.split(b"\r\n")[0].decode() for ip, owner in stored.items()} == {
        p.ip: p.id for p in after
    }

    for pod in after:
        node.client.stop(pod.id)
        node.client.remove(pod.id)
    assert node.leftovers() == {}
    lane.check_mode()
