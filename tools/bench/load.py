"""The machine must be quiet for a run to be quoted: the 1-min load average at the start at
most LOAD_LIMIT. On 2 CPUs a load of 1 already means another process holds a CPU half the
time, and then the two sides of an interleaved pair no longer see the same machine."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

LOAD_LIMIT = 1.0
LOAD_POLL_S = 15.0
Load = tuple[float, float, float]


def quotable(load: Load) -> bool:
    return load[0] <= LOAD_LIMIT


def wait_for_quiet(
    max_wait_s: float,
    say: Callable[[str], None],
    *,
    load: Callable[[], Load] = os.getloadavg,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[Load, float]:
    """Waits up to `max_wait_s` for the 1-min load to fall to LOAD_LIMIT; returns the load
    the run starts with and the seconds waited (the run starts either way)."""
    started = clock()
    while True:
        now, waited = load(), clock() - started
        if quotable(now) or waited >= max_wait_s:
            return now, waited
        left = max_wait_s - waited
        say(f"1-min load {now[0]:.2f} > {LOAD_LIMIT:g}: waiting up to {left:.0f} s more")
        sleep(min(LOAD_POLL_S, left))
