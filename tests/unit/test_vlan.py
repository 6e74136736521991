from __future__ import annotations

import pytest

from cni_bridge_py.vlan import VlanOp, needs_filtering, port_ops, trunk_ids


def test_no_vlans_means_no_filtering_and_no_ops() -> None:
    assert not needs_filtering(0, ())
    assert port_ops(0, (), preserve_default=False) == []


def test_access_vlan_is_pvid_untagged_and_drops_the_default_unless_preserved() -> None:
    assert port_ops(100, (), preserve_default=True) == [
        VlanOp(add=True, vid=100, pvid=True, untagged=True)
    ]
    assert port_ops(100, (), preserve_default=False) == [
        VlanOp(add=False, vid=1),
        VlanOp(add=True, vid=100, pvid=True, untagged=True),
    ]


def test_trunk_ids_are_tagged_expanded_and_deduplicated() -> None:
    assert trunk_ids(((101, 101), (200, 202), (201, 203))) == [101, 200, 201, 202, 203]
    ops = port_ops(0, ((5, 6),), preserve_default=True)
    assert ops == [VlanOp(add=True, vid=5), VlanOp(add=True, vid=6)]


def test_access_vlan_inside_the_trunk_is_not_added_twice() -> None:
    ops = port_ops(10, ((9, 11),), preserve_default=True)
    assert [(op.vid, op.pvid) for op in ops] == [(10, True), (9, False), (11, False)]


@pytest.mark.parametrize(("vlan", "trunk"), [(1, ()), (0, ((1, 1),))])
def test_any_vlan_setting_needs_filtering(vlan: int, trunk: tuple[tuple[int, int], ...]) -> None:
    assert needs_filtering(vlan, trunk)
