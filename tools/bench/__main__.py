"""`python -m tools.bench` (`make bench`): the reference plugins and ours, interleaved on
identical configs in throwaway namespaces, plugin calls and whole `podman run` / `ctr run`
starts; writes a markdown table with issue 10's targets and the raw numbers as JSON. Needs
root. `--quick` is the small profile of the smoke test; `--profile add` profiles one ADD.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cni_bridge_py.install import EXECUTABLES, install
from tools.bench.cri import cri_pods
from tools.bench.harness import PREFIX, BenchError, Workspace, handle_signals, root_links
from tools.bench.kernel_floor import kernel_floor
from tools.bench.load import LOAD_LIMIT, quotable, wait_for_quiet
from tools.bench.profile import VERBS, run_profile
from tools.bench.report import (
    Table,
    floor_notes,
    machine,
    markdown_table,
    render_markdown,
    rows_json,
    summary,
    tally,
    versions,
    write_json,
)
from tools.bench.results import Results
from tools.bench.runtimes import LANES as RUNTIME_LANES
from tools.bench.runtimes import end_to_end
from tools.bench.scenarios import (
    Plan,
    Run,
    concurrent,
    peak_rss,
    scale,
    sequential,
    version_and_errors,
    warm_up,
)
from tools.bench.sides import (
    AGENT_ENV,
    REFERENCE_DIR,
    Agent,
    Lane,
    agent_support,
    make_side,
    with_agent,
)

QUICK = Plan(calls=3, concurrency=(4,), scale=(0, 5), pairs=2, rounds=1, runtime_runs=2, cri=False)
LOAD_WAIT_S = 300.0  # how long a full run waits for a quiet machine before starting anyway
MODES = {"oneshot": "one-shot", "one-shot": "one-shot", "agent": "agent"}
PHASES: list[tuple[str, Callable[[Run], None]]] = [
    ("warm-up", warm_up),
    ("VERSION and errors", version_and_errors),
    ("kernel floor: veth create + delete", kernel_floor),
    ("sequential ADD/CHECK/DEL", sequential),
    ("peak RSS", peak_rss),
    ("concurrent ADD/DEL", concurrent),
]
# Then the end-to-end lanes (tools/bench/runtimes.py), then, last, because it leaves its
# attachments to the cleanup:
SCALE_PHASE = ("attachments on the bridge", scale)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def _modes(text: str) -> tuple[str, ...]:
    try:
        return tuple(MODES[m.strip()] for m in text.split(",") if m.strip())
    except KeyError as exc:
        raise argparse.ArgumentTypeError(f"unknown mode {exc}: use oneshot,agent") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__)
    p.add_argument("--calls", type=int, help="sequential calls per verb (default 50)")
    p.add_argument("--concurrency", type=_ints, help="concurrent calls, e.g. 20,64")
    p.add_argument("--scale", type=_ints, help="attachments already on the bridge: 0,100,250")
    p.add_argument("--pairs", type=int, help="timed ADD/DEL pairs per scale level (default 20)")
    p.add_argument("--rounds", type=int, help="rounds per concurrency level (default 3)")
    p.add_argument(
        "--runtime-runs",
        type=int,
        help="timed podman/ctr runs per variant and side (default 40; 0 skips those lanes)",
    )
    p.add_argument(
        "--load-wait",
        type=float,
        help=f"seconds to wait for the 1-min load to fall to {LOAD_LIMIT:g} first "
        f"(default {LOAD_WAIT_S:g}; 0 with --quick)",
    )
    p.add_argument("--no-cri", action="store_true", help="skip the pods through containerd's CRI")
    p.add_argument("--modes", type=_modes, default=("one-shot", "agent"), help="oneshot,agent")
    p.add_argument("--quick", action="store_true", help="a few calls of each (the smoke test)")
    p.add_argument("--out-md", type=Path, help="default docs/benchmarks.md (none with --quick)")
    p.add_argument("--out-json", type=Path, help="default docs/benchmarks.json (none w/ --quick)")
    p.add_argument("--profile", choices=VERBS, help="profile one call of ours (cProfile)")
    p.add_argument("--profile-top", type=int, default=25, help="entries to print")
    p.add_argument("--profile-out", type=Path, help="keep the .prof file here")
    p.add_argument("--profile-mode", type=_modes, default=("one-shot",), help="oneshot or agent")
    p.add_argument(
        "--profile-attachments", type=int, default=0, help="attachments on the bridge first"
    )
    return p.parse_args(argv)


def make_plan(args: argparse.Namespace) -> Plan:
    base = QUICK if args.quick else Plan()
    return Plan(
        calls=args.calls if args.calls is not None else base.calls,
        concurrency=args.concurrency if args.concurrency is not None else base.concurrency,
        scale=args.scale if args.scale is not None else base.scale,
        pairs=args.pairs if args.pairs is not None else base.pairs,
        rounds=args.rounds if args.rounds is not None else base.rounds,
        runtime_runs=args.runtime_runs if args.runtime_runs is not None else base.runtime_runs,
        cri=base.cri and not args.no_cri,
    )


def load_wait(args: argparse.Namespace) -> float:
    if args.load_wait is not None:
        return max(0.0, float(args.load_wait))
    return 0.0 if args.quick else LOAD_WAIT_S


def progress_printer() -> Callable[[str], None]:
    started = time.monotonic()

    def say(text: str) -> None:
        print(f"[bench {time.monotonic() - started:6.1f}s] {text}", file=sys.stderr, flush=True)

    return say


def setup(ws: Workspace, plan: Plan, modes: tuple[str, ...], status: dict[str, str]) -> tuple[
    list[Lane], Agent | None, str
]:  # fmt: skip
    reference = REFERENCE_DIR / "bridge"
    if not all(os.access(REFERENCE_DIR / p, os.X_OK) for p in ("bridge", "host-local")):
        raise BenchError(f"the reference plugins are not in {REFERENCE_DIR}: run `make deps`")
    bin_dir = ws.tmp / "bin"
    install(bin_dir)
    launcher = bin_dir / EXECUTABLES[0]
    size = plan.pool_size()
    lanes = [
        make_side(
            ws,
            "reference",
            short="ref",
            executable=reference,
            cni_path=str(REFERENCE_DIR),
            pool_size=size,
        )
    ]
    status["reference"] = "ok"
    if "one-shot" in modes:
        lane = make_side(
            ws, "one-shot", short="one", executable=launcher, cni_path=str(bin_dir), pool_size=size
        )
        # A socket that does not exist: an agent on the default socket is never used.
        lane.extra_env = {AGENT_ENV: str(ws.tmp / "one" / "no-agent.sock")}
        lanes.append(lane)
        status["one-shot"] = "ok"
    agent, note = None, "not run (--modes)"
    if "agent" in modes:
        host = ws.host_namespace("agt")
        available, note = agent_support(host, launcher)
        if available:
            lane = make_side(
                ws,
                "agent",
                short="agt",
                executable=launcher,
                cni_path=str(bin_dir),
                pool_size=size,
                host=host,
            )
            agent = with_agent(lane, ws.tmp / "agt")
            lanes.append(lane)
            status["agent"] = "ok"
            note = f"started for the run ({note}, in the agent lane's host namespace)"
        else:
            status["agent"] = "agent: not available"
    return lanes, agent, note


def bench(plan: Plan, modes: tuple[str, ...], max_wait_s: float) -> dict[str, Any]:
    say = progress_printer()
    load_start, waited = wait_for_quiet(max_wait_s, say)
    links_before = root_links()
    started = time.monotonic()
    doc: dict[str, Any] = {
        "machine": machine(),
        "versions": versions(),
        "plan": asdict(plan),
        "load_wait_s": max_wait_s,
        "load": {
            "start": load_start,
            "waited_s": round(waited),
            "limit": LOAD_LIMIT,
            "quotable": quotable(load_start),
        },
    }
    results = Results()
    status = {"reference": "not run", "one-shot": "not run", "agent": "not run"}
    status |= {name: "not run" for name in RUNTIME_LANES}
    agent_info: dict[str, Any] = {"note": "not run (--modes)"}
    ws = Workspace()
    try:
        lanes, agent, agent_info["note"] = setup(ws, plan, modes, status)
        say(f"lanes: {', '.join(lane.label for lane in lanes)}; agent: {agent_info['note']}")
        run = Run(plan, lanes, results, say)
        for name, phase in PHASES:
            say(f"{name} ...")
            phase(run)
        if plan.runtime_runs <= 0:
            status |= {name: "not run (--runtime-runs 0)" for name in RUNTIME_LANES}
        elif status["agent"] != "ok":
            status |= {name: "not run (no agent)" for name in RUNTIME_LANES}
        else:
            end_to_end(ws, results, plan.runtime_runs, status, say)
        if plan.cri:
            doc["cri"] = cri_pods(say)
        name, phase = SCALE_PHASE
        say(f"{name} ...")
        phase(run)
        if agent is not None:
            if not agent.alive():
                results.problems.append(f"the agent exited early: {agent.served_log()[-2000:]}")
            results.agent_rss_kb = agent.stop()
    finally:
        ws.close()
    leftovers = [f"namespace {name}" for name in ws.owned_namespaces()]
    leftovers += [f"temp dir {ws.tmp}"] if ws.tmp.exists() else []
    # Ours would bear the prefix: every bridge made here is named after it, and a plugin run
    # outside its lane's host namespace would have made one in the root namespace.
    changed = sorted(set(links_before) ^ set(root_links()))
    leftovers += [f"root namespace link {link}" for link in changed if link.startswith(PREFIX)]
    others = [link for link in changed if not link.startswith(PREFIX)]
    doc.update(
        duration_s=time.monotonic() - started,
        lanes=status,
        agent=agent_info | {"rss_kb": results.agent_rss_kb},
        tag=ws.tag,
        leftovers=leftovers,
        root_links_changed_by_others=others,
    )
    doc["load"]["end"] = os.getloadavg()
    say(f"done in {doc['duration_s']:.0f} s")
    return doc | {"results": results}


def notes(doc: dict[str, Any], results: Results) -> list[str]:
    out: list[str] = []
    load = doc["load"]
    if not load["quotable"]:
        out.append(
            f"**Not quotable:** the 1-min load average was {load['start'][0]:.2f} at the start "
            f"(above {load['limit']:g}, after waiting {load['waited_s']} s): other work shared "
            f"this {doc['machine']['nproc']}-CPU machine. Run it again on a quiet machine."
        )
    if doc["lanes"]["agent"] == "agent: not available":
        out.append(f"**{doc['agent']['note']}**: the agent rows are skipped.")
    for name in RUNTIME_LANES:
        if doc["lanes"][name] != "ok":
            out.append(f"End-to-end lane {name}: {doc['lanes'][name]}.")
    if results.rss_method.startswith("os.wait4"):
        out.append(f"Peak RSS: {results.rss_method}.")
    out += results.info
    out += floor_notes(results)
    front, oneshot = (_peak(results, lane) for lane in ("agent", "one-shot"))
    if front and oneshot and front >= 0.8 * oneshot:
        out.append(
            "The agent lane's plugin processes peak as high as one-shot ones "
            f"({front / 1024:.1f} vs {oneshot / 1024:.1f} MB): requests may not reach the agent."
        )
    for problem in results.problems[:20]:
        out.append(f"Problem: {problem}")
    if len(results.problems) > 20:
        out.append(f"... {len(results.problems) - 20} more problems in the JSON file.")
    if others := doc["root_links_changed_by_others"]:
        out.append(
            "Root namespace links changed during the run by other processes on the machine "
            f"(none bears this benchmark's prefix `{PREFIX}`): {', '.join(others)}."
        )
    left = doc["leftovers"]
    out.append("Left behind after the run: " + ("; ".join(left) if left else "nothing."))
    return out


def _peak(results: Results, lane: str) -> int:
    samples = [
        kb for m in ("ADD", "CHECK", "DEL") if (s := results.find(m, lane)) for kb in s.rss_kb
    ]
    return max(samples, default=0)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("the benchmark needs root (network namespaces)", file=sys.stderr)
        return 2
    handle_signals()  # unwinds through every finally: nothing is left behind
    try:
        if args.profile:
            mode = args.profile_mode[0] if args.profile_mode else "one-shot"
            return run_profile(
                args.profile,
                args.profile_top,
                args.profile_out,
                mode=mode,
                attachments=args.profile_attachments,
            )
        doc = bench(make_plan(args), args.modes, load_wait(args))
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("benchmark interrupted: everything it made is removed", file=sys.stderr)
        return 130
    results: Results = doc.pop("results")
    rows = Table(results, make_plan(args), doc["lanes"]).rows()
    table, run_notes = markdown_table(rows), notes(doc, results)
    doc["targets"] = tally(rows)
    out_md = args.out_md or (None if args.quick else Path("docs/benchmarks.md"))
    out_json = args.out_json or (None if args.quick else Path("docs/benchmarks.json"))
    print(summary(doc) + "\n\n" + table + "\n" + "\n".join(f"- {n}" for n in run_notes))
    if out_md is not None:
        out_md.parent.mkdir(parents=True, exist_ok=True)
        out_md.write_text(render_markdown(doc, table, run_notes))
    if out_json is not None:
        write_json(out_json, doc | {"rows": rows_json(rows)} | results.to_json())
    return 1 if doc["leftovers"] else 0


if __name__ == "__main__":
    sys.exit(main())
