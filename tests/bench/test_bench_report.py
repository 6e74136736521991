"""The benchmark's pure parts (statistics, the table and its targets, the load rule, -X
importtime parsing). No root, no timing."""

from __future__ import annotations

import pytest

from tools.bench.kernel_floor import CREATE, DELETE, DIRECT_START, LANE
from tools.bench.load import LOAD_LIMIT, quotable, wait_for_quiet
from tools.bench.profile import importtime_summary
from tools.bench.report import (
    CHECK_VS_ERROR,
    CHECK_VS_INTERPRETER,
    CHECK_VS_LAUNCHER,
    DIRECT_FLOOR,
    KERNEL_FLOOR,
    PODMAN_FLOOR,
    PODMAN_VS_FLOOR,
    Row,
    Table,
    floor_notes,
    markdown_table,
    tally,
)
from tools.bench.results import Results, Series, paired_difference, paired_ratio
from tools.bench.runtimes import NOOP
from tools.bench.scenarios import (
    ERROR_BESIDE_CHECK,
    INTERPRETER_BESIDE_CHECK,
    LAUNCHER_BESIDE_CHECK,
    Plan,
    rotate,
)
from tools.bench.scenarios import FLOOR as INTERPRETER

ALL_OK = {"reference": "ok", "one-shot": "ok", "agent": "ok", "podman": "ok", "ctr": "ok"}


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


def _rows(results: Results, plan: Plan, status: dict[str, str]) -> dict[str, Row]:
    return {row.measurement: row for row in Table(results, plan, status).rows()}


def test_targets_are_judged_per_lane() -> None:
    plan = Plan(calls=3, concurrency=(20, 64), scale=(0, 250))
    rows = _rows(_results(), plan, ALL_OK)
    add = rows["ADD, 3 sequential"]
    assert add.ratios == pytest.approx({"one-shot": 5.0, "agent": 0.9})
    assert add.targets == [("one-shot", "≤ 4", False), ("agent", "≤ 1", True)]
    growth = rows["ADD @250 / ADD @0 (same lane)"]
    assert [ok for _, _, ok in growth.targets] == [True, True]
    failures = rows["64 concurrent: failed calls or checks"]
    assert ("agent", "0 failed", False) in failures.targets
    assert [t for t in rows["20 concurrent: failed calls or checks"].targets] == [
        ("one-shot", "0 failed", True),
        ("agent", "0 failed", True),
    ]
    rss = rows["peak RSS, one ADD/CHECK/DEL"]
    assert rss.targets == []  # issue 10 sets no memory target: shown only


def test_issue_10_targets() -> None:
    """Every target of issue 10, and no other, with its limit."""
    plan = Plan(calls=3, concurrency=(20, 64), scale=(0, 250))
    rows = Table(_results(), plan, ALL_OK).rows()
    targets = {(row.measurement, lane): text for row in rows for lane, text, _ok in row.targets}
    assert targets == {
        ("ADD, 3 sequential", "one-shot"): "≤ 4",
        ("ADD, 3 sequential", "agent"): "≤ 1",
        ("CHECK, 3 sequential", "agent"): "≤ 1",
        ("DEL, 3 sequential", "agent"): "≤ 0.5",
        ("20 concurrent ADD, wall", "agent"): "≤ 0.75",
        ("64 concurrent ADD, wall", "agent"): "≤ 0.75",
        ("20 concurrent: failed calls or checks", "one-shot"): "0 failed",
        ("20 concurrent: failed calls or checks", "agent"): "0 failed",
        ("64 concurrent: failed calls or checks", "one-shot"): "0 failed",
        ("64 concurrent: failed calls or checks", "agent"): "0 failed",
        ("VERSION", "one-shot"): "≤ 4",
        ("VERSION", "agent"): "≤ 4",
        ("error (malformed JSON on ADD)", "one-shot"): "≤ 4",
        ("error (malformed JSON on ADD)", "agent"): "≤ 4",
        ("ADD @250 / ADD @0 (same lane)", "one-shot"): "≤ 1.2",
        ("ADD @250 / ADD @0 (same lane)", "agent"): "≤ 1.2",
        ("podman run --rm, network cost per container (network - none)", "agent"): "≤ 0.5",
        ("ctr run --rm --cni, whole run", "agent"): "≤ 1",
    }


def _end_to_end(results: Results) -> Results:
    for lane, network, none, cni, bare in (
        ("reference", 0.600, 0.450, 0.300, 0.200),
        ("agent", 0.500, 0.440, 0.330, 0.210),
    ):
        results.get("podman network", lane).seconds.extend([network] * 3)
        results.get("podman none", lane).seconds.extend([none] * 3)
        results.get("ctr cni", lane).seconds.extend([cni] * 3)
        results.get("ctr none", lane).seconds.extend([bare] * 3)
    return results


def test_end_to_end_rows_judge_podman_network_cost_and_the_whole_ctr_run() -> None:
    rows = _rows(_end_to_end(_results()), Plan(calls=3, concurrency=(), scale=(0,)), ALL_OK)
    cost = rows["podman run --rm, network cost per container (network - none)"]
    assert cost.raw["cost_s"] == pytest.approx({"reference": 0.150, "agent": 0.060})
    assert cost.ratios["agent"] == pytest.approx(0.4)
    assert cost.targets == [("agent", "≤ 0.5", True)]
    assert cost.cells["agent"] == "60.0 ms (500.0 ms - 440.0 ms)"
    assert cost.cells["one-shot"] == "—"  # the runtimes run ours with its agent only
    whole = rows["ctr run --rm --cni, whole run"]
    assert whole.ratios["agent"] == pytest.approx(1.1)
    assert whole.targets == [("agent", "≤ 1", False)]
    ctr_cost = rows["ctr run --rm, network cost (--cni - without)"]
    assert ctr_cost.ratios["agent"] == pytest.approx(1.2)
    assert ctr_cost.targets == []  # shown: the target is on the whole run


FLOOR = "floor: podman run --rm, network cost with a plugin that does nothing (network - none)"
ABOVE = "podman run --rm, network cost above the floor (cost - the no-op's cost)"


def _floor(results: Results) -> Results:
    """The no-op side: podman's own cost of a network, 40 ms (0.480 - 0.440)."""
    results.get("podman network", NOOP).seconds.extend([0.480] * 3)
    results.get("podman none", NOOP).seconds.extend([0.440] * 3)
    return results


def test_the_floor_rows_show_the_no_op_side_and_judge_nothing() -> None:
    rows = _rows(_floor(_end_to_end(_results())), Plan(calls=3, concurrency=(), scale=(0,)), ALL_OK)
    floor = rows[FLOOR]
    assert floor.raw["cost_s"] == pytest.approx({NOOP: 0.040})
    text = "no-op side: 40.0 ms (480.0 ms - 440.0 ms)"
    assert floor.cells == {"reference": text, "one-shot": "—", "agent": text}
    assert floor.ratios == {} and floor.targets == []
    above = rows[ABOVE]
    assert above.raw["above_floor_s"] == pytest.approx({"reference": 0.110, "agent": 0.020})
    assert above.raw["floor_s"] == pytest.approx(0.040)
    assert above.cells["agent"] == "20.0 ms (60.0 ms - 40.0 ms)"
    assert above.ratios["agent"] == pytest.approx(0.020 / 0.110)
    assert above.targets == []
    # The target stays ours / the reference's cost, not against the floor.
    cost = rows["podman run --rm, network cost per container (network - none)"]
    assert cost.ratios["agent"] == pytest.approx(0.4)


def test_without_a_no_op_side_the_floor_rows_are_empty() -> None:
    rows = _rows(_end_to_end(_results()), Plan(calls=3, concurrency=(), scale=(0,)), ALL_OK)
    assert rows[FLOOR].cells["reference"] == "no-op side: —"
    assert rows[ABOVE].cells["agent"] == "—" and rows[ABOVE].ratios["agent"] is None
    assert floor_notes(_end_to_end(_results())) == []


def test_the_floor_note_says_the_target_is_against_the_reference() -> None:
    (note,) = floor_notes(_floor(_end_to_end(_results())))
    assert "40.0 ms per container" in note
    assert "measured against the reference, not the floor" in note
    assert "ours 60.0 ms / the reference's 150.0 ms = 0.40" in note
    assert "the reference adds 110.0 ms and ours 20.0 ms" in note


def _kernel(results: Results) -> Results:
    """The kernel floor, 0.6 + 14.4 ms, and the interpreter floors (agent lane: 10 ms, started
    directly: 9 ms)."""
    results.get(CREATE, LANE).seconds.extend([0.0005, 0.0006, 0.0007])
    results.get(DELETE, LANE).seconds.extend([0.0143, 0.0144, 0.0150])
    results.get(DIRECT_START, LANE).seconds.extend([0.009] * 3)
    results.get(INTERPRETER, "agent").seconds.extend([0.010] * 3)
    results.get(INTERPRETER, "one-shot").seconds.extend([0.011] * 3)
    return results


def test_the_kernel_floor_row_shows_create_delete_and_their_sum_in_every_lane() -> None:
    rows = _rows(_kernel(_results()), Plan(calls=3, concurrency=(), scale=(0,)), ALL_OK)
    row = rows[KERNEL_FLOOR]
    text = "15.00 ms (create 0.60 ms + delete 14.40 ms)"
    assert row.cells == {"reference": text, "one-shot": text, "agent": text}
    assert row.raw["floor_s"] == pytest.approx(0.015)
    assert row.ratios == {} and row.targets == []
    (note, *_rest) = floor_notes(_kernel(_results()))
    assert "takes the kernel 0.60 ms and deleting it (RTM_DELLINK) 14.40 ms" in note
    assert "medians of 3 bare netlink calls" in note


def test_without_a_kernel_floor_its_row_is_empty() -> None:
    rows = _rows(_results(), Plan(calls=3, concurrency=(), scale=(0,)), ALL_OK)
    assert rows[KERNEL_FLOOR].cells["agent"] == "—"
    assert floor_notes(_results()) == []


def test_the_floor_for_ours_under_podman_adds_up_its_parts() -> None:
    """40 ms (no-op) + 2 x 9 ms (interpreter, started directly) + 0.6 ms (veth create) =
    58.6 ms; ours costs 60 ms."""
    results = _kernel(_floor(_end_to_end(_results())))
    rows = _rows(results, Plan(calls=3, concurrency=(), scale=(0,)), ALL_OK)
    floor = rows[PODMAN_FLOOR]
    assert floor.raw["floor_s"] == pytest.approx(0.0586)
    assert floor.cells["agent"] == "58.6 ms (40.0 ms + 2 x 9.0 ms + 0.60 ms)"
    assert floor.cells["reference"] == "—" and floor.targets == []
    assert rows[DIRECT_FLOOR].cells == {"reference": "—", "one-shot": "9.0 ms", "agent": "9.0 ms"}
    vs = rows[PODMAN_VS_FLOOR]
    assert vs.raw["ratio"] == pytest.approx(0.06 / 0.0586)
    assert vs.cells["agent"] == "1.02 (60.0 ms / 58.6 ms)"
    assert vs.ratios == {} and vs.targets == []
    note = floor_notes(results)[-1]
    assert "= 58.6 ms per container. Ours costs podman 60.0 ms, 1.02 x that floor" in note


def test_the_floor_for_ours_under_podman_needs_the_podman_lane() -> None:
    results = _kernel(_floor(_end_to_end(_results())))
    status = ALL_OK | {"podman": "not run (--runtime-runs 0)"}
    rows = _rows(results, Plan(calls=3, concurrency=(), scale=(0,)), status)
    assert PODMAN_FLOOR not in rows and PODMAN_VS_FLOOR not in rows
    rows = _rows(_end_to_end(_results()), Plan(calls=3, concurrency=(), scale=(0,)), ALL_OK)
    assert rows[PODMAN_FLOOR].cells["agent"] == "—"  # no no-op side, no kernel floor
    assert rows[PODMAN_VS_FLOOR].raw["ratio"] is None


def test_check_over_error_for_ours_lanes() -> None:
    results = _results()
    for lane, check, error in (("one-shot", 0.120, 0.100), ("agent", 0.014, 0.010)):
        results.get("CHECK", lane).seconds.extend([check] * 3)
        results.get("error", lane).seconds.extend([error] * 3)
    status = ALL_OK | {"one-shot": "not run"}
    row = _rows(results, Plan(calls=3, concurrency=(), scale=(0,)), status)[CHECK_VS_ERROR]
    assert row.cells == {
        "reference": "—",
        "one-shot": "not run",
        "agent": "1.40 (14.0 ms / 10.0 ms)",
    }
    assert row.raw["check_over_error"] == pytest.approx({"agent": 1.4})
    assert row.targets == []
    row = _rows(results, Plan(calls=3, concurrency=(), scale=(0,)), ALL_OK)[CHECK_VS_ERROR]
    assert row.cells["one-shot"] == "1.20 (120.0 ms / 100.0 ms)"


def test_a_lane_that_did_not_run_says_why_and_is_not_judged() -> None:
    status = ALL_OK | {"podman": "not available (not installed: apt-get install podman)"}
    rows = _rows(_end_to_end(_results()), Plan(calls=3, concurrency=(), scale=(0,)), status)
    cost = rows["podman run --rm, network cost per container (network - none)"]
    assert cost.cells["agent"].startswith("not available")
    assert cost.targets == [("agent", "≤ 0.5", None)]


def test_a_cost_at_or_below_zero_gives_no_ratio() -> None:
    results = _end_to_end(_results())
    results.get("podman none", "reference").seconds[:] = [0.700] * 3  # noise: none > network
    rows = _rows(results, Plan(calls=3, concurrency=(), scale=(0,)), ALL_OK)
    cost = rows["podman run --rm, network cost per container (network - none)"]
    assert cost.ratios["agent"] is None
    assert cost.targets == [("agent", "≤ 0.5", None)]


def test_tally_counts_met_missed_and_unmeasured_targets() -> None:
    rows = [
        Row("a", {}, targets=[("agent", "≤ 1", True), ("one-shot", "≤ 4", False)]),
        Row("b", {}, targets=[("agent", "≤ 1", None)]),
        Row("c", {}),
    ]
    assert tally(rows) == {"pass": 1, "miss": 1, "n/a": 1}


def test_a_run_is_quotable_only_with_the_1_min_load_at_most_1_at_the_start() -> None:
    assert LOAD_LIMIT == 1.0
    assert quotable((0.99, 3.0, 3.0))
    assert quotable((1.0, 0.0, 0.0))
    assert not quotable((1.01, 0.2, 0.2))


class FakeMachine:
    """A load average that falls by `step` every poll, and a clock that sleep() moves."""

    def __init__(self, load: float, step: float) -> None:
        self.load, self.step, self.now = load, step, 0.0
        self.said: list[str] = []

    def getloadavg(self) -> tuple[float, float, float]:
        value = self.load
        self.load = max(0.0, self.load - self.step)
        return (value, value, value)

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def clock(self) -> float:
        return self.now

    def say(self, text: str) -> None:
        self.said.append(text)


def _wait(machine: FakeMachine, max_wait: float) -> tuple[tuple[float, float, float], float]:
    return wait_for_quiet(
        max_wait, machine.say, load=machine.getloadavg, sleep=machine.sleep, clock=machine.clock
    )


def test_the_harness_waits_for_the_load_to_fall_then_starts() -> None:
    machine = FakeMachine(load=1.5, step=0.25)  # 1.5, 1.25, then 1.0: quiet enough
    load, waited = _wait(machine, 300)
    assert load[0] == 1.0 and waited == 30  # two polls of 15 s
    assert len(machine.said) == 2


def test_the_harness_starts_anyway_after_the_longest_wait() -> None:
    machine = FakeMachine(load=5.0, step=0.01)
    load, waited = _wait(machine, 100)
    assert waited == 100 and not quotable(load)
    assert _wait(FakeMachine(load=5.0, step=0.0), 0) == ((5.0, 5.0, 5.0), 0)  # --quick


def test_rotation_gives_each_lane_the_lead_in_turn() -> None:
    assert [rotate("abc", i) for i in range(4)] == [
        ["a", "b", "c"],
        ["b", "c", "a"],
        ["c", "a", "b"],
        ["a", "b", "c"],
    ]


def test_a_missing_agent_is_a_note_not_a_failure() -> None:
    plan = Plan(calls=3, concurrency=(), scale=(0,))
    status = ALL_OK | {"agent": "agent: not available"}
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


def test_check_over_error_takes_the_errors_timed_among_the_checks() -> None:
    """The floor beside the CHECKs (same neighbours, same attachments) is CHECK's floor; the
    error phase's own errors count only in a run without it."""
    results = _results()
    results.get("CHECK", "agent").seconds.extend([0.014] * 3)
    results.get("error", "agent").seconds.extend([0.010] * 3)
    results.get(ERROR_BESIDE_CHECK, "agent").seconds.extend([0.0125] * 3)
    row = _rows(results, Plan(calls=3, concurrency=(), scale=(0,)), ALL_OK)[CHECK_VS_ERROR]
    assert row.cells["agent"] == "1.12 (14.0 ms / 12.5 ms)"


def test_check_over_error_per_turn_drops_the_drift_the_turns_share() -> None:
    # The machine's phase moves both calls of a turn; each CHECK costs 8 % above its error.
    results = _results()
    errors = [0.010, 0.016, 0.011, 0.015, 0.0105]
    _turns(results.get(ERROR_BESIDE_CHECK, "agent"), errors, [0, 1, 2, 3, 4])
    _turns(results.get("CHECK", "agent"), [e * 1.08 for e in errors], [0, 1, 2, 3, 4])
    row = _rows(results, Plan(calls=5, concurrency=(), scale=(0,)), ALL_OK)[CHECK_VS_ERROR]
    assert row.raw["check_over_error_per_turn"] == pytest.approx({"agent": 1.08})
    assert row.raw["check_over_error"]["agent"] == pytest.approx(1.08)
    assert row.cells["agent"] == "1.08 (11.9 ms / 11.0 ms); per turn 1.080 (median of 5 pairs)"
    # A failed CHECK (turn 1) pairs with nothing: the paired figure stays, the medians' moves.
    del results.get("CHECK", "agent").seconds[1], results.get("CHECK", "agent").turns[1]
    row = _rows(results, Plan(calls=5, concurrency=(), scale=(0,)), ALL_OK)[CHECK_VS_ERROR]
    assert row.raw["check_over_error_per_turn"] == pytest.approx({"agent": 1.08})
    assert row.raw["check_over_error"]["agent"] != pytest.approx(1.08, abs=0.01)
    assert "median of 4 pairs" in row.cells["agent"]


def test_the_paired_ratio_needs_every_turn() -> None:
    assert paired_ratio(Series(seconds=[0.5]), Series(seconds=[0.4], turns=[0])) is None
    assert paired_ratio(Series([0.5], turns=[3]), Series([0.4], turns=[0])) is None
    found = paired_ratio(Series([0.6, 0.3], turns=[0, 1]), Series([0.4, 0.2], turns=[0, 1]))
    assert found is not None
    assert found[0] == pytest.approx(1.5) and found[1] == 2


def test_the_reference_check_is_divided_by_our_front_s_floors_of_its_turns() -> None:
    """The launcher's and the interpreter's floors, timed beside our CHECKs, also divide the
    reference's CHECK of the same turn (the agent lane's floors; the one-shot lane's without
    an agent); the error is ours alone."""
    results = _results()
    turns = [0, 1, 2, 3]
    interpreter = [0.010, 0.013, 0.011, 0.012]
    _turns(results.get(INTERPRETER_BESIDE_CHECK, "agent"), interpreter, turns)
    _turns(results.get(INTERPRETER_BESIDE_CHECK, "one-shot"), [0.020] * 4, turns)
    _turns(results.get(LAUNCHER_BESIDE_CHECK, "agent"), [t + 0.001 for t in interpreter], turns)
    _turns(results.get(ERROR_BESIDE_CHECK, "agent"), [t + 0.002 for t in interpreter], turns)
    _turns(results.get("CHECK", "reference"), [t * 0.95 for t in interpreter], turns)
    _turns(results.get("CHECK", "agent"), [t * 1.2 for t in interpreter], turns)
    plan = Plan(calls=4, concurrency=(), scale=(0,))
    rows = _rows(results, plan, ALL_OK)
    row = rows[CHECK_VS_INTERPRETER]
    assert row.raw["check_over_interpreter_per_turn"] == pytest.approx(
        {"reference": 0.95, "agent": 1.2}
    )
    assert row.cells["reference"] == (
        "0.95 (10.9 ms / 11.5 ms, the agent lane's floor); per turn 0.950 (median of 4 pairs)"
    )
    assert row.cells["agent"].startswith("1.20 (13.8 ms / 11.5 ms); per turn 1.200")
    assert row.targets == []
    launcher = rows[CHECK_VS_LAUNCHER].raw["check_over_launcher_per_turn"]
    assert launcher["reference"] == pytest.approx(0.95 * 11.5 / 12.5, abs=0.01)
    assert rows[CHECK_VS_ERROR].cells["reference"] == "—"
    no_agent = ALL_OK | {"agent": "not available"}
    row = _rows(results, plan, no_agent)[CHECK_VS_INTERPRETER]
    assert row.cells["reference"].startswith("0.55 (10.9 ms / 20.0 ms, the one-shot lane's")
    assert row.cells["agent"] == "not available"


def _turns(series: Series, seconds: list[float], turns: list[int]) -> None:
    series.seconds.extend(seconds)
    series.turns.extend(turns)


def test_the_paired_difference_drops_the_drift_the_turns_share() -> None:
    # Each turn runs slower than the last (the machine's phase); the plugin adds 10 ms in every
    # turn. One run of the network variant failed (turn 2): its turn pairs with nothing.
    drift = [0.300, 0.500, 0.350, 0.700, 0.400]
    network = Series(
        seconds=[d + 0.010 for i, d in enumerate(drift) if i != 2],
        turns=[0, 1, 3, 4],
    )
    none = Series(seconds=drift[:], turns=[0, 1, 2, 3, 4])
    paired = paired_difference(network, none)
    assert paired is not None
    assert paired[0] == pytest.approx(0.010) and paired[1] == 4
    # The difference of the medians is off by the drift the failed run left unbalanced.
    assert network.median() == pytest.approx(0.460) and none.median() == pytest.approx(0.400)


def test_without_turns_there_is_no_pairing() -> None:
    assert paired_difference(Series(seconds=[0.5]), Series(seconds=[0.4], turns=[0])) is None
    # Turns that do not cover every sample (an older JSON, a partial record) are not paired.
    assert paired_difference(Series(seconds=[0.5, 0.6], turns=[0]), Series(seconds=[0.4])) is None
    # Nothing in common: no pairs.
    assert paired_difference(Series(seconds=[0.5], turns=[1]), Series([0.4], turns=[0])) is None


def test_the_podman_cost_is_paired_when_the_runs_were() -> None:
    results = _end_to_end(_results())
    for lane in ("reference", "agent"):
        for metric in ("podman network", "podman none"):
            results.get(metric, lane).seconds.clear()
    # The reference adds 150 ms and ours 60 ms in every turn, over a drift that the medians
    # of each variant would not cancel (ours' network run of turn 0 failed).
    drift = [0.300, 0.900, 0.400]
    _turns(results.get("podman network", "reference"), [d + 0.150 for d in drift], [0, 1, 2])
    _turns(results.get("podman none", "reference"), drift, [0, 1, 2])
    _turns(results.get("podman network", "agent"), [d + 0.060 for d in drift[1:]], [1, 2])
    _turns(results.get("podman none", "agent"), drift, [0, 1, 2])
    rows = _rows(results, Plan(calls=3, concurrency=(), scale=(0,)), ALL_OK)
    cost = rows["podman run --rm, network cost per container (network - none)"]
    assert cost.raw["cost_s"] == pytest.approx({"reference": 0.150, "agent": 0.060})
    assert cost.ratios["agent"] == pytest.approx(0.4)
    assert cost.targets == [("agent", "≤ 0.5", True)]
    assert cost.cells["agent"] == "60.0 ms (median of 2 paired runs; 710.0 ms - 400.0 ms)"
