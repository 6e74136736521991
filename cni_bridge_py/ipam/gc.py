"""GC (spec 1.1) of host-local reservations: drop those no valid attachment owns (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Any

from cni_bridge_py.errors import InvalidConfig
from cni_bridge_py.ipam.config import invalid_config
from cni_bridge_py.ipam.store import Owner, Store
from cni_bridge_py.netaddr import IPAddress

VALID_ATTACHMENTS = "cni.dev/valid-attachments"
# The key's name before cni#1101; libcni sends both.
OLD_VALID_ATTACHMENTS = "cni.dev/attachments"

Attachments = Set[tuple[str, str]]


def valid_attachments(config: Mapping[str, Any]) -> set[tuple[str, str]]:
    """The (containerID, ifname) pairs a GC request keeps. A missing list means none is valid:
    cnitool sends none after it has DELeted every attachment it knew."""
    key = VALID_ATTACHMENTS if VALID_ATTACHMENTS in config else OLD_VALID_ATTACHMENTS
    value = config.get(key)
    if value is None:
        return set()
    if not isinstance(value, list):
        raise InvalidConfig(
            f'invalid network config: "{key}" must be a list',
            'expected [{"containerID": "...", "ifname": "..."}, ...]',
        )
    problems: list[str] = []
    out: set[tuple[str, str]] = set()
    for index, entry in enumerate(value):
        cid = entry.get("containerID") if isinstance(entry, dict) else None
        ifname = entry.get("ifname") if isinstance(entry, dict) else None
        if not isinstance(cid, str) or not cid or not isinstance(ifname, str):
            problems.append(f'"{key}[{index}]": expected {{"containerID": ..., "ifname": ...}}')
            continue
        out.add((cid.strip(), ifname))
    if problems:
        raise invalid_config(problems)
    return out


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
