"""What the allocator needs from a reservation store, and an in-memory store for tests."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from cni_bridge_py.netaddr import IPAddress

# host-local's owner line: "<containerID>\r\n<ifname>"; files from before 0.7 hold the ID only.
LINE_BREAK = "\r\n"


@dataclass(frozen=True)
class Owner:
    container_id: str
    # None: a legacy reservation that names the container only.
    ifname: str | None = None


def parse_owner(text: str) -> Owner:
    container_id, sep, ifname = text.strip().partition(LINE_BREAK)
    return Owner(container_id, ifname if sep else None)


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

    def owners(self) -> list[tuple[IPAddress, Owner]]:
        """Every reservation of the network and who holds it."""

    def remove(self, addr: IPAddress) -> bool:
        """Drop one reservation whoever holds it (GC); False when it was already gone."""

    def check_writable(self) -> None:
        """IOFailure when a reservation could not be written right now (STATUS)."""


class MemoryStore:
    def __init__(self) -> None:
        self.held: dict[IPAddress, tuple[str, str]] = {}
        self.last: dict[int, IPAddress] = {}
        self._mutex = threading.Lock()

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        with self._mutex:
            yield

    def reserve(self, container_id: str, ifname: str, addr: IPAddress, range_id: int) -> bool:
        if addr in self.held:
            return False
        self.held[addr] = (container_id, ifname)
        self.last[range_id] = addr
        return True

    def last_reserved(self, range_id: int) -> IPAddress | None:
        return self.last.get(range_id)

    def release(self, container_id: str, ifname: str) -> list[IPAddress]:
        mine = self.owned_by(container_id, ifname)
        for addr in mine:
            del self.held[addr]
        return mine

    def owned_by(self, container_id: str, ifname: str) -> list[IPAddress]:
        return [a for a, owner in self.held.items() if owner == (container_id, ifname)]

    def owners(self) -> list[tuple[IPAddress, Owner]]:
        return [(a, Owner(cid, ifname)) for a, (cid, ifname) in self.held.items()]

    def remove(self, addr: IPAddress) -> bool:
        return self.held.pop(addr, None) is not None

    def check_writable(self) -> None:
        return None
