"""An in-memory host-local store: the Store protocol without files or locks across processes."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from cni_bridge_py.ipam.store import Owner
from cni_bridge_py.netaddr import IPAddress


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

    def holds(self, addr: IPAddress, container_id: str, ifname: str) -> bool:
        return self.held.get(addr) == (container_id, ifname)

    def owners(self) -> list[tuple[IPAddress, Owner]]:
        return [(a, Owner(cid, ifname)) for a, (cid, ifname) in self.held.items()]

    def remove(self, addr: IPAddress) -> bool:
        return self.held.pop(addr, None) is not None

    def check_writable(self) -> None:
        return None
