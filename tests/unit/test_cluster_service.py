"""The node service's loop over a fake etcd and a fake kernel: joining, collisions, a restart
within and after the TTL, lost leases, etcd going away and coming back, peers leaving."""

from __future__ import annotations

import ipaddress
import itertools
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cni_bridge_py.cluster import lease_file, plan
from cni_bridge_py.cluster.config import ClusterConf
from cni_bridge_py.cluster.ports import Entry, KernelState, StoreUnavailable
from cni_bridge_py.cluster.records import NodeRecord, parse_record, subnet_key
from cni_bridge_py.cluster.service import NodeService

net = ipaddress.IPv4Network
ip = ipaddress.IPv4Address
PREFIX = "/t/podnet/"


class FakeStore:
    endpoints: tuple[str, ...] = ("http://etcd:2379",)

    def __init__(self) -> None:
        self.keys: dict[str, tuple[str, int, int]] = {}  # key -> (value, mod revision, lease)
        self.leases: dict[int, bool] = {}
        self.revision = itertools.count(1)
        self.ids = itertools.count(100)
        self.down = False
        # Keys another node creates just before our transaction reaches etcd.
        self.snatch: dict[str, NodeRecord] = {}
        self.watching: threading.Event | None = None

    def _up(self) -> None:
        if self.down:
            raise StoreUnavailable("http://etcd:2379: connection refused")

    def grant(self, ttl: int) -> int:
        self._up()
        lease = next(self.ids)
        self.leases[lease] = True
        return lease

    def keep_alive(self, lease_id: int) -> int:
        self._up()
        return 5 if self.leases.get(lease_id) else -1

    def time_to_live(self, lease_id: int) -> tuple[int, int]:
        return (5, 5) if self.leases.get(lease_id) else (-1, 0)

    def list(self, prefix: str) -> list[Entry]:
        self._up()
        return [
            Entry(k, v.encode(), rev, lease)
            for k, (v, rev, lease) in sorted(self.keys.items())
            if k.startswith(prefix)
        ]

    def create(self, key: str, value: str, lease_id: int) -> bool:
        self._up()
        if key in self.snatch:
            self.put(key, self.snatch.pop(key), 999)
        if key in self.keys:
            return False
        self.keys[key] = (value, next(self.revision), lease_id)
        return True

    def replace(self, key: str, value: str, lease_id: int, mod_revision: int) -> bool:
        self._up()
        if key not in self.keys or self.keys[key][1] != mod_revision:
            return False
        self.keys[key] = (value, next(self.revision), lease_id)
        return True

    def watch(self, prefix: str, wake: threading.Event) -> FakeStore:
        self.watching = wake
        return self

    def close(self) -> None:
        self.watching = None

    def put(self, key: str, record: NodeRecord, lease: int) -> None:
        self.keys[key] = (record.to_json(), next(self.revision), lease)

    def expire(self, lease: int) -> None:
        self.leases[lease] = False
        self.keys = {k: v for k, v in self.keys.items() if v[2] != lease}


class FakeKernel:
    def __init__(self) -> None:
        self.routes: set[plan.Route] = set()

    def ensure_vxlan(self, local: ipaddress.IPv4Address) -> str:
        return "02:00:00:00:00:aa"

    def vxlan_address(self, vtep: ipaddress.IPv4Address) -> None:
        return None

    def state(self) -> KernelState:
        return list(self.routes), {}, {}

    def apply(self, changes: plan.Changes) -> list[str]:
        self.routes -= set(changes.del_routes)
        self.routes |= set(changes.add_routes)
        return []


def conf(tmp_path: Path, cluster_range: str = "10.244.0.0/16") -> ClusterConf:
    return ClusterConf(
        network="podnet",
        endpoints=FakeStore.endpoints,
        key_prefix="/t",
        cluster_range=net(cluster_range),
        subnet_len=24,
        backend="host-gw",
        subnet_file=str(tmp_path / "subnet.json"),
        lease_ttl=5,
        sync_interval=1,
    )


def service(
    tmp_path: Path, store: FakeStore, kernel: FakeKernel | None = None, **kw: str
) -> NodeService:
    return NodeService(
        conf(tmp_path, **kw), store, kernel or FakeKernel(), name="n1", address=ip("10.0.0.1")
    )


def peer(store: FakeStore, name: str, subnet: str, address: str) -> int:
    lease = store.grant(5)
    record = NodeRecord(name, net(subnet), ip(address), "host-gw", since=1.0)
    store.put(subnet_key(PREFIX, net(subnet)), record, lease)
    return lease


def test_a_join_leases_a_free_subnet_writes_the_file_and_routes_to_peers(tmp_path: Path) -> None:
    store, kernel = FakeStore(), FakeKernel()
    peer(store, "n2", "10.244.2.0/24", "10.0.0.2")
    node = service(tmp_path, store, kernel)
    node.step()
    assert node.held is not None
    subnet = node.held.record.subnet
    assert subnet != net("10.244.2.0/24")
    mine = parse_record(store.keys[subnet_key(PREFIX, subnet)][0])
    assert (mine.node, mine.address) == ("n1", ip("10.0.0.1"))
    local = lease_file.read(str(tmp_path / "subnet.json"))
    assert local is not None and local.subnet == subnet
    assert kernel.routes == {plan.Route(net("10.244.2.0/24"), ip("10.0.0.2"))}


def test_a_subnet_taken_between_listing_and_transaction_is_skipped(tmp_path: Path) -> None:
    store = FakeStore()
    # A /23 has two subnets. We try 10.244.0.0/24 first (our local file's), and another node
    # creates its key just before our transaction.
    taken = net("10.244.0.0/24")
    lease_file.write(
        str(tmp_path / "subnet.json"), lease_file.LocalLease("podnet", taken, "n1", "host-gw")
    )
    store.snatch[subnet_key(PREFIX, taken)] = NodeRecord("other", taken, ip("10.0.0.9"), "host-gw")
    node = service(tmp_path, store, cluster_range="10.244.0.0/23")
    node.step()
    assert not store.snatch, "the other node took it first"
    assert node.held is not None and node.held.record.subnet == net("10.244.1.0/24")
    assert parse_record(store.keys[subnet_key(PREFIX, taken)][0]).node == "other"


def test_a_restart_within_the_ttl_takes_its_key_over(tmp_path: Path) -> None:
    store = FakeStore()
    old_lease = peer(store, "n1", "10.244.7.0/24", "10.0.0.1")
    node = service(tmp_path, store)
    node.step()
    assert node.held is not None and node.held.record.subnet == net("10.244.7.0/24")
    assert node.held.lease_id != old_lease
    assert node.held.record.since == 1.0  # the subnet's age goes on
    # The old lease's expiry takes nothing away: the key is bound to the new one.
    store.expire(old_lease)
    assert subnet_key(PREFIX, net("10.244.7.0/24")) in store.keys


def test_after_the_ttl_the_local_file_subnet_is_asked_for_first(tmp_path: Path) -> None:
    store = FakeStore()
    lease_file.write(
        str(tmp_path / "subnet.json"),
        lease_file.LocalLease("podnet", net("10.244.42.0/24"), "n1", "host-gw"),
    )
    node = service(tmp_path, store)
    node.step()
    assert node.held is not None and node.held.record.subnet == net("10.244.42.0/24")


def test_a_lost_lease_is_leased_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = FakeStore()
    node = service(tmp_path, store)
    node.step()
    assert node.held is not None
    first = node.held
    store.expire(first.lease_id)
    node.step()  # the key is gone: joins again, the local file's subnet first
    assert node.held is not None and node.held.lease_id != first.lease_id
    assert node.held.record.subnet == first.record.subnet
    assert "leasing again" in caplog.text


def test_etcd_away_and_back(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    store, kernel = FakeStore(), FakeKernel()
    store.down = True
    node = service(tmp_path, store, kernel)
    node.step()
    node.step()
    assert node.held is None and not (tmp_path / "subnet.json").exists()
    assert caplog.text.count("waiting for etcd") == 1  # said once, not every step
    assert "no subnet yet: ADD answers code 11" in caplog.text
    store.down = False
    peer(store, "n2", "10.244.2.0/24", "10.0.0.2")
    node.step()
    assert node.held is not None and "etcd answers again" in caplog.text
    store.down = True
    node.step()
    # Everything kept while etcd is away: the file and the routes.
    assert f"keeping subnet {node.held.record.subnet}" in caplog.text
    assert lease_file.read(str(tmp_path / "subnet.json")) is not None
    assert len(kernel.routes) == 1


def test_a_peer_that_leaves_loses_its_route(tmp_path: Path) -> None:
    store, kernel = FakeStore(), FakeKernel()
    lease = peer(store, "n2", "10.244.2.0/24", "10.0.0.2")
    peer(store, "n3", "10.244.3.0/24", "10.0.0.3")
    node = service(tmp_path, store, kernel)
    node.step()
    assert len(kernel.routes) == 2
    store.expire(lease)
    node.step()
    assert kernel.routes == {plan.Route(net("10.244.3.0/24"), ip("10.0.0.3"))}


def test_a_full_range_is_waited_on(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = FakeStore()
    peer(store, "n2", "10.244.0.0/24", "10.0.0.2")
    node = service(tmp_path, store, cluster_range="10.244.0.0/24")
    node.step()
    assert node.held is None
    assert "waiting for a free /24 in 10.244.0.0/24 (1 leased)" in caplog.text


def test_run_watches_until_stopped(tmp_path: Path) -> None:
    store = FakeStore()
    node = service(tmp_path, store)
    stop = threading.Event()
    runner = threading.Thread(target=node.run, args=(stop,))
    runner.start()
    try:
        assert wait(lambda: node.held is not None and store.watching is not None)
        assert store.watching is node.wake
        # A change of a key: the watch wakes the loop, which syncs at once (the interval is
        # 1 s, the wait below shorter).
        peer(store, "n2", "10.244.2.0/24", "10.0.0.2")
        node.wake.set()
        assert wait(lambda: len(node.kernel.state()[0]) == 1, timeout=0.5)
    finally:
        node.stop(stop)
        runner.join(5)
    assert not runner.is_alive()
    assert store.watching is None  # the watch was closed


def wait(check: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return False
