"""GC (spec 1.1) of host-local reservations: drop those no valid attachment owns (pure)."""

from __future__ import annotations

from collections.abc import Set

from cni_bridge_py.ipam.store import Owner, Store
from cni_bridge_py.netaddr import IPAddress

Attachments = Set[tuple[str, str]]


def is_valid(owner: Owner, valid: Attachments) -> bool:
    if owner.ifname is None:
        # A legacy file names only the container: keep it while any of its attachments lives.
        return any(cid == owner.container_id for cid, _ in valid)
    return (owner.container_id, owner.ifname) in valid


def gc(store: Store, valid: Attachments) -> list[IPAddress]:
    """Remove every reservation of the network that no valid attachment owns; returns them.

    The store lists reservation files only: `lock` and `last_reserved_ip.*` are never touched."""
    removed: list[IPAddress] = []
    with store.lock():
        for addr, owner in store.owners():
            if not is_valid(owner, valid) and store.remove(addr):
                removed.append(addr)
    return removed
