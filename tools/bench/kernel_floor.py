"""The kernel's floor under an ADD and a DEL: a veth pair created with its peer placed straight
into a container namespace (one RTM_NEWLINK carrying the peer's IFLA_NET_NS_FD, as the plugin
does) and deleted by its host end (RTM_DELLINK), each request timed from its send to the
kernel's ack. No plugin can do its veth in less.

The requests go through the project's own netlink layer (cni_bridge_py.kernel.netlink), from a
child Python process run with `ip netns exec` in a throwaway host namespace; the container
namespaces are a pool of the workspace's. The namespace and the pool are dropped as soon as the
measurement ends (or with the workspace, whatever happens): every veth goes with them.

Run as `python -m tools.bench.kernel_floor <netns path>...` it is that child: one untimed pair
into the first namespace, then one timed pair into each of the others, the seconds printed as
JSON ({"create": [...], "delete": [...]}).
"""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path
from typing import cast

from cni_bridge_py.install import launcher_interpreter
from tools.bench.harness import MINIMAL_PATH, PREFIX, CallResult, host_veths, tool
from tools.bench.results import Results
from tools.bench.scenarios import Plan, Run

LANE = "kernel"  # the label of its series in Results (and in the JSON)
CREATE, DELETE = "veth create", "veth delete"
# The launcher's interpreter with nothing to run, started directly as a runtime starts a
# plugin (the lanes' interpreter floor goes through `ip netns exec`, as their calls do).
DIRECT_START = "interpreter, started directly"
MIN_PAIRS = 20  # timed pairs at least (the plan's ADD/DEL pair count if larger)
PEER = "eth0"  # the container end's name, as a runtime asks for it
SOURCE = Path(__file__).resolve().parents[2]  # holds cni_bridge_py and tools


def pairs(plan: Plan) -> int:
    return max(plan.pairs, MIN_PAIRS)


def kernel_floor(run: Run) -> None:
    """The timed pairs, in a host namespace and container pool of their own, dropped after."""
    ws = run.lanes[0].ws
    n = pairs(run.plan)
    host = ws.host_namespace("knl")
    pool = ws.pool("knl", n + 1)  # the first: the untimed warm-up pair
    try:
        argv = [tool("ip"), "netns", "exec", host, sys.executable, "-m", __name__]
        env = {"PATH": MINIMAL_PATH, "PYTHONPATH": str(SOURCE)}
        result = ws.finished(ws.prepare([*argv, *pool.paths], env, b"").start())
        left = host_veths(host)
    finally:
        ws.drop_pool(pool)
        ws.drop_host(host)
    record(run.results, result, n)
    if left:
        run.results.fail(CREATE, LANE, f"veths left in the floor's namespace: {', '.join(left)}")
    direct_starts(run, n)


def direct_starts(run: Run, n: int) -> None:
    """n starts of ours' launcher's interpreter, `-c pass`, spawned by the benchmark itself."""
    ours = [lane for lane in run.lanes if lane.label != "reference"]
    if not ours:
        return
    argv = [*launcher_interpreter(ours[0].executable.read_text()), "-c", "pass"]
    ws = ours[0].ws
    for i in range(n + 1):
        result = ws.finished(ws.prepare(argv, {}, b"").start())
        if i:  # the first start warms the page cache: untimed
            run.results.record(DIRECT_START, LANE, result, result.code == 0, "direct start")


def record(results: Results, result: CallResult, n: int) -> None:
    """The child's seconds as two series; a child that failed is a problem of the run."""
    times = result.json() if result.code == 0 else {}
    timed = []
    for metric, key in ((CREATE, "create"), (DELETE, "delete")):
        series = results.get(metric, LANE)
        seconds = [float(x) for x in times.get(key, [])]
        series.calls += n
        series.seconds.extend(seconds)
        timed.append(len(seconds))
    if timed != [n, n]:
        results.fail(CREATE, LANE, f"{min(timed)} of {n} pairs timed: {result.describe()}")


# --- the child: inside the floor's host namespace -----------------------------------------------


class Stopwatch:
    """Stands in for a session's netlink socket (RtnlSocket uses send, recv and close): the
    last request's round trip, from just before its send to just after its last receive (the
    ack), without the encoding before or the parsing after."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sent = self.answered = 0.0

    def send(self, data: bytes) -> int:
        self.sent = time.perf_counter()
        return self.sock.send(data)

    def recv(self, size: int) -> bytes:
        data = self.sock.recv(size)
        self.answered = time.perf_counter()
        return data

    def close(self) -> None:
        self.sock.close()

    def seconds(self) -> float:
        return self.answered - self.sent


def measure(paths: list[str]) -> dict[str, list[float]]:
    from cni_bridge_py.kernel.netlink import host_session  # noqa: PLC0415 (the child's only)

    times: dict[str, list[float]] = {"create": [], "delete": []}
    with host_session() as host:
        watch = Stopwatch(host.sock._sock)
        host.sock._sock = cast(socket.socket, watch)  # duck-typed: send, recv, close
        for i, path in enumerate(paths):
            name = f"{PREFIX}v{i}"
            host.create_veth(name, PEER, path, 0, "")
            created = watch.seconds()
            link = host.link(name)
            if link is None:
                raise SystemExit(f"veth {name} vanished after its creation")
            host.delete_link(link.index, f"veth {name}")
            if i:  # the first pair warms up (module, caches): untimed
                times["create"].append(created)
                times["delete"].append(watch.seconds())
    return times


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1:])))
