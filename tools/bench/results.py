"""Raw measurements of a run: per metric and lane, the seconds of each successful call (or the
wall time of each concurrent round), what failed, and (RSS metrics) the peak RSS of each call."""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from tools.bench.harness import CallResult


@dataclass
class Series:
    seconds: list[float] = field(default_factory=list)
    rss_kb: list[int] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    calls: int = 0
    # The interleaving turn of each of `seconds` (the end-to-end lanes, CHECK and the errors
    # beside it); empty elsewhere.
    turns: list[int] = field(default_factory=list)

    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None

    def p95(self) -> float | None:
        """Nearest rank: the smallest sample with at least 95% of the samples at or below it."""
        if not self.seconds:
            return None
        ordered = sorted(self.seconds)
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def paired_difference(a: Series, b: Series) -> tuple[float, int] | None:
    """The median over the turns both series ran of (a's time - b's time in that turn), and
    how many turns that is; None without turns in common. Variants interleaved turn by turn
    share the machine's phase within a turn (podman runs of one turn correlate at 0.5-0.9
    here), so a turn's difference keeps the plugin's cost and drops most of the drift that
    moves each median. Over six runs of make bench (40 podman runs per variant, turns
    resampled together), the cost ratio's bootstrap standard deviation was 0.09-0.15 with the
    difference of two medians and 0.05-0.08 with the paired median, and the no-op side's
    cost, which cannot be below zero, read -11 to +13 ms against -1 to +18 ms."""
    pairs = _pairs(a, b)
    if not pairs:
        return None
    return statistics.median(x - y for x, y in pairs), len(pairs)


def paired_ratio(a: Series, b: Series) -> tuple[float, int] | None:
    """The median over the turns both series ran of (a's time / b's time in that turn), and
    how many turns that is; None without turns in common: a CHECK over the error timed beside
    it in its turn. Over nine runs of make bench (50 CHECKs each, pairs resampled together),
    the ratio of the two medians had a bootstrap standard deviation of 0.021-0.089 and the
    paired median 0.009-0.020; the one read above the other in some runs, below in others."""
    pairs = _pairs(a, b)
    if not pairs or any(y <= 0 for _, y in pairs):
        return None
    return statistics.median(x / y for x, y in pairs), len(pairs)


def _pairs(a: Series, b: Series) -> list[tuple[float, float]]:
    """(a's time, b's time) of each turn both ran; none unless both record every turn."""
    if len(a.turns) != len(a.seconds) or len(b.turns) != len(b.seconds):
        return []
    theirs = dict(zip(b.turns, b.seconds, strict=True))
    mine = zip(a.turns, a.seconds, strict=True)
    return [(t, theirs[turn]) for turn, t in mine if turn in theirs]


@dataclass
class Results:
    # metric -> lane label -> series
    series: dict[str, dict[str, Series]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    info: list[str] = field(default_factory=list)  # observations that are not failures
    agent_rss_kb: int = 0
    rss_method: str = ""

    def get(self, metric: str, lane: str) -> Series:
        return self.series.setdefault(metric, {}).setdefault(lane, Series())

    def find(self, metric: str, lane: str) -> Series | None:
        return self.series.get(metric, {}).get(lane)

    def record(
        self, metric: str, lane: str, result: CallResult, ok: bool, what: str, *, turn: int = -1
    ) -> bool:
        """One call: its time counts only when it succeeded; `turn`, the interleaving's turn
        it ran in, where it is paired with another call of that turn (results.paired_ratio)."""
        series = self.get(metric, lane)
        series.calls += 1
        if ok:
            series.seconds.append(result.seconds)
            if turn >= 0:
                series.turns.append(turn)
        else:
            series.failed.append(f"{what}: {result.describe()}")
        return ok

    def fail(self, metric: str, lane: str, why: str) -> None:
        self.get(metric, lane).failed.append(why)
        self.problems.append(f"{metric} [{lane}]: {why}")

    def to_json(self) -> dict[str, Any]:
        return {
            "series": {
                metric: {lane: asdict(s) for lane, s in lanes.items()}
                for metric, lanes in self.series.items()
            },
            "problems": self.problems,
            "info": self.info,
            "agent_rss_kb": self.agent_rss_kb,
            "rss_method": self.rss_method,
        }
