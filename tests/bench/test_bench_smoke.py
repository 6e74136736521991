"""A short benchmark run (`--quick`: a few calls of each measurement, two podman runs and six
ctr runs per variant) in the normal suite, as root, so that `make bench` cannot rot. It checks
that the table and the JSON are produced, that the runtimes' plugin reached the agent and that
nothing is left behind; it judges no timing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools.bench.harness import NETNS_DIR, PREFIX, root_links
from tools.bench.runtimes import CTR_TOOLS, NOOP, PODMAN_TOOLS, lane_runs
from tools.bench.scenarios import (
    ERROR_BESIDE_CHECK,
    INTERPRETER_BESIDE_CHECK,
    LAUNCHER_BESIDE_CHECK,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LANES = ("reference", "one-shot", "agent")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    if os.geteuid() != 0:
        pytest.skip("the benchmark needs root (network namespaces)")
    if not os.access("/usr/lib/cni/bridge", os.X_OK):
        pytest.fail("the reference plugins are missing from /usr/lib/cni: run `make deps`")
    out = tmp_path_factory.mktemp("bench")
    md, js = out / "benchmarks.md", out / "benchmarks.json"
    links_before = [link for link in root_links() if link.startswith(PREFIX)]
    proc = subprocess.run(
        [sys.executable, "-m", "tools.bench", "--quick", "--out-md", str(md),
         "--out-json", str(js)],
        capture_output=True, text=True, cwd=REPO, timeout=540, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return {
        "stdout": proc.stdout,
        "md": md.read_text(),
        "doc": json.loads(js.read_text()),
        "links_before": links_before,
    }


@pytest.mark.timeout(600)
def test_the_table_is_printed_and_written(quick_run: dict[str, object]) -> None:
    stdout, md = str(quick_run["stdout"]), str(quick_run["md"])
    header = "| measurement | reference | ours one-shot | one-shot / ref | ours agent |"
    for text in (stdout, md):
        assert header in text
        for label in ("ADD, 3 sequential", "CHECK, 3 sequential", "DEL, 3 sequential",
                      "4 concurrent ADD, wall", "VERSION", "ADD with 5 attachments",
                      "podman run --rm, network cost per container (network - none)",
                      "floor: podman run --rm, network cost with a plugin that does nothing "
                      "(network - none)",
                      "ctr run --rm --cni, whole run", "peak RSS, one ADD/CHECK/DEL",
                      "floor: veth pair create + delete, bare netlink call (kernel)",
                      "CHECK / error through the agent (the front's round trip, its floor)",
                      "floor: the launcher's interpreter, -c pass, started directly "
                      "(no ip netns exec)",
                      ):  # fmt: skip
            assert f"| {label} |" in text, label
    assert "## Method" in md and "## Results" in md
    assert "- **Load average:** " in md and "quotable" in md
    assert stdout.startswith("Run quotable: ") or stdout.startswith("Run **NOT QUOTABLE**")


@pytest.mark.timeout(600)
def test_every_call_succeeded_and_nothing_is_left(quick_run: dict[str, object]) -> None:
    doc = quick_run["doc"]
    assert isinstance(doc, dict)
    assert doc["problems"] == []
    assert doc["leftovers"] == []
    lanes = [lane for lane in LANES if doc["lanes"][lane] == "ok"]
    assert lanes[:2] == ["reference", "one-shot"]
    for metric in ("ADD", "CHECK", "DEL", "VERSION", "error", "ADD x4", "ADD @0", "ADD @5"):
        for lane in lanes:
            series = doc["series"][metric][lane]
            assert series["failed"] == [], (metric, lane, series["failed"])
            assert series["seconds"], (metric, lane)
    for lane in lanes:
        assert doc["series"]["RSS ADD"][lane]["rss_kb"], lane
        # Each CHECK's turn, and each error timed beside one (results.paired_ratio).
        calls = len(doc["series"]["CHECK"][lane]["seconds"])
        assert doc["series"]["CHECK"][lane]["turns"] == list(range(calls)), lane
        if lane != "reference":
            for floor in ERROR_BESIDE_CHECK, LAUNCHER_BESIDE_CHECK, INTERPRETER_BESIDE_CHECK:
                series = doc["series"][floor][lane]
                assert series["failed"] == [], (floor, lane, series["failed"])
                assert series["turns"] == list(range(calls)), (floor, lane)
    # The kernel floor (20 bare netlink calls) and 20 direct starts of the launcher's interpreter.
    for metric in ("veth create", "veth delete", "interpreter, started directly"):
        series = doc["series"][metric]["kernel"]
        assert series["failed"] == [] and len(series["seconds"]) == 20, (metric, series)
    if doc["lanes"]["agent"] == "ok":
        assert doc["agent"]["rss_kb"] > 0
    else:
        assert "agent: not available" in str(quick_run["md"])
    assert doc["load"]["quotable"] == (doc["load"]["start"][0] <= doc["load"]["limit"])
    # Nothing of this run remains: no named namespace, no link in the root namespace.
    assert not [p for p in NETNS_DIR.iterdir() if p.name.startswith(doc["tag"])]
    assert [link for link in root_links() if link.startswith(PREFIX)] == quick_run["links_before"]


@pytest.mark.timeout(600)
def test_the_runtimes_ran_both_sides_and_reached_the_agent(quick_run: dict[str, object]) -> None:
    """podman and ctr ran every variant on both sides, podman on the no-op side too (or the
    lane says what is missing), and the agent's log shows a request for each networked run:
    the plugin the runtime executed found it at the default socket, without
    CNI_BRIDGE_PY_AGENT."""
    doc = quick_run["doc"]
    assert isinstance(doc, dict)
    if doc["lanes"]["agent"] != "ok":
        pytest.skip("no agent in this build: the end-to-end lanes need it")
    for lane, tools, metrics, sides in (
        ("podman", PODMAN_TOOLS, ("podman network", "podman none"), ("reference", "agent", NOOP)),
        ("ctr", CTR_TOOLS, ("ctr cni", "ctr none"), ("reference", "agent")),
    ):
        if any(shutil.which(tool) is None for tool in tools):
            assert doc["lanes"][lane].startswith("not available"), doc["lanes"][lane]
            continue
        assert doc["lanes"][lane] == "ok", doc["lanes"][lane]
        for metric in metrics:
            for side in sides:
                series = doc["series"][metric][side]
                assert series["failed"] == [], (metric, side, series["failed"])
                assert len(series["seconds"]) == lane_runs(lane, 2), (metric, side)
                # Each run's turn, for the paired network cost (results.paired_difference).
                assert series["turns"] == list(range(lane_runs(lane, 2))), (metric, side)
        # Fewer requests than runs would be a problem (test above); the line says how many.
        served = [line for line in doc["info"] if line.startswith(f"{lane}: the agent served")]
        runs = f"for {lane_runs(lane, 2)} networked runs"
        assert len(served) == 1 and runs in served[0], doc["info"]
