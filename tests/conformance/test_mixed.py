"""One plugin's state, the other plugin's DEL or CHECK, on the same data dir and host namespace
(a runtime upgraded between two calls). Each mixed lane is compared with a baseline lane that
runs the plugin that made the state throughout: what the other plugin leaves (reservation, NAT
chain, veth all gone) must be what the first would have left."""

from __future__ import annotations

import pytest

from tests.conformance.compare import assert_same
from tests.conformance.conftest import LaneFactory
from tests.conformance.harness import Call, Scenario
from tests.conformance.scenarios import gateway_net

NAT_KEPT = "del-without-netns-removes-nat"
MIXED = [
    # id, calls, the plugin that made the state (and runs the whole baseline), differences
    (
        "reference-add-ours-del",
        (Call("ADD"), Call("ADD", "blue"), Call("DEL", by="ours"), Call("DEL", "blue", by="ours")),
        "ref",
        (),
    ),
    (
        "reference-add-ours-check",
        (Call("ADD"), Call("CHECK", prev_result=True, by="ours")),
        "ref",
        (),
    ),
    (
        "reference-add-ours-del-without-netns",
        (Call("ADD"), Call("DEL", netns="empty", by="ours"), Call("DEL", by="ours")),
        "ref",
        (NAT_KEPT,),
    ),
    (
        "ours-add-reference-del",
        (Call("ADD"), Call("ADD", "blue"), Call("DEL", by="ref"), Call("DEL", "blue", by="ref")),
        "ours",
        (),
    ),
    (
        "ours-add-reference-check",
        (Call("ADD"), Call("CHECK", prev_result=True, by="ref")),
        "ours",
        (),
    ),
]


@pytest.mark.parametrize(
    ("calls", "maker", "differences"), [pytest.param(*m[1:], id=m[0]) for m in MIXED]
)
def test_other_plugin_finishes_the_job(
    lane: LaneFactory, calls: tuple[Call, ...], maker: str, differences: tuple[str, ...]
) -> None:
    scenario = Scenario("mixed", gateway_net(), calls, differences=differences)
    baseline = lane(f"only-{maker}", maker, only=maker)
    mixed = lane("mixed", maker)
    assert_same(scenario, baseline, mixed, mixed=True)
    final = mixed.log[-1]
    assert final.endswith("exit 0 "), mixed.log
