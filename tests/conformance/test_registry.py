"""The registry of differences, the documentation and the scenarios agree: every intended
difference is documented in docs/differences.md and asserted somewhere, every known bug is
pinned somewhere, and the scenario table is well formed."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conformance.differences import INTENDED, KNOWN_BUGS
from tests.conformance.scenarios import SCENARIOS
from tests.conformance.test_mixed import MIXED

HERE = Path(__file__).parent
DOC = HERE.parents[1] / "docs" / "differences.md"


def documented() -> list[str]:
    return re.findall(r"^## `([a-z0-9.-]+)`$", DOC.read_text(), flags=re.MULTILINE)


def declared() -> set[str]:
    names = {name for scenario in SCENARIOS for name in scenario.differences}
    return names | {name for *_, differences in MIXED for name in differences}


def asserted_alone() -> set[str]:
    text = (HERE / "test_ours_only.py").read_text()
    return set(re.findall(r'asserting\("([a-z0-9.-]+)"\)', text))


def test_every_intended_difference_is_documented_once() -> None:
    assert sorted(documented()) == sorted(INTENDED)
    assert len(documented()) == len(set(documented()))


def test_every_difference_is_exercised() -> None:
    exercised = declared() | asserted_alone()
    exercised |= {name for name, d in {**INTENDED, **KNOWN_BUGS}.items() if d.automatic}
    assert sorted(set(INTENDED) | set(KNOWN_BUGS)) == sorted(exercised)


def test_known_bugs_are_not_documented_as_intended() -> None:
    assert not set(KNOWN_BUGS) & set(INTENDED)


def test_scenarios_are_unique_and_enough() -> None:
    ids = [s.id for s in SCENARIOS]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 30
