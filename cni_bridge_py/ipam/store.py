"""What the allocator needs from a reservation store (the disk store is ipam/disk.py; tests use
an in-memory one, tests/doubles/store.py)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from cni_bridge_py.netaddr import IPAddress
from cni_bridge_py.record import record

# host-local's owner line: "<containerID>\r\n<ifname>"; files from before 0.7 hold the ID only.
LINE_BREAK = "\r\n"


@record(frozen=True)
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

    def owned_by(self, container_id: str, ifname: str) -> list[IPAddress]:
        """Every address this attachment holds (a legacy reservation: the container's)."""

    def holds(self, addr: IPAddress, container_id: str, ifname: str) -> bool:
        """Whether `addr` is one of owned_by()'s, found without reading the others."""

    def owners(self) -> list[tuple[IPAddress, Owner]]:
        """Every reservation of the network and who holds it."""

    def remove(self, addr: IPAddress) -> bool:
        """Drop one reservation whoever holds it (GC); False when it was already gone."""

    def check_writable(self) -> None:
        """IOFailure when a reservation could not be written right now (STATUS)."""
