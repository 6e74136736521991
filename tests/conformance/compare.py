"""Run a scenario on two lanes and fail with a readable report unless they agree (after the
differences of differences.py are asserted and reconciled)."""

from __future__ import annotations

import pytest

from tests.conformance.differences import reconcile
from tests.conformance.harness import Lane, Scenario, diff


def step_table(left: Lane, right: Lane) -> str:
    lines = [f"steps ({left.name} | {right.name}):"]
    for a, b in zip(left.log, right.log, strict=True):
        lines.append(f"  {a}" if a == b else f"  {a}\n    | {b.split(': ', 1)[-1]}")
    return "\n".join(lines)


def assert_same(
    scenario: Scenario, reference: Lane, ours: Lane, *, mixed: bool = False
) -> list[str]:
    """Run `scenario` on both lanes; returns the differences that showed."""
    theirs_trace = reference.run(scenario)
    ours_trace = ours.run(scenario)
    table = step_table(reference, ours)
    try:
        shown = reconcile(scenario, theirs_trace, ours_trace, ours.default, mixed=mixed)
    except AssertionError as exc:
        pytest.fail(f"{scenario.id}: a difference is not as registered: {exc}\n{table}")
    delta = diff(theirs_trace, ours_trace, (reference.name, ours.name))
    if delta:
        pytest.fail(
            f"{scenario.id}: {ours.name} differs from {reference.name} "
            f"(after reconciling {shown or 'nothing'})\n{table}\n{delta}",
            pytrace=False,
        )
    return shown
