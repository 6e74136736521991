"""What the allocator needs from a reservation store, and an in-memory store for tests."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Protocol

from cni_bridge_py.netaddr import IPAddress


class Store(Protocol):
    """host-local's store: reservations keyed by address, owned by (container ID, ifname)."""

    def lock(self) -> AbstractContextManager[None]:
        """Exclusive access to the network's reservations."""

    def reserve(self, container_id: str, ifname: str, addr: IPAddress, range_id: int) -> bool:
        """Claim `addr`; False when somebody already holds it."""

    def last_reserved(self, range_id: int) -> IPAddress | None: ...

    def release(self, container_id: str, ifname: str) -> list[IPAddress]:
        """Drop every reservation of this attachment; returns what was released."""

    def owned_by(self, container_id: str, ifname: str) -> list[IPAddress]: ...


class MemoryStore:
    def __init__(self) -> None:
        self.owners: dict[IPAddress, tuple[str, str]] = {}
        self.last: dict[int, IPAddress] = {}
        self._mutex = threading.Lock()

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        with self._mutex:
            yield

    def reserve(self, container_id: str, ifname: str, addr: IPAddress, range_id: int) -> bool:
        if addr in self.owners:
            return False
        self.owners[addr] = (container_id, ifname)
        self.last[range_id] = addr
        return True

    def last_reserved(self, range_id: int) -> IPAddress | None:
        return self.last.get(range_id)

    def release(self, container_id: str, ifname: str) -> list[IPAddress]:
        mine = self.owned_by(container_id, ifname)
        for addr in mine:
            del self.owners[addr]
        return mine

    def owned_by(self, container_id: str, ifname: str) -> list[IPAddress]:
        return [a for a, owner in self.owners.items() if owner == (container_id, ifname)]
