"""The benchmark's pure parts (statistics, the table and its targets, -X importtime parsing),
and that no plugin path imports it. No root, no timing."""

from __future__ import annotations

import pytest

from tools.bench.profile import importtime_summary
from tools.bench.report import Table, markdown_table
from tools.bench.results import Results, Series
from tools.bench.scenarios import Plan


def test_median_and_nearest_rank_p95() -> None:
    series = Series(seconds=[float(x) for x in range(1, 21)])
    assert series.median() == 10.5
    assert series.p95() == 19.0
    assert Series(seconds=[3.0]).p95() == 3.0
    assert Series().median() is None


def _results() -> Results:
    results = Results()
    for lane, add in (("reference", 0.020), ("one-shot", 0.100), ("agent", 0.018)):
        results.get("ADD", lane).seconds.extend([add] * 3)
        results.get("ADD @0", lane).seconds.append(add)
        results.get("ADD @250", lane).seconds.append(add * 1.1)
        results.get("RSS ADD", lane).rss_kb.append(30 * 1024)
    results.get("ADD x64", "agent").failed.append("call 3: exit 1")
    return results


def test_targets_are_judged_per_lane() -> None:
    plan = Plan(calls=3, concurrency=(64,), scale=(0, 250))
    status = {"reference": "ok", "one-shot": "ok", "agent": "ok"}
    rows = {row.measurement: row for row in Table(_results(), plan, status).rows()}
    add = rows["ADD, 3 sequential"]
    assert add.ratios == pytest.approx({"one-shot": 5.0, "agent": 0.9})
    assert add.targets == [("one-shot", "≤ 4", False), ("agent", "≤ 1", True)]
    growth = rows["ADD @250 / ADD @0 (same lane)"]
    assert [ok for _, _, ok in growth.targets] == [True, True]
    failures = rows["64 concurrent: failed calls or checks"]
    assert ("agent", "0 failed", False) in failures.targets
    rss = rows["peak RSS, one ADD/CHECK/DEL"]
    assert rss.targets == [("one-shot", "≤ 45 MB", True)]


def test_a_missing_agent_is_a_note_not_a_failure() -> None:
    plan = Plan(calls=3, concurrency=(), scale=(0,))
    status = {"reference": "ok", "one-shot": "ok", "agent": "agent: not available"}
    table = markdown_table(Table(_results(), plan, status).rows())
    add_line = next(line for line in table.splitlines() if line.startswith("| ADD, 3"))
    assert "agent: not available" in add_line
    assert "agent: n/a" in add_line


def test_importtime_summary_groups_by_package() -> None:
    stderr = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:      1000 |       1000 |     pyroute2.netlink",
            "import time:      2000 |       3000 |   pyroute2",
            "import time:       500 |        500 | json",
        ]
    )
    text = importtime_summary(stderr, 5)
    assert "3 modules, 3.5 ms importing" in text
    assert "     3.0 ms  pyroute2" in text
