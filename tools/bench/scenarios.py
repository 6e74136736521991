"""The measurements. Lanes are interleaved call by call (the order rotates each iteration, so
no lane always runs right after another), every phase verifies what the kernel and the store
hold afterwards, and every phase ends with nothing attached."""

from __future__ import annotations

import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cni_bridge_py.install import launcher_interpreter, launcher_shell_part
from tools.bench.harness import (
    MINIMAL_PATH,
    PREFIX,
    BenchError,
    CallResult,
    Running,
    container_addresses,
    host_veths,
    nat_leftovers,
    reservations,
)
from tools.bench.results import Results
from tools.bench.sides import CNI_VERSION, NETWORK, Lane, twin

VERSION_STDIN = f'{{"cniVersion":"{CNI_VERSION}"}}'.encode()  # what libcni sends
MALFORMED = f'{{"cniVersion": "{CNI_VERSION}", "name": "{NETWORK}", "type": '.encode()

T = TypeVar("T")
RSS_CALLS = 5  # per verb and lane in the RSS pass
# (command, container ID, netns path, stdin or None for the lane's config)
Spec = tuple[str, str, str, bytes | None]


@dataclass(frozen=True)
class Plan:
    calls: int = 50
    concurrency: tuple[int, ...] = (20, 64)
    scale: tuple[int, ...] = (0, 100, 250)
    pairs: int = 20  # timed ADD/DEL pairs at each scale level
    rounds: int = 3  # concurrent rounds per level (the table shows their median)
    runtime_runs: int = 40  # timed runs per variant and side in each end-to-end lane (0: none)
    parallel: int = len(os.sched_getaffinity(0))  # untimed pre-population runs this many
    cri: bool = True  # pods through containerd's CRI (tools/bench/cri.py)

    def pool_size(self) -> int:
        # The scale phase's levels above 0 have pools of their own (twin lanes).
        return max(self.calls, max(self.concurrency, default=0), 1)


@dataclass
class Run:
    plan: Plan
    lanes: list[Lane]  # the reference first
    results: Results
    progress: Callable[[str], None]


def rotate(items: Sequence[T], i: int) -> list[T]:
    """The order of iteration i: each item leads in turn, so none always follows another."""
    k = i % len(items)
    return [*items[k:], *items[:k]]


def cid(lane: Lane, tag: str, i: int) -> str:
    return f"{PREFIX}-{lane.label}-{tag}-{i}"


def added(result: CallResult) -> bool:
    return result.code == 0 and bool(result.json().get("ips"))


def _exit0(result: CallResult) -> bool:
    return result.code == 0


def warm_up(run: Run) -> None:
    """One untimed ADD and DEL per lane: the bridge exists and the caches are warm before any
    measurement, and a plugin that cannot ADD stops the run here."""
    for lane in run.lanes:
        container, netns = cid(lane, "warm", 0), lane.pool.paths[0]
        for command in ("ADD", "DEL"):
            result = lane.call(command, container, netns)
            if result.code != 0:
                raise BenchError(f"{lane.label}: warm-up {command} failed: {result.describe()}")
        check_clean(run, "warm-up", lane)


def version_and_errors(run: Run) -> None:
    for i in range(run.plan.calls):
        for lane in rotate(run.lanes, i):
            result = lane.call("VERSION", stdin=VERSION_STDIN)
            ok = result.code == 0 and "supportedVersions" in result.json()
            run.results.record("VERSION", lane.label, result, ok, f"VERSION #{i}")
    for i in range(run.plan.calls):
        for lane in rotate(run.lanes, i):
            result = lane.call("ADD", cid(lane, "err", i), lane.pool.paths[0], MALFORMED)
            run.results.record("error", lane.label, result, _refused(result), f"malformed #{i}")
            if lane.label != "reference":
                floor = _run_interpreter(lane)
                run.results.record(FLOOR, lane.label, floor, floor.code == 0, f"floor #{i}")
    for c in run.plan.concurrency:
        for rnd in range(run.plan.rounds):
            for lane in rotate(run.lanes, rnd):
                specs: list[Spec] = [
                    ("ADD", cid(lane, f"e{c}r{rnd}", i), lane.pool.paths[0], MALFORMED)
                    for i in range(c)
                ]
                wall, outcomes = at_once(lane, specs)
                _record_batch(
                    run, f"error x{c}", lane=lane, wall=wall, outcomes=outcomes, ok=_refused
                )


# The front's floor: the launcher's interpreter with the launcher's flags and nothing to run,
# started as the plugin is (`ip netns exec` in the lane's host namespace).
FLOOR = "interpreter"


def interpreter_argv(lane: Lane) -> list[str]:
    interpreter = launcher_interpreter(lane.executable.read_text())
    return [*lane.argv()[:-1], *interpreter, "-c", "pass"]


def sequential(run: Run) -> None:
    """ADD on N containers, CHECK each (prevResult: its ADD result), DEL each."""
    n = run.plan.calls
    results: dict[str, dict[int, dict[str, Any]]] = {lane.label: {} for lane in run.lanes}
    for i in range(n):
        for lane in rotate(run.lanes, i):
            result = lane.call("ADD", cid(lane, "seq", i), lane.pool.paths[i])
            if run.results.record("ADD", lane.label, result, added(result), f"ADD #{i}"):
                results[lane.label][i] = result.json()
    for lane in run.lanes:
        check_attached(run, "ADD", lane, results[lane.label])
    for i in range(n):
        for lane in rotate(run.lanes, i):
            prev = results[lane.label].get(i)
            if prev is None:
                run.results.fail("CHECK", lane.label, f"CHECK #{i}: its ADD failed")
                continue
            # Ours' floors for CHECK are timed in the same turn, before the CHECK and after
            # it in turn: both then have the same neighbours (the other lanes' CHECKs, a
            # one-shot one among them) and the same attachments.
            if lane.label != "reference" and i % 2:
                _floors_beside_check(run, lane, i)
            result = lane.call("CHECK", cid(lane, "seq", i), lane.pool.paths[i], lane.stdin(prev))
            run.results.record("CHECK", lane.label, result, result.code == 0, f"CHECK #{i}", turn=i)
            if lane.label != "reference" and not i % 2:
                _floors_beside_check(run, lane, i)
    for i in range(n):
        for lane in rotate(run.lanes, i):
            result = lane.call("DEL", cid(lane, "seq", i), lane.pool.paths[i])
            run.results.record("DEL", lane.label, result, result.code == 0, f"DEL #{i}")
    for lane in run.lanes:
        check_clean(run, "DEL", lane)


# CHECK's floors, each timed among the CHECKs, one beside each (report.check_over): the
# malformed-JSON ADD, the call's round trip through the front and nothing more; the launcher
# with its Python part left out (its shell's test of CNI_COMMAND and exec, then the
# interpreter with nothing to run); and the launcher's interpreter alone, -c pass.
ERROR_BESIDE_CHECK = "error beside CHECK"
LAUNCHER_BESIDE_CHECK = "empty launcher beside CHECK"
INTERPRETER_BESIDE_CHECK = "interpreter beside CHECK"


def _floors_beside_check(run: Run, lane: Lane, i: int) -> None:
    """The three in an order that rotates with the turn: none always runs right before the
    CHECK."""
    container, netns = cid(lane, "cfloor", i), lane.pool.paths[0]
    calls: list[tuple[str, Callable[[], CallResult], Callable[[CallResult], bool]]] = [
        (ERROR_BESIDE_CHECK, lambda: lane.call("ADD", container, netns, MALFORMED), _refused),
        (LAUNCHER_BESIDE_CHECK, lambda: _run_empty_launcher(lane, container, netns), _silent),
        (INTERPRETER_BESIDE_CHECK, lambda: _run_interpreter(lane), _exit0),
    ]
    for metric, call, ok in rotate(calls, i):
        result = call()
        run.results.record(metric, lane.label, result, ok(result), f"#{i}", turn=i)


def _run_interpreter(lane: Lane) -> CallResult:
    return lane.ws.finished(lane.ws.prepare(interpreter_argv(lane), {}, b"").start())


def _run_empty_launcher(lane: Lane, container: str, netns: str) -> CallResult:
    """Run as the CHECK is (`ip netns exec`, the CHECK's environment), so its shell takes the
    same branch; the interpreter reads no stdin."""
    argv = [*lane.argv()[:-1], str(empty_launcher(lane))]
    env = lane.env("CHECK", container, netns, "eth0")
    return lane.ws.finished(lane.ws.prepare(argv, env, b"").start())


def empty_launcher(lane: Lane) -> Path:
    """The lane's launcher without its Python part (install.launcher_shell_part), written
    once beside the lane's other files."""
    path = lane.ws.tmp / f"{lane.host}-empty-launcher"
    if not path.exists():
        path.write_text(launcher_shell_part(lane.executable.read_text()))
        path.chmod(0o755)
    return path


def _silent(result: CallResult) -> bool:
    return result.code == 0 and not result.stdout


def peak_rss(run: Run) -> None:
    """Peak RSS per call, in a pass of its own: ADD, CHECK, DEL, VERSION and the error case a
    few times per lane, each under GNU time (%M). A process's ru_maxrss includes the peak of the
    image it exec'd from (the kernel records it at exec), so read from this Python process it
    would never be below this process's own ~24 MB; GNU time forks from ~1.3 MB."""
    timer = shutil.which("time", path=MINIMAL_PATH)
    run.results.rss_method = (
        "GNU time %M (the plugin's peak; a child it waited for counts if larger)"
        if timer
        else "os.wait4 ru_maxrss: floored at the benchmark's own RSS (install GNU time)"
    )
    for i in range(min(run.plan.calls, RSS_CALLS)):
        for lane in rotate(run.lanes, i):
            container, netns = cid(lane, "rss", i), lane.pool.paths[i]
            add = ("ADD", container, netns, None)
            result = _rss_call(run, lane, "ADD", add, added, timer=timer)
            if added(result):
                check = ("CHECK", container, netns, lane.stdin(result.json()))
                _rss_call(run, lane, "CHECK", check, _exit0, timer=timer)
            _rss_call(run, lane, "DEL", ("DEL", container, netns, None), _exit0, timer=timer)
            version = ("VERSION", "", "", VERSION_STDIN)
            _rss_call(run, lane, "VERSION", version, _exit0, timer=timer)
            error = ("ADD", container, netns, MALFORMED)
            _rss_call(run, lane, "error", error, _refused, timer=timer)
    for lane in run.lanes:
        check_clean(run, "RSS", lane)


def _rss_call(
    run: Run,
    lane: Lane,
    verb: str,
    spec: Spec,
    ok: Callable[[CallResult], bool],
    *,
    timer: str | None,
) -> CallResult:
    command, container, netns, stdin = spec
    report = lane.ws.tmp / f"rss-{lane.label}.txt"
    prefix = [timer, "-f", "%M", "-o", str(report)] if timer else []
    env = lane.env(command, container, netns, "eth0")
    body = lane.stdin() if stdin is None else stdin
    result = lane.ws.finished(lane.ws.prepare([*prefix, *lane.argv()], env, body).start())
    series = run.results.get(f"RSS {verb}", lane.label)
    series.calls += 1
    # GNU time writes "Command exited with non-zero status N" first when the plugin fails.
    series.rss_kb.append(int(report.read_text().split()[-1]) if timer else result.maxrss_kb)
    if not ok(result):
        series.failed.append(f"{verb} {container}: {result.describe()}")
    return result


def _refused(result: CallResult) -> bool:
    return result.code == 1 and isinstance(result.json().get("code"), int)


def concurrent(run: Run) -> None:
    """c ADDs at once (wall time until the last is reaped), checked, then c DELs at once."""
    for c in run.plan.concurrency:
        for rnd in range(run.plan.rounds):
            for lane in rotate(run.lanes, rnd):
                containers = [cid(lane, f"x{c}r{rnd}", i) for i in range(c)]
                add_specs: list[Spec] = [
                    ("ADD", containers[i], lane.pool.paths[i], None) for i in range(c)
                ]
                wall, outcomes = at_once(lane, add_specs)
                attached = _record_batch(
                    run, f"ADD x{c}", lane=lane, wall=wall, outcomes=outcomes, ok=added
                )
                check_attached(run, f"ADD x{c}", lane, attached)
                del_specs: list[Spec] = [("DEL", c_id, ns, None) for _, c_id, ns, _ in add_specs]
                wall, outcomes = at_once(lane, del_specs)
                _record_batch(run, f"DEL x{c}", lane=lane, wall=wall, outcomes=outcomes, ok=_exit0)
                check_clean(run, f"DEL x{c}", lane)
            run.progress(f"concurrent x{c}: round {rnd + 1}/{run.plan.rounds}")


SETTLE_S = 3.0


def scale(run: Run) -> None:
    """ADD/DEL latency with L attachments already on the bridge, every level timed side by
    side. Level 0 is each lane itself (every earlier phase deleted what it made); each other
    level is a twin of each lane (its own host namespace, bridge, data dir and, for the agent
    lane, agent) filled to L by its own plugin, untimed. The timed pairs then rotate over
    every (level, lane), so the machine's drift during the phase falls on every level alike:
    ADD @250 / ADD @0 is a ratio within one interleaved series. Runs last: the attachments
    made here go with the namespaces and data dirs when the run ends (deleting hundreds per
    lane one by one would add minutes to every run)."""
    measured: list[tuple[int, Lane]] = []
    for level in sorted(set(run.plan.scale)):
        for lane in run.lanes:
            target = lane if level == 0 else twin(lane, f"{level}", level + 1)
            _populate(run, target, 0, level)
            measured.append((level, target))
        run.progress(f"scale: {level} attachments made")
    if any(level for level, _ in measured):
        # Making hundreds of links leaves the kernel work for after (RCU callbacks, each new
        # link's IPv6 duplicate address detection): not the timed calls' to pay.
        time.sleep(SETTLE_S)
    for p in range(run.plan.pairs):
        for level, lane in rotate(measured, p):
            container, netns = cid(lane, f"at{level}", p), lane.pool.paths[level]
            result = lane.call("ADD", container, netns)
            run.results.record(f"ADD @{level}", lane.label, result, added(result), container)
            result = lane.call("DEL", container, netns)
            ok = result.code == 0
            run.results.record(f"DEL @{level}", lane.label, result, ok, container)
    run.progress("scale: measured")


def _populate(run: Run, lane: Lane, start: int, stop: int) -> None:
    for result in populate(lane, start, stop, run.plan.parallel):
        if not added(result):
            run.results.fail("scale", lane.label, f"pre-populating: {result.describe()}")


def populate(lane: Lane, start: int, stop: int, parallel: int) -> list[CallResult]:
    """Attachments start..stop-1 on the lane's bridge, made by its own plugin (untimed)."""
    specs: list[Spec] = [
        ("ADD", cid(lane, "pop", i), lane.pool.paths[i], None) for i in range(start, stop)
    ]
    return in_parallel(lane, specs, parallel)


def _record_batch(
    run: Run,
    metric: str,
    *,
    lane: Lane,
    wall: float,
    outcomes: list[tuple[str, CallResult]],
    ok: Callable[[CallResult], bool],
) -> dict[int, dict[str, Any]]:
    series = run.results.get(metric, lane.label)
    series.seconds.append(wall)
    good: dict[int, dict[str, Any]] = {}
    for i, (_netns, result) in enumerate(outcomes):
        series.calls += 1
        if ok(result):
            good[i] = result.json()
        else:
            series.failed.append(f"call {i}: {result.describe()}")
    return good


def at_once(lane: Lane, specs: list[Spec]) -> tuple[float, list[tuple[str, CallResult]]]:
    """Start every call, then reap them all: returns the wall time and (netns, result) pairs."""
    prepared = [lane.prepare(command, c, netns, stdin) for command, c, netns, stdin in specs]
    started = time.perf_counter()
    for run in prepared:
        run.start()
    outcomes = [lane.ws.finished(run) for run in prepared]
    wall = time.perf_counter() - started
    return wall, [(spec[2], result) for spec, result in zip(specs, outcomes, strict=True)]


def in_parallel(lane: Lane, specs: list[Spec], parallel: int) -> list[CallResult]:
    """At most `parallel` calls at a time (untimed set-up and tear-down)."""
    pending = deque(specs)
    running: deque[Running] = deque()
    outcomes: list[CallResult] = []
    while pending or running:
        while pending and len(running) < max(1, parallel):
            command, container, netns, stdin = pending.popleft()
            running.append(lane.prepare(command, container, netns, stdin).start())
        outcomes.append(lane.ws.finished(running.popleft()))
    return outcomes


# --- verification (untimed) ---------------------------------------------------------------------


def check_attached(run: Run, metric: str, lane: Lane, bodies: dict[int, dict[str, Any]]) -> None:
    """Every address a result names is on the container's interface; no address twice."""
    seen: dict[str, int] = {}
    missing: list[str] = []
    for i, body in sorted(bodies.items()):
        ips = [str(ip.get("address")) for ip in body.get("ips", [])]
        configured = container_addresses(lane.pool.paths[i], "eth0")
        missing += [f"{a} (container {i})" for a in ips if a not in configured]
        for address in ips:
            seen[address] = seen.get(address, 0) + 1
    if missing:
        run.results.fail(metric, lane.label, f"not configured in its namespace: {_few(missing)}")
    duplicates = sorted(a for a, count in seen.items() if count > 1)
    if duplicates:
        run.results.fail(metric, lane.label, f"addresses given twice: {_few(duplicates)}")


def check_clean(run: Run, metric: str, lane: Lane) -> None:
    """Nothing left on the lane's side: no veth, no NAT chain or rule, no reservation."""
    left = [f"veth {name}" for name in host_veths(lane.host)]
    left += [f"nat {line}" for line in nat_leftovers(lane.host)]
    left += [f"reservation {name}" for name in reservations(lane.data_dir, NETWORK)]
    if left:
        run.results.fail(metric, lane.label, f"left behind ({len(left)}): {_few(left)}")


def _few(items: list[str], limit: int = 5) -> str:
    more = f", ... {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more
