"""The suite's figures: what was tried and what went wrong, per profile.

Tests add counts to a session-wide `Figures`; at the end of a session the counts are written to
build/reliability/<profile>.json. `python -m tests.reliability.figures [DOC]` renders the
tables of both profiles into docs/reliability.md between its figure markers.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = ROOT / "build" / "reliability"
DOC = ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"

# (section, key, label) in table order; the goal column says what "at goal" means.
ROWS: tuple[tuple[str, str, str, str], ...] = (
    ("bad_input", "runs", "bad inputs run through the executable (corpus cases x modes)", ""),
    ("bad_input", "corpus_cases", "distinct corpus cases", ">= 200"),
    ("bad_input", "typed_errors", "clean typed CNI errors (one JSON object, exit 1)", "all"),
    ("bad_input", "accepted", "idempotent DELs that succeed changing nothing", ""),
    ("bad_input", "bad_answers", "wrong code, 999, traceback or malformed output", "0"),
    ("bad_input", "state_changes", "state changes (links, addresses, routes, rules, store)", "0"),
    ("bad_input", "property_examples", "generated requests through front.handle (hypothesis)", ""),
    ("bad_input", "property_failures", "generated requests answered wrongly", "0"),
    ("faults", "injected", "SIGKILLs injected (plugin or agent, every ADD and DEL step)", ""),
    (
        "faults",
        "leaks",
        "leftovers after the recovery DEL (veth, reservation, NAT, nft, cache)",
        "0",
    ),
    ("faults", "gc_removed", "things GC still found after that DEL", "0"),
    ("faults", "follow_up_adds", "ADDs of another container after the crash that succeeded", "all"),
    ("load", "operations", "concurrent ADDs and DELs", ""),
    ("load", "retried_11", "code 11 answers retried as a runtime would", ""),
    ("load", "other_errors", "any other error", "0"),
    ("load", "duplicates", "duplicate addresses", "0"),
    ("load", "unconfigured", "addresses missing from their namespace", "0"),
    ("load", "leftovers", "leftovers after the DELs", "0"),
    ("restarts", "stale", "reservations left by containers gone without DEL", ""),
    ("restarts", "reclaimed", "of those reclaimed by GC with the valid list", "all"),
    ("restarts", "leftovers", "leftovers after GC", "0"),
    ("safety", "checks", "safety scenarios (foreign links, chains, networks, paths, socket)", ""),
    ("safety", "violations", "foreign state changed or read through", "0"),
)


@dataclass
class Figures:
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, section: str, **counts: int) -> None:
        with self._guard:
            self.counts.setdefault(section, Counter()).update(counts)

    def get(self, section: str, key: str) -> int:
        return self.counts.get(section, Counter())[key]

    def write(self, profile: str, tests: dict[str, int], durations: dict[str, float]) -> Path:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"{profile}.json"
        body = {
            "profile": profile,
            "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "duration_s": round(sum(durations.values()), 1),
            "durations_s": {k: round(v, 1) for k, v in sorted(durations.items())},
            "tests": tests,
            "figures": {k: dict(sorted(v.items())) for k, v in sorted(self.counts.items())},
        }
        path.write_text(json.dumps(body, indent=2) + "\n")
        return path


def _load(profile: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"{profile}.json"
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _cell(run: dict[str, Any] | None, section: str, key: str) -> str:
    if run is None:
        return "-"
    value = run["figures"].get(section, {}).get(key)
    return "-" if value is None else str(value)


def table(runs: dict[str, dict[str, Any] | None]) -> str:
    names = list(runs)
    lines = [
        "| | " + " | ".join(f"{n} profile" for n in names) + " | goal |",
        "|---|" + "---:|" * len(names) + "---|",
    ]
    for section, key, label, goal in ROWS:
        cells = " | ".join(_cell(runs[n], section, key) for n in names)
        lines.append(f"| {section.replace('_', ' ')}: {label} | {cells} | {goal} |")
    lines.append(
        "| run: tests passed / failed | "
        + " | ".join(
            "-" if r is None else f"{r['tests'].get('passed', 0)} / {r['tests'].get('failed', 0)}"
            for r in runs.values()
        )
        + " | all / 0 |"
    )
    lines.append(
        "| run: wall time of the reliability tests (s) | "
        + " | ".join("-" if r is None else f"{r['duration_s']}" for r in runs.values())
        + " | CI < 180 |"
    )
    lines.append(
        "| run: finished | "
        + " | ".join("-" if r is None else str(r["finished"]) for r in runs.values())
        + " | |"
    )
    return "\n".join(lines)


def durations(runs: dict[str, dict[str, Any] | None]) -> str:
    files = sorted({f for r in runs.values() if r for f in r["durations_s"]})
    lines = [
        "| test file | " + " | ".join(f"{n} (s)" for n in runs) + " |",
        "|---|" + "---:|" * len(runs),
    ]
    for name in files:
        cells = " | ".join(
            str(r["durations_s"].get(name, "-")) if r else "-" for r in runs.values()
        )
        lines.append(f"| `{name}` | {cells} |")
    return "\n".join(lines)


def render(doc: Path = DOC) -> None:
    runs = {name: _load(name) for name in ("ci", "full")}
    text = doc.read_text()
    head, found, rest = text.partition(BEGIN)
    _, found_end, tail = rest.partition(END)
    if not (found and found_end):
        raise SystemExit(f"{doc} has no {BEGIN} ... {END} block")
    block = f"{BEGIN}\n{table(runs)}\n\nTime per test file:\n\n{durations(runs)}\n{END}"
    doc.write_text(head + block + tail)


if __name__ == "__main__":
    render(Path(sys.argv[1]) if len(sys.argv) > 1 else DOC)
