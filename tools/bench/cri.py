"""Pods through containerd's CRI (issue 11): RunPodSandbox + StopPodSandbox timed by the CRI
suite's own timing test (tests/runtimes/cri/test_timing.py), on its private node, with our
plugin one-shot and with the agent, the reference, and a hostNetwork pod. The benchmark runs
that test and quotes what it measured, so there is one way to build the node."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

TEST = "tests/runtimes/cri/test_timing.py"
TIMEOUT_S = 900


def cri_pods(say: Callable[[str], None]) -> dict[str, Any]:
    """{"status": "ok" or why not, "rows": [{what, median_s, min_s, max_s, n}]}."""
    say("pods through containerd's CRI (the CRI suite's timing test) ...")
    with tempfile.TemporaryDirectory(prefix="cbp-cri-") as tmp:
        out = Path(tmp) / "timing.json"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TEST]
        try:
            proc = subprocess.run(
                command,
                env={**os.environ, "CRI_TIMING_JSON": str(out)},
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return {"status": f"not measured: {TEST} ran past {TIMEOUT_S} s", "rows": []}
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
            return {"status": f"not measured: {TEST} failed: {' / '.join(tail)}", "rows": []}
        samples = json.loads(out.read_text())
    rows = [
        {
            "what": s["what"],
            "median_s": statistics.median(s["seconds"]),
            "min_s": min(s["seconds"]),
            "max_s": max(s["seconds"]),
            "n": len(s["seconds"]),
        }
        for s in samples
    ]
    return {"status": "ok", "rows": rows}


def cri_markdown(cri: dict[str, Any]) -> list[str]:
    lines = ["", "## Pods through containerd's CRI (issue 11)", ""]
    if cri.get("status") != "ok":
        return [*lines, f"{cri.get('status', 'not run')}."]
    reference = next((r["median_s"] for r in cri["rows"] if "reference" in r["what"]), None)
    lines += [
        "RunPodSandbox + StopPodSandbox on the CRI suite's private containerd 1.6 node "
        f"(`{TEST}`), medians of its pods; run in the same benchmark, after the plugin calls.",
        "",
        "| pod | median | min | max | n | / reference |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in cri["rows"]:
        ratio = f"{r['median_s'] / reference:.2f}" if reference else "—"
        lines.append(
            f"| {r['what']} | {r['median_s']:.3f} s | {r['min_s']:.3f} s | {r['max_s']:.3f} s "
            f"| {r['n']} | {ratio} |"
        )
    return lines
