"""The table of issue 5 (markdown) and the raw numbers (JSON), with the targets as a column."""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cni_bridge_py
from tools.bench.results import Results, Series
from tools.bench.scenarios import RSS_CALLS, Plan
from tools.bench.sides import CNI_VERSION, SUBNET

OURS = ("one-shot", "agent")
LANES = ("reference", *OURS)
RSS_TARGET_MB = 45.0
SCALE_TARGET = 1.2
# (metric, lane) -> the largest ours/reference ratio of medians issue 5 accepts.
RATIO_TARGETS: dict[tuple[str, str], float] = {
    ("ADD", "agent"): 1.0,
    ("ADD", "one-shot"): 4.0,
    ("CHECK", "agent"): 1.5,
    ("DEL", "agent"): 0.5,
    ("ADD x20", "agent"): 0.75,
    ("VERSION", "agent"): 5.0,
    ("VERSION", "one-shot"): 5.0,
    ("error", "agent"): 5.0,
    ("error", "one-shot"): 5.0,
}
ZERO_FAILURE_LEVEL = 64  # "64 concurrent with zero failures"


@dataclass
class Row:
    measurement: str
    cells: dict[str, str]  # lane -> text
    ratios: dict[str, float | None] = field(default_factory=dict)  # ours lane -> vs reference
    targets: list[tuple[str, str, bool | None]] = field(default_factory=list)  # lane, text, ok
    raw: dict[str, Any] = field(default_factory=dict)

    def target_text(self) -> str:
        return "; ".join(f"{lane} {text}" for lane, text, _ in self.targets) or "—"

    def result_text(self) -> str:
        words = {True: "pass", False: "**miss**", None: "n/a"}
        return "; ".join(f"{lane}: {words[ok]}" for lane, _, ok in self.targets) or "—"


def ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:.1f} ms"


def _failed(series: Series) -> str:
    return f" ⚠ {len(series.failed)} failed" if series.failed else ""


class Table:
    """Rows from the results; `status` says per lane "ok", "not available" or "not run"."""

    def __init__(self, results: Results, plan: Plan, status: Mapping[str, str]) -> None:
        self.results, self.plan, self.status = results, plan, status

    def lanes(self) -> list[str]:
        return [lane for lane in LANES if self.status.get(lane) == "ok"]

    def absent(self, lane: str) -> str:
        return self.status.get(lane, "not run")

    def rows(self) -> list[Row]:
        rows = [self.timing(verb, f"{verb}, {self.plan.calls} sequential") for verb in
                ("ADD", "CHECK", "DEL")]  # fmt: skip
        for c in self.plan.concurrency:
            rows.append(self.timing(f"ADD x{c}", f"{c} concurrent ADD, wall", p95=False))
            rows.append(self.timing(f"DEL x{c}", f"{c} concurrent DEL, wall", p95=False))
            rows.append(self.failures(c))
        rows.append(self.timing("VERSION", "VERSION"))
        rows.append(self.timing("error", "error (malformed JSON on ADD)"))
        levels = sorted(set(self.plan.scale))
        for level in levels:
            rows.append(self.timing(f"ADD @{level}", f"ADD with {level} attachments"))
        if len(levels) > 1:
            rows.append(self.growth("ADD", levels[0], levels[-1]))
            rows.append(self.growth("DEL", levels[0], levels[-1]))
        rows.append(self.peak_rss(("ADD", "CHECK", "DEL"), "peak RSS, one ADD/CHECK/DEL", True))
        rows.append(self.peak_rss(("VERSION",), "peak RSS, one VERSION", False))
        rows.append(self.peak_rss(("error",), "peak RSS, one error", False))
        rows.append(self.agent_rss())
        return rows

    def _cells(self, text: Callable[[str], str]) -> dict[str, str]:
        return {lane: text(lane) if lane in self.lanes() else self.absent(lane) for lane in LANES}

    def timing(self, metric: str, label: str, p95: bool = True) -> Row:
        def cell(lane: str) -> str:
            series = self.results.find(metric, lane) or Series()
            extra = f" (p95 {ms(series.p95())})" if p95 and series.seconds else ""
            return ms(series.median()) + extra + _failed(series)

        row = Row(label, self._cells(cell), raw={"metric": metric})
        reference = self._median(metric, "reference")
        for lane in OURS:
            ours = self._median(metric, lane) if lane in self.lanes() else None
            ratio = ours / reference if ours is not None and reference else None
            row.ratios[lane] = ratio
            if (limit := RATIO_TARGETS.get((metric, lane))) is not None:
                ok = None if ratio is None else ratio <= limit
                row.targets.append((lane, f"≤ {limit:g}", ok))
        return row

    def failures(self, c: int) -> Row:
        counts: dict[str, int] = {}

        def cell(lane: str) -> str:
            calls = sum(s.calls for s in self._series(lane, f"ADD x{c}", f"DEL x{c}"))
            failed = sum(len(s.failed) for s in self._series(lane, f"ADD x{c}", f"DEL x{c}"))
            counts[lane] = failed
            return f"{failed} failed of {calls} calls"

        row = Row(f"{c} concurrent: failed calls or checks", self._cells(cell))
        row.raw = {"failed": counts}
        if c == ZERO_FAILURE_LEVEL:
            for lane in OURS:
                ok = counts[lane] == 0 if lane in counts else None
                row.targets.append((lane, "0 failed", ok))
        return row

    def growth(self, verb: str, low: int, high: int) -> Row:
        ratios: dict[str, float | None] = {}

        def cell(lane: str) -> str:
            a, b = self._median(f"{verb} @{low}", lane), self._median(f"{verb} @{high}", lane)
            ratios[lane] = b / a if a and b is not None else None
            value = ratios[lane]
            return "—" if value is None else f"{value:.2f}"

        row = Row(f"{verb} @{high} / {verb} @{low} (same lane)", self._cells(cell))
        row.raw = {"growth": ratios}
        if verb == "ADD":
            for lane in OURS:
                value = ratios.get(lane)
                ok = None if value is None else value <= SCALE_TARGET
                row.targets.append((lane, f"≤ {SCALE_TARGET:g}", ok))
        return row

    def peak_rss(self, verbs: tuple[str, ...], label: str, target: bool) -> Row:
        peaks: dict[str, int] = {}

        def cell(lane: str) -> str:
            samples = [
                kb for s in self._series(lane, *(f"RSS {v}" for v in verbs)) for kb in s.rss_kb
            ]
            peaks[lane] = max(samples, default=0)
            return f"{peaks[lane] / 1024:.1f} MB" if samples else "—"

        row = Row(label, self._cells(cell))
        row.raw = {"peak_kb": peaks}
        for lane in OURS:
            if peaks.get(lane) and peaks.get("reference"):
                row.ratios[lane] = peaks[lane] / peaks["reference"]
        if target:
            ok = peaks["one-shot"] / 1024 <= RSS_TARGET_MB if peaks.get("one-shot") else None
            row.targets.append(("one-shot", f"≤ {RSS_TARGET_MB:g} MB", ok))
        return row

    def agent_rss(self) -> Row:
        cells = {lane: "—" for lane in LANES}
        kb = self.results.agent_rss_kb
        cells["agent"] = f"{kb / 1024:.1f} MB" if kb else self.absent("agent")
        return Row("peak RSS of the agent process", cells, raw={"agent_kb": kb})

    def _median(self, metric: str, lane: str) -> float | None:
        series = self.results.find(metric, lane)
        return series.median() if series else None

    def _series(self, lane: str, *metrics: str) -> list[Series]:
        return [s for m in metrics if (s := self.results.find(m, lane)) is not None]


def markdown_table(rows: list[Row]) -> str:
    def ratio(value: float | None) -> str:
        return "—" if value is None else f"{value:.2f}"

    head = [
        "| measurement | reference | ours one-shot | one-shot / ref | ours agent | agent / ref "
        "| target (ours / ref) | result |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    lines = [
        f"| {r.measurement} | {r.cells['reference']} | {r.cells['one-shot']} "
        f"| {ratio(r.ratios.get('one-shot'))} | {r.cells['agent']} "
        f"| {ratio(r.ratios.get('agent'))} | {r.target_text()} | {r.result_text()} |"
        for r in rows
    ]
    return "\n".join(head + lines) + "\n"


# --- the machine and the versions -----------------------------------------------------------


def _run(*args: str, cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(
            args, capture_output=True, text=True, timeout=30, cwd=cwd, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    pretty = ""
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                pretty = line.split("=", 1)[1].strip('"')
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": model,
        "kernel": platform.release(),
        "os": pretty,
        "python": platform.python_version(),
        "loadavg_start": os.getloadavg(),
    }


def versions() -> dict[str, str]:
    source = Path(cni_bridge_py.__file__).resolve().parent.parent
    git = (
        _run("git", "describe", "--always", "--dirty", cwd=source)
        if (source / ".git").exists()
        else ""
    )
    ref = _run("dpkg-query", "-W", "-f", "${Version}", "containernetworking-plugins")
    found = {
        "cni-bridge-py": cni_bridge_py.__version__ + (f" ({git})" if git else ""),
        "reference (containernetworking-plugins)": ref or "unknown (not a Debian package?)",
        "iptables": _run("iptables", "--version"),
    }
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        found["pyroute2"] = importlib.metadata.version("pyroute2")
    return found


# --- the documents ----------------------------------------------------------------------------


METHOD = """\
- **Lanes.** Three lanes, each in throwaway namespaces of its own: the reference
  (`/usr/lib/cni/bridge`, which runs `host-local` from `CNI_PATH=/usr/lib/cni`), ours one-shot
  and ours with the resident agent (`cni-bridge-py agent --socket <tmp>/agent.sock`, started
  inside that lane's host namespace and stopped at the end; `CNI_BRIDGE_PY_AGENT` points at it;
  the one-shot lane's points at a socket that does not exist). Ours is installed by
  `cni_bridge_py.install` into a temp bin dir (launcher + compiled bytecode), as `make install`
  does.
- **Identical configs.** cniVersion {cni_version}, `isGateway`, `ipMasq`, host-local
  `ranges: [[{{subnet: {subnet}}}]]`; only `type`, the bridge name and a temp `dataDir` differ.
- **How a call runs.** Like a runtime: `ip netns exec <lane host> <plugin>` with a fresh
  environment (`PATH=/usr/sbin:/usr/bin:/sbin:/bin` and the `CNI_*` variables), the config on
  stdin. Container namespaces are made before any timing and passed as `/proc/<pid>/fd/<n>`
  (held open by the benchmark: no bind mount each, since every mount makes each `ip netns
  exec` slower). A call is timed from just before its spawn to its reaping by `os.wait4`, so
  `ip netns exec` (~3 ms) is in every lane's numbers.
- **Order.** One untimed ADD+DEL per lane first (bridge created, caches warm). Then lanes are
  interleaved call by call, the lane order rotating each iteration: VERSION and a malformed-JSON
  ADD ({calls} each); ADD on {calls} containers, CHECK each (prevResult = its ADD result), DEL
  each (medians and nearest-rank p95); {concurrency} concurrent ADDs then DELs, {rounds}
  round(s), median wall time (start of the first spawn to the last reaping), every ADD checked
  (exit 0, addresses distinct and present in their namespaces) and nothing left after the DELs
  (no veth, no NAT chain or rule, no reservation); last, ADD and DEL latency with {scale}
  attachments already on the bridge ({pairs} timed ADD/DEL pairs per level; the attachments are
  made by the lane's own plugin, {parallel} at a time, untimed, and go with the lane's
  namespaces and data dir at the end).
- **Peak RSS** comes from a pass of its own ({rss_calls} ADD, CHECK, DEL, VERSION and error
  calls per lane), each call under GNU `time -f %M`: the plugin's peak (`ip netns exec` execs
  it; a child it waited for, `iptables-restore` or the reference's `host-local`, counts if
  larger). Not `wait4` from the benchmark itself: the kernel carries the pre-exec image's peak
  into `ru_maxrss`, so every number would read at least the benchmark's own ~24 MB. The agent's
  peak RSS is its `VmHWM` at the end of the run.
- **Targets** (issue 5, ours / reference medians of the same run): agent ADD ≤ 1.0, DEL ≤ 0.5,
  CHECK ≤ 1.5, 20-concurrent ADD wall ≤ 0.75, 64 concurrent with zero failures; one-shot ADD ≤
  4.0; VERSION and errors ≤ 5.0; ADD at the largest level ≤ 1.2 times ADD at 0 (same lane);
  one-shot peak RSS ≤ 45 MB.
- **Profiles.** `python -m tools.bench --profile add` (also `check`, `del`,
  `version`, `error`; `--profile-mode agent`, `--profile-attachments N`) runs one call of ours
  under cProfile and `-X importtime` in a throwaway namespace and prints the top entries.
"""


def render_markdown(doc: Mapping[str, Any], table: str, notes: list[str]) -> str:
    meta, plan = doc["machine"], doc["plan"]
    method = METHOD.format(
        cni_version=CNI_VERSION,
        subnet=SUBNET,
        calls=plan["calls"],
        concurrency=" and ".join(map(str, plan["concurrency"])) or "no",
        rounds=plan["rounds"],
        scale=", ".join(map(str, plan["scale"])) or "no",
        pairs=plan["pairs"],
        parallel=plan["parallel"],
        rss_calls=min(plan["calls"], RSS_CALLS),
    )
    load = ", ".join(f"{x:.2f}" for x in meta["loadavg_start"])
    end = ", ".join(f"{x:.2f}" for x in doc["loadavg_end"])
    lines = [
        "# Benchmarks: cni-bridge-py against the reference bridge + host-local",
        "",
        "Generated by `make bench` (`python -m tools.bench`); the raw numbers are in "
        "`docs/benchmarks.json`. Do not edit by hand: run it again.",
        "",
        f"- **Date:** {meta['date']} (the run took {doc['duration_s']:.0f} s)",
        f"- **Machine:** {meta['nproc']} CPUs ({meta['cpu']}), kernel {meta['kernel']}, "
        f"{meta['os']}, Python {meta['python']}; load average {load} at the start, {end} at "
        "the end",
        "- **Versions:** " + ", ".join(f"{k} {v}" for k, v in doc["versions"].items()),
        f"- **N:** {plan['calls']} sequential calls per verb; concurrency "
        f"{', '.join(map(str, plan['concurrency']))} x {plan['rounds']} round(s); "
        f"attachments {', '.join(map(str, plan['scale']))} x {plan['pairs']} pair(s)",
        f"- **Agent:** {doc['agent']['note']}",
        "",
        "## Results",
        "",
        "Times are medians (p95 in brackets); ratios are ours / reference medians of this run.",
        "",
        table,
    ]
    if notes:
        lines += ["", "## Notes from this run", "", *[f"- {note}" for note in notes]]
    lines += ["", "## Method", "", method]
    return "\n".join(lines)


def write_json(path: Path, doc: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")


def rows_json(rows: list[Row]) -> list[dict[str, Any]]:
    return [asdict(row) for row in rows]
