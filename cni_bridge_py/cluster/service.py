"""The node service: hold a subnet lease in etcd, publish it locally, keep routes in step.

One loop, one step per syncInterval: join (or keep the lease alive), list every node's key,
make the kernel match (plan.py). A watch of the keys wakes the loop at once on any change;
the listing stays the truth, so a missed event costs at most one interval, and a service that
lost etcd for a while simply finds the current state when it comes back (no event to replay).

etcd down: the step logs what it waits for and keeps everything as it is: the local file
(the plugin goes on allocating in the subnet), the routes and FDB entries (pods keep talking).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable

from cni_bridge_py.cluster import lease_file, plan
from cni_bridge_py.cluster.config import ClusterConf
from cni_bridge_py.cluster.ports import Entry, Kernel, Store, StoreUnavailable
from cni_bridge_py.cluster.records import (
    BadRecord,
    NodeRecord,
    parse_record,
    subnet_key,
    subnets_prefix,
)
from cni_bridge_py.cluster.subnets import candidates, fits
from cni_bridge_py.kernel.errors import KernelError
from cni_bridge_py.record import record

log = logging.getLogger("cni-bridge-py.node")


class NoFreeSubnet(Exception):
    """Every node subnet of the cluster range is leased."""


@record
class Held:
    record: NodeRecord
    lease_id: int
    key: str


class NodeService:
    def __init__(
        self,
        conf: ClusterConf,
        store: Store,
        kernel: Kernel,
        *,
        name: str,
        address: ipaddress.IPv4Address,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.conf = conf
        self.store = store
        self.kernel = kernel
        self.name = name
        self.address = address
        self.clock = clock
        self.held: Held | None = None
        self.vtep_mac = ""
        self._waiting = ""  # what the last step waited for ("" = it went through)
        self._last_refresh = 0.0
        self.wake = threading.Event()

    def run(self, stop: threading.Event) -> None:
        if self.conf.backend == "vxlan":
            self.vtep_mac = self.kernel.ensure_vxlan(self.address)
        log.info(
            "node %s (%s, %s) for network %s, etcd %s",
            self.name,
            self.address,
            self.conf.backend,
            self.conf.network,
            ", ".join(self.conf.endpoints),
        )
        # Woken by a change of any node's key (the watch), or by the stop; otherwise once
        # per interval, which also keeps the lease alive.
        watch = self.store.watch(subnets_prefix(self.conf.network_prefix), self.wake)
        try:
            while not stop.is_set():
                self.wake.clear()
                self.step()
                self.wake.wait(self.conf.sync_interval)
        finally:
            watch.close()

    def stop(self, stop: threading.Event) -> None:
        """From a signal handler: end the loop now, not after the interval."""
        stop.set()
        self.wake.set()

    def step(self) -> None:
        try:
            entries = self.store.list(subnets_prefix(self.conf.network_prefix))
            records = _records(entries)
            if self.held is None or not self._still_mine(entries):
                self._join(entries, records)
            else:
                self._keep_alive()
            records = _records(self.store.list(subnets_prefix(self.conf.network_prefix)))
        except StoreUnavailable as exc:
            self._wait(f"etcd ({exc})")
            return
        except NoFreeSubnet as exc:
            self._wait(str(exc))
            return
        if self._waiting:
            log.info("etcd answers again: %d nodes in the cluster", len(records))
            self._waiting = ""
        try:
            self._sync(records)
        except KernelError as exc:
            # The next step tries again; the service itself stays up.
            log.warning("syncing the kernel: %s", exc)

    def _wait(self, what: str) -> None:
        if what != self._waiting:
            held = (
                f"keeping subnet {self.held.record.subnet} and the routes we have"
                if self.held
                else "no subnet yet: ADD answers code 11 (try again later)"
            )
            log.warning("waiting for %s; %s", what, held)
            self._waiting = what

    # ---- the lease ----
    def _still_mine(self, entries: list[Entry]) -> bool:
        assert self.held is not None
        for entry in entries:
            if entry.key == self.held.key:
                return entry.lease == self.held.lease_id
        log.warning("our key %s is gone: leasing again", self.held.key)
        return False

    def _join(self, entries: list[Entry], records: dict[str, NodeRecord]) -> None:
        started = time.monotonic()
        lease_id = self.store.grant(self.conf.lease_ttl)
        self._last_refresh = time.monotonic()
        # A restart within the TTL: our key still exists; take it over with the new lease.
        for entry in entries:
            record = records.get(entry.key)
            if record is not None and record.node == self.name and self._usable(record):
                mine = self._record(record.subnet, since=record.since)
                if self.store.replace(entry.key, mine.to_json(), lease_id, entry.mod_revision):
                    self._hold(mine, lease_id, entry.key, "kept", started)
                    return
        taken = {r.subnet for r in records.values()}
        for subnet in candidates(
            self.conf.cluster_range, self.conf.subnet_len, taken, self._previous_subnet()
        ):
            mine = self._record(subnet, since=self.clock())
            key = subnet_key(self.conf.network_prefix, subnet)
            if self.store.create(key, mine.to_json(), lease_id):
                self._hold(mine, lease_id, key, "leased", started)
                return
            # Another node took it between our listing and our transaction: next one.
        raise NoFreeSubnet(
            f"a free /{self.conf.subnet_len} in {self.conf.cluster_range} ({len(taken)} leased)"
        )

    def _usable(self, record: NodeRecord) -> bool:
        return fits(record.subnet, self.conf.cluster_range, self.conf.subnet_len)

    def _previous_subnet(self) -> ipaddress.IPv4Network | None:
        """The subnet of our local file (a restart after the TTL, or after etcd lost its
        data): asked for first, so the node's existing pods keep their addresses."""
        try:
            local = lease_file.read(self.conf.subnet_file)
        except (lease_file.UnreadableLease, OSError):
            return None
        if local is None or local.network != self.conf.network:
            return None
        return local.subnet

    def _record(self, subnet: ipaddress.IPv4Network, since: float) -> NodeRecord:
        return NodeRecord(
            self.name, subnet, self.address, self.conf.backend, self.vtep_mac, since or self.clock()
        )

    def _hold(self, record: NodeRecord, lease_id: int, key: str, how: str, t0: float) -> None:
        previous = self._previous_subnet()
        self.held = Held(record, lease_id, key)
        lease_file.write(
            self.conf.subnet_file,
            lease_file.LocalLease(self.conf.network, record.subnet, self.name, record.backend),
        )
        log.info(
            "%s subnet %s (lease %x, TTL %ds) in %.0f ms; wrote %s",
            how,
            record.subnet,
            lease_id,
            self.conf.lease_ttl,
            (time.monotonic() - t0) * 1000,
            self.conf.subnet_file,
        )
        if previous is not None and previous != record.subnet:
            log.warning(
                "subnet changed from %s: pods added before keep addresses of the old one",
                previous,
            )

    def _keep_alive(self) -> None:
        assert self.held is not None
        # Once per interval is at least twice per TTL (config.py checks).
        ttl = self.store.keep_alive(self.held.lease_id)
        self._last_refresh = time.monotonic()
        if ttl <= 0:
            log.warning("lease %x expired: leasing again", self.held.lease_id)
            self.held = None

    # ---- the kernel ----
    def _sync(self, records: dict[str, NodeRecord]) -> None:
        if self.held is None:
            return
        if self.conf.backend == "vxlan":
            self.kernel.vxlan_address(self.held.record.vtep_address)
        want = plan.wanted(records.values(), self.name, self.conf.backend)
        routes, neighbours, fdb = self.kernel.state()
        changes = plan.diff(want, routes, neighbours, fdb)
        if not changes:
            return
        for route in changes.add_routes:
            log.info("route %s via %s", route.dst, route.via)
        for route in changes.del_routes:
            log.info("removing route %s via %s (its node left)", route.dst, route.via)
        for mac, dst in changes.set_fdb:
            log.info("FDB %s -> %s", mac, dst)
        for mac, dst in changes.del_fdb:
            log.info("removing FDB %s -> %s", mac, dst)
        self.kernel.apply(changes)


def _records(entries: list[Entry]) -> dict[str, NodeRecord]:
    out = {}
    for entry in entries:
        try:
            out[entry.key] = parse_record(entry.value)
        except BadRecord as exc:
            log.warning("skipping %s: %s", entry.key, exc)
    return out
