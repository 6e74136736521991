"""Every scenario on the reference bridge + host-local and on ours, each in a fresh host
namespace, compared after every call (see harness.py for what is captured)."""

from __future__ import annotations

import pytest

from tests.conformance.compare import assert_same
from tests.conformance.conftest import LaneFactory
from tests.conformance.harness import Scenario
from tests.conformance.scenarios import SCENARIOS


@pytest.mark.parametrize("scenario", [pytest.param(s, id=s.id, marks=s.marks) for s in SCENARIOS])
def test_same_as_reference(lane: LaneFactory, scenario: Scenario) -> None:
    assert_same(scenario, lane("reference", "ref"), lane("ours", "ours"))
