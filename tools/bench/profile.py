"""`--profile add|check|del|version|error`: one call of ours under cProfile and then under
`-X importtime`, inside a throwaway host namespace, with the top entries printed. What bounds
the numbers is read from here, not guessed. One-shot by default; with `--profile-mode agent`
an agent runs in that namespace and the profile is the front's (the process a runtime waits
on), followed by the agent's own log lines."""

from __future__ import annotations

import io
import os
import pstats
import shutil
import sys
from pathlib import Path

from cni_bridge_py.install import EXECUTABLES, install
from tools.bench.harness import PREFIX, BenchError, CallResult, Workspace, tool
from tools.bench.scenarios import MALFORMED, VERSION_STDIN, populate
from tools.bench.sides import AGENT_ENV, Agent, Lane, agent_support, make_side

VERBS = ("add", "check", "del", "version", "error")


def run_profile(
    verb: str, top: int, keep: Path | None, *, mode: str = "one-shot", attachments: int = 0
) -> int:
    with Workspace() as ws:
        bin_dir = ws.tmp / "bin"
        install(bin_dir)
        launcher = bin_dir / EXECUTABLES[0]
        lane = make_side(
            ws,
            "one-shot",
            short="prof",
            executable=launcher,
            cni_path=str(bin_dir),
            pool_size=attachments + 1,
        )
        lane.extra_env = {AGENT_ENV: str(ws.tmp / "no-agent.sock")}
        agent = None
        if mode == "agent":
            available, note = agent_support(lane.host, launcher)
            if not available:
                raise BenchError(note)
            agent = Agent.for_lane(lane, ws.tmp / "agent.sock", ws.tmp / "agent.log")
            agent.start()
            lane.extra_env = {AGENT_ENV: str(agent.socket)}
        container, netns = f"{PREFIX}-profile", lane.pool.paths[attachments]
        for command in ("ADD", "DEL"):  # warm-up, as in the benchmark: the bridge exists
            _ok(lane.call(command, container, netns))
        for result in populate(lane, 0, attachments, len(os.sched_getaffinity(0))):
            _ok(result)
        plain = _one(lane, verb, [], container, netns)
        prof = ws.tmp / "plugin.prof"
        profiled = _one(lane, verb, ["-m", "cProfile", "-o", str(prof)], container, netns)
        imports = _one(lane, verb, ["-X", "importtime"], container, netns)
        print(
            f"# one {verb.upper()} of cni-bridge-py, {mode}, in a throwaway host namespace, "
            f"{attachments} attachments on the bridge"
        )
        print(f"plain: {plain.seconds * 1000:.1f} ms wall (peak RSS: see the benchmark's table)")
        print(
            f"under cProfile: {profiled.seconds * 1000:.1f} ms wall (profiling overhead included)"
        )
        print()
        print(_stats(prof, "cumulative", top))
        print(_stats(prof, "tottime", top))
        print(importtime_summary(imports.stderr, top))
        if agent is not None:
            print("## the agent's log (its own time per request)")
            print(agent.served_log().strip())
        if keep is not None:
            keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(prof, keep)
            print(f"profile kept in {keep} (python -m pstats {keep})")
    return 0


def _one(lane: Lane, verb: str, python_args: list[str], container: str, netns: str) -> CallResult:
    """The verb once (after an untimed ADD for CHECK/DEL, and a DEL after ADD/CHECK)."""
    prev = None
    if verb in ("check", "del"):
        prev = _ok(lane.call("ADD", container, netns)).json()
    argv = [tool("ip"), "netns", "exec", lane.host, sys.executable, "-I", *python_args]
    argv.append(str(lane.executable))
    if verb == "version":
        env, stdin = lane.env("VERSION", "", "", "eth0"), VERSION_STDIN
    elif verb == "error":
        env, stdin = lane.env("ADD", container, netns, "eth0"), MALFORMED
    else:
        env = lane.env(verb.upper(), container, netns, "eth0")
        stdin = lane.stdin(prev if verb == "check" else None)
    result = lane.ws.finished(lane.ws.prepare(argv, env, stdin).start())
    if verb != "error":
        _ok(result)
    if verb in ("add", "check"):
        _ok(lane.call("DEL", container, netns))
    return result


def _ok(result: CallResult) -> CallResult:
    if result.code != 0:
        raise BenchError(f"the profiled plugin failed: {result.describe()}\n{result.stderr}")
    return result


def _stats(path: Path, key: str, top: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.strip_dirs().sort_stats(key).print_stats(top)
    return f"## cProfile, top {top} by {key}\n" + out.getvalue().strip() + "\n"


def importtime_summary(stderr: str, top: int) -> str:
    """`-X importtime` lines -> the slowest imports (cumulative) and the self time per top-level
    package: how much of a run is spent importing, and in what."""
    rows: list[tuple[int, int, str]] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        parts = line.split(":", 1)[1].split("|")
        rows.append((int(parts[0]), int(parts[1]), parts[2].rstrip()))
    if not rows:
        return "## -X importtime: no output\n"
    by_package: dict[str, int] = {}
    for self_us, _cum, name in rows:
        package = name.strip().split(".")[0]
        by_package[package] = by_package.get(package, 0) + self_us
    total = sum(self_us for self_us, _, _ in rows)
    lines = [f"## -X importtime: {len(rows)} modules, {total / 1000:.1f} ms importing (self)"]
    lines.append("self time by top-level package:")
    for package, us in sorted(by_package.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {us / 1000:8.1f} ms  {package}")
    lines.append("slowest imports (cumulative):")
    for _self, cum, name in sorted(rows, key=lambda r: -r[1])[:top]:
        lines.append(f"  {cum / 1000:8.1f} ms  {name.strip()}")
    return "\n".join(lines) + "\n"
