"""The VLAN plan for a bridge port (pure): what the reference does with vlan, vlanTrunk and
preserveDefaultVlan, as a list of operations the kernel edge applies in order."""

from __future__ import annotations

from cni_bridge_py.record import record

DEFAULT_VLAN = 1


@record(frozen=True)
class VlanOp:
    add: bool  # False: remove the VLAN from the port
    vid: int
    pvid: bool = False
    untagged: bool = False


def needs_filtering(vlan: int, trunk: tuple[tuple[int, int], ...]) -> bool:
    return vlan != 0 or bool(trunk)


def trunk_ids(trunk: tuple[tuple[int, int], ...]) -> list[int]:
    """Expand (min, max) ranges, keeping the first occurrence of each ID."""
    seen: dict[int, None] = {}
    for low, high in trunk:
        for vid in range(low, high + 1):
            seen.setdefault(vid, None)
    return list(seen)


def port_ops(vlan: int, trunk: tuple[tuple[int, int], ...], preserve_default: bool) -> list[VlanOp]:
    """Nothing without VLANs. Otherwise: drop the default VLAN unless preserved, `vlan` as
    the port's PVID (untagged), every trunk ID tagged."""
    if not needs_filtering(vlan, trunk):
        return []
    ops: list[VlanOp] = []
    if not preserve_default:
        ops.append(VlanOp(add=False, vid=DEFAULT_VLAN))
    if vlan:
        ops.append(VlanOp(add=True, vid=vlan, pvid=True, untagged=True))
    ops += [VlanOp(add=True, vid=vid) for vid in trunk_ids(trunk) if vid != vlan]
    return ops
