"""Address ranges and range sets with host-local's canonicalisation rules (pure)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence

from cni_bridge_py.netaddr import IPAddress, IPNetwork
from cni_bridge_py.record import record


class RangeError(ValueError):
    """A range that host-local would refuse; the message says which value is wrong."""


@record(frozen=True)
class Range:
    subnet: IPNetwork
    range_start: IPAddress
    range_end: IPAddress
    gateway: IPAddress

    @classmethod
    def build(
        cls,
        subnet: IPNetwork,
        range_start: IPAddress | None = None,
        range_end: IPAddress | None = None,
        gateway: IPAddress | None = None,
    ) -> Range:
        """Fill host-local's defaults and validate: start/end inside the subnet, start <= end."""
        host_bits = subnet.max_prefixlen - subnet.prefixlen
        if host_bits < 2:
            raise RangeError(
                f"network {subnet} too small to allocate from (needs at least 2 host bits)"
            )
        first_host = subnet.network_address + 1
        # IPv4 keeps the broadcast address out; IPv6 has none (host-local uses the last address).
        last_host = (
            subnet.broadcast_address - 1 if subnet.version == 4 else subnet.broadcast_address
        )
        start = range_start if range_start is not None else first_host
        end = range_end if range_end is not None else last_host
        gw = gateway if gateway is not None else first_host
        for label, addr in (("rangeStart", start), ("rangeEnd", end), ("gateway", gw)):
            if addr.version != subnet.version or addr not in subnet:
                raise RangeError(f"{label} {addr} not in network {subnet}")
        if start > end:  # type: ignore[operator]  # same family, checked above
            raise RangeError(f"rangeStart {start} is after rangeEnd {end}")
        return cls(subnet, start, end, gw)

    def contains(self, addr: IPAddress) -> bool:
        return (
            addr.version == self.subnet.version and self.range_start <= addr <= self.range_end  # type: ignore[operator]
        )

    def overlaps(self, other: Range) -> bool:
        if self.subnet.version != other.subnet.version:
            return False
        return (
            self.contains(other.range_start)
            or self.contains(other.range_end)
            or other.contains(self.range_start)
        )

    def addresses(self, first: IPAddress, last: IPAddress | None = None) -> Iterator[IPAddress]:
        """Every address from `first` to `last` (default: range_end), both inclusive."""
        cursor = int(first)
        stop = int(self.range_end if last is None else last)
        make = ipaddress.ip_address
        while cursor <= stop:
            yield make(cursor)
            cursor += 1

    def __str__(self) -> str:
        return f"{self.range_start}-{self.range_end}"


@record(frozen=True)
class RangeSet:
    """The ranges one address is taken from (host-local's inner list)."""

    ranges: tuple[Range, ...]

    @classmethod
    def build(cls, ranges: Sequence[Range]) -> RangeSet:
        if not ranges:
            raise RangeError("empty range set")
        family = ranges[0].subnet.version
        for r in ranges[1:]:
            if r.subnet.version != family:
                raise RangeError("mixed address families in one range set")
        for i, a in enumerate(ranges):
            for b in ranges[i + 1 :]:
                if a.overlaps(b):
                    raise RangeError(f"range {a} overlaps with range {b}")
        return cls(tuple(ranges))

    @property
    def version(self) -> int:
        return self.ranges[0].subnet.version

    def range_for(self, addr: IPAddress) -> Range | None:
        for r in self.ranges:
            if r.contains(addr):
                return r
        return None

    def overlaps(self, other: RangeSet) -> bool:
        return any(a.overlaps(b) for a in self.ranges for b in other.ranges)

    def candidates(self, last_reserved: IPAddress | None) -> Iterator[tuple[IPAddress, Range]]:
        """host-local's round-robin order: each address once, starting after the last one
        reserved (when it is still inside the set), wrapping across ranges, skipping gateways."""
        start_index = 0
        resume_after: IPAddress | None = None
        if last_reserved is not None:
            for index, r in enumerate(self.ranges):
                if r.contains(last_reserved):
                    start_index, resume_after = index, last_reserved
                    break
        head = self.ranges[start_index]
        if resume_after is None:
            yield from self._usable(head, head.addresses(head.range_start))
        elif resume_after != head.range_end:
            yield from self._usable(head, head.addresses(resume_after + 1))
        count = len(self.ranges)
        for step in range(1, count):
            r = self.ranges[(start_index + step) % count]
            yield from self._usable(r, r.addresses(r.range_start))
        if resume_after is not None:
            # The head of the starting range, up to and including the last reserved address.
            yield from self._usable(head, head.addresses(head.range_start, resume_after))

    @staticmethod
    def _usable(r: Range, addrs: Iterator[IPAddress]) -> Iterator[tuple[IPAddress, Range]]:
        for addr in addrs:
            if addr != r.gateway:
                yield addr, r

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.ranges)


def check_no_overlap(sets: Sequence[RangeSet]) -> None:
    for i, a in enumerate(sets):
        for b in sets[i + 1 :]:
            if a.overlaps(b):
                raise RangeError(f"range set {a} overlaps with range set {b}")
