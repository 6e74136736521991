"""What the node service needs of etcd and of the kernel (etcd.py and kernel.py implement
them; the unit tests pass fakes)."""

from __future__ import annotations

import ipaddress
import threading
from typing import Protocol

from cni_bridge_py.cluster.plan import Changes, Route
from cni_bridge_py.record import record


class StoreUnavailable(Exception):
    """No etcd endpoint answered."""


@record(frozen=True)
class Entry:
    key: str
    value: bytes
    mod_revision: int
    lease: int


class Closable(Protocol):
    def close(self) -> None: ...


class Store(Protocol):
    endpoints: tuple[str, ...]

    def grant(self, ttl: int) -> int: ...
    def keep_alive(self, lease_id: int) -> int: ...
    def time_to_live(self, lease_id: int) -> tuple[int, int]: ...
    def list(self, prefix: str) -> list[Entry]: ...
    def create(self, key: str, value: str, lease_id: int) -> bool: ...
    def replace(self, key: str, value: str, lease_id: int, mod_revision: int) -> bool: ...
    def watch(self, prefix: str, wake: threading.Event) -> Closable:
        """Set `wake` whenever a key under `prefix` changes, until closed."""
        ...


KernelState = tuple[list[Route], dict[ipaddress.IPv4Address, str], dict[str, ipaddress.IPv4Address]]


class Kernel(Protocol):
    def ensure_vxlan(self, local: ipaddress.IPv4Address) -> str: ...
    def vxlan_address(self, vtep: ipaddress.IPv4Address) -> None: ...
    def state(self) -> KernelState: ...
    def apply(self, changes: Changes) -> list[str]: ...
