"""host-local's allocation rules over a Store (pure: no files, no kernel)."""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Sequence

from cni_bridge_py.errors import CniError, InvalidEnvironment, TryAgainLater
from cni_bridge_py.ipam.ranges import Range, RangeSet
from cni_bridge_py.ipam.store import Store
from cni_bridge_py.netaddr import IPAddress, IPInterface
from cni_bridge_py.record import record
from cni_bridge_py.result import IPConfig


@record(frozen=True)
class Attachment:
    container_id: str
    ifname: str


def _with_prefix(addr: IPAddress, r: Range) -> IPInterface:
    return ipaddress.ip_interface(f"{addr}/{r.subnet.prefixlen}")


def allocate_one(
    store: Store, range_set: RangeSet, range_id: int, who: Attachment, requested: IPAddress | None
) -> IPConfig:
    """One address from one range set, under the store's lock."""
    with store.lock():
        if requested is not None:
            return _reserve_requested(store, range_set, range_id, who, requested)
        for owned in store.owned_by(who.container_id, who.ifname):
            if range_set.range_for(owned) is not None:
                raise InvalidEnvironment(
                    f"{owned} has been allocated to {who.container_id}, "
                    "duplicate allocation is not allowed",
                    f"delete the attachment ({who.container_id}, {who.ifname})"
                    " before adding it again",
                )
        for addr, r in range_set.candidates(store.last_reserved(range_id)):
            if store.reserve(who.container_id, who.ifname, addr, range_id):
                return IPConfig(_with_prefix(addr, r), r.gateway)
    raise TryAgainLater(
        f"no IP addresses available in range set: {range_set}",
        "every address is reserved; delete unused attachments (or run GC) or widen the range",
    )


def _reserve_requested(
    store: Store, range_set: RangeSet, range_id: int, who: Attachment, requested: IPAddress
) -> IPConfig:
    r = range_set.range_for(requested)
    if r is None:
        raise InvalidEnvironment(
            f"requested IP address {requested} is not in range set {range_set}",
            "request an address inside the configured ranges",
        )
    if not store.reserve(who.container_id, who.ifname, requested, range_id):
        raise InvalidEnvironment(
            f"requested IP address {requested} is not available in range set {range_set}",
            "another attachment holds it",
        )
    return IPConfig(_with_prefix(requested, r), r.gateway)


def assign_requested(
    range_sets: Sequence[RangeSet], requested: Sequence[IPAddress]
) -> list[IPAddress | None]:
    """The requested address of each range set (None: any). Each goes to the first set
    holding it, one per set (host-local's rule); one that fits nowhere, or is its range's
    gateway, fails the request before anything is reserved (host-local reserves first, which
    moves last_reserved_ip for a request that fails). Pure: ADD asks before the bridge."""
    pending = list(requested)
    wanted: list[IPAddress | None] = []
    for range_id, range_set in enumerate(range_sets):
        mine = next((a for a in pending if range_set.range_for(a) is not None), None)
        if mine is not None:
            pending.remove(mine)
            _not_the_gateway(range_set, range_id, mine)
        wanted.append(mine)
    if pending:
        raise InvalidEnvironment(
            "failed to allocate all requested IPs: " + " ".join(str(a) for a in pending),
            "each requested address must fall inside one configured range set",
        )
    return wanted


def _not_the_gateway(range_set: RangeSet, range_id: int, requested: IPAddress) -> None:
    r = range_set.range_for(requested)
    if r is not None and requested == r.gateway:
        refused = InvalidEnvironment(f"requested ip {requested} is subnet's gateway")
        raise _in_range(refused, range_id)


def allocate(
    store: Store,
    range_sets: Sequence[RangeSet],
    who: Attachment,
    requested: Sequence[IPAddress] = (),
) -> list[IPConfig]:
    """One address per range set; all or nothing."""
    wanted = assign_requested(range_sets, requested)
    configs: list[IPConfig] = []
    try:
        for range_id, (range_set, mine) in enumerate(zip(range_sets, wanted, strict=True)):
            try:
                configs.append(allocate_one(store, range_set, range_id, who, mine))
            except CniError as exc:
                raise _in_range(exc, range_id) from exc
    except CniError:
        if configs:
            release(store, who)
        raise
    return configs


def _in_range(exc: CniError, range_id: int) -> CniError:
    """The same error type, its message prefixed the way host-local's cmdAdd wraps it (users
    and scripts match the reference's text). allocate_one raises only (msg, details) types."""
    return type(exc)(f"failed to allocate for range {range_id}: {exc.msg}", exc.details)


def release(store: Store, who: Attachment) -> list[IPAddress]:
    with store.lock():
        return store.release(who.container_id, who.ifname)


def owned(store: Store, who: Attachment) -> list[IPAddress]:
    with store.lock():
        return store.owned_by(who.container_id, who.ifname)


def holds_any(store: Store, who: Attachment, likely: Collection[IPAddress] = ()) -> bool:
    """Whether the attachment holds any reservation (CHECK). The `likely` addresses (its
    prevResult's) are looked up first, one file each; only when none is its own is the
    whole store read, so the answer is owned()'s at the cost of one read, not one per
    reservation of the network."""
    with store.lock():
        if any(store.holds(addr, who.container_id, who.ifname) for addr in likely):
            return True
        return bool(store.owned_by(who.container_id, who.ifname))
