"""A short benchmark run (`--quick`: a few calls of each measurement) in the normal suite, as
root, so that `make bench` cannot rot. It checks that the table and the JSON are produced and
that nothing is left behind; it judges no timing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.bench.harness import NETNS_DIR, PREFIX, root_links

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
                      "peak RSS, one ADD/CHECK/DEL"):  # fmt: skip
            assert f"| {label} |" in text, label
    assert "## Method" in md and "## Results" in md


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
    if doc["lanes"]["agent"] == "ok":
        assert doc["agent"]["rss_kb"] > 0
    else:
        assert "agent: not available" in str(quick_run["md"])
    # Nothing of this run remains: no named namespace, no link in the root namespace.
    assert not [p for p in NETNS_DIR.iterdir() if p.name.startswith(doc["tag"])]
    assert [link for link in root_links() if link.startswith(PREFIX)] == quick_run["links_before"]
