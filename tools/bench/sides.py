"""The three lanes of a run: the reference, ours one-shot and ours with the resident agent.

Each lane is a side of its own: a host namespace, a bridge, a temp dataDir and a pool of
container namespaces, with the same network config (only `type`, `bridge` and `dataDir` differ).
A lane runs its plugin like a runtime: `ip netns exec <host> <exe>`, the CNI_* variables and a
minimal PATH in a fresh environment, the config on stdin.

The agent follows the contract of issue 5 and nothing more: `<launcher> agent --socket PATH`
runs in the foreground, says "listening" on stderr once ready and stops on SIGTERM; a plugin
with CNI_BRIDGE_PY_AGENT=<that path> hands its requests to it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.bench.harness import (
    MINIMAL_PATH,
    PREFIX,
    BenchError,
    CallResult,
    NetnsPool,
    Running,
    Workspace,
    tool,
)

REFERENCE_DIR = Path("/usr/lib/cni")
NETWORK = f"{PREFIX}net"
SUBNET = "10.250.0.0/22"  # 1022 addresses: room for 250 attachments + 64 concurrent
CNI_VERSION = "1.0.0"  # the newest the Debian reference speaks
AGENT_ENV = "CNI_BRIDGE_PY_AGENT"
AGENT_START_TIMEOUT_S = 30.0
AGENT_STOP_TIMEOUT_S = 10.0


def netconf(plugin_type: str, bridge: str, data_dir: Path) -> dict[str, Any]:
    return {
        "cniVersion": CNI_VERSION,
        "name": NETWORK,
        "type": plugin_type,
        "bridge": bridge,
        "isGateway": True,
        "ipMasq": True,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": SUBNET}]], "dataDir": str(data_dir)},
    }


@dataclass
class Lane:
    """One plugin (in one mode) on one side: its own host namespace, bridge, data dir, pool."""

    label: str  # "reference", "one-shot", "agent"
    ws: Workspace
    host: str
    executable: Path
    cni_path: str
    data_dir: Path
    config: dict[str, Any]
    pool: NetnsPool
    extra_env: Mapping[str, str] = field(default_factory=dict)

    def env(self, command: str, container_id: str, netns: str, ifname: str) -> dict[str, str]:
        return {
            "PATH": MINIMAL_PATH,
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": netns,
            "CNI_IFNAME": ifname,
            "CNI_ARGS": "",
            "CNI_PATH": self.cni_path,
            **self.extra_env,
        }

    def argv(self) -> list[str]:
        return [tool("ip"), "netns", "exec", self.host, str(self.executable)]

    def stdin(self, prev_result: Mapping[str, Any] | None = None) -> bytes:
        conf = copy.deepcopy(self.config)
        if prev_result is not None:
            conf["prevResult"] = dict(prev_result)
        return json.dumps(conf).encode()

    def prepare(
        self,
        command: str,
        container_id: str = "",
        netns: str = "",
        stdin: bytes | None = None,
        ifname: str = "eth0",
    ) -> Running:
        body = self.stdin() if stdin is None else stdin
        return self.ws.prepare(self.argv(), self.env(command, container_id, netns, ifname), body)

    def call(
        self, command: str, container_id: str = "", netns: str = "", stdin: bytes | None = None
    ) -> CallResult:
        return self.ws.finished(self.prepare(command, container_id, netns, stdin).start())


def make_side(
    ws: Workspace,
    label: str,
    *,
    short: str,
    executable: Path,
    cni_path: str,
    pool_size: int,
    host: str | None = None,
) -> Lane:
    host = host or ws.host_namespace(short)
    data_dir = ws.tmp / short / "data"
    data_dir.mkdir(parents=True)
    plugin_type = "bridge" if label == "reference" else executable.name
    config = netconf(plugin_type, f"{PREFIX}br-{short}", data_dir)
    pool = ws.pool(short, pool_size)
    return Lane(label, ws, host, executable, cni_path, data_dir, config, pool)


def twin(lane: Lane, suffix: str, pool_size: int) -> Lane:
    """The same plugin in the same mode on a side of its own (host namespace, bridge, data dir,
    container pool and, for the agent lane, an agent of its own), so that the scale phase can
    time a lane at several attachment counts side by side."""
    short = lane.host.removeprefix(f"{lane.ws.tag}-") + suffix
    made = make_side(
        lane.ws,
        lane.label,
        short=short,
        executable=lane.executable,
        cni_path=lane.cni_path,
        pool_size=pool_size,
    )
    made.extra_env = dict(lane.extra_env)
    if lane.label == "agent":
        with_agent(made, lane.ws.tmp / short)
    return made


def with_agent(lane: Lane, scratch: Path) -> Agent:
    """An agent of the lane's own, started in its host namespace (stopped with the
    workspace), which the lane's calls use."""
    agent = Agent.for_lane(lane, scratch / "agent.sock", scratch / "agent.log")
    agent.start()
    lane.extra_env = {AGENT_ENV: str(agent.socket)}
    return agent


def agent_support(host: str, launcher: Path) -> tuple[bool, str]:
    """Whether this build has `cni-bridge-py agent --socket PATH` (asked inside `host`)."""
    proc = subprocess.run(
        [tool("ip"), "netns", "exec", host, str(launcher), "agent", "--help"],
        capture_output=True,
        text=True,
        env={"PATH": MINIMAL_PATH},
        timeout=60,
        check=False,
    )
    text = proc.stdout + proc.stderr
    if proc.returncode == 0 and "--socket" in text:
        return True, "cni-bridge-py agent --socket PATH"
    return False, "agent: not available (`cni-bridge-py agent --help` does not offer --socket)"


class Agent:
    """`cni-bridge-py agent --socket PATH`, started and stopped by its handle. `enter` is the
    command prefix that puts it where its callers are (`ip netns exec <host>`, or nsenter into
    a runtime's mount and network namespaces): it refuses callers from another netns."""

    def __init__(
        self,
        ws: Workspace,
        enter: list[str],
        launcher: str,
        socket: Path,
        log: Path,
    ) -> None:
        self.ws, self.enter, self.launcher = ws, enter, launcher
        self.socket, self.log = socket, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.maxrss_kb = 0

    @classmethod
    def for_lane(cls, lane: Lane, socket: Path, log: Path) -> Agent:
        enter = [tool("ip"), "netns", "exec", lane.host]
        return cls(lane.ws, enter, str(lane.executable), socket, log)

    def start(self) -> None:
        with self.log.open("wb") as sink:
            self.proc = subprocess.Popen(
                [*self.enter, self.launcher, "agent", "--socket", str(self.socket)],
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=sink,
                env={"PATH": MINIMAL_PATH},
            )
        self.ws.stoppers.append(self.stop)
        deadline = time.monotonic() + AGENT_START_TIMEOUT_S
        while b"listening" not in self.log.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"the agent did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.02)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def peak_rss_kb(self) -> int:
        """VmHWM of the running agent (its peak resident set so far)."""
        if self.proc is None or self.proc.returncode is not None:
            return self.maxrss_kb
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.maxrss_kb = max(self.maxrss_kb, int(line.split()[1]))
        return self.maxrss_kb

    def served_log(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> int:
        """SIGTERM to our own process, then SIGKILL if it does not go; returns its peak RSS
        (VmHWM read just before: wait4's ru_maxrss would include this process's own RSS)."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return self.maxrss_kb
        self.peak_rss_kb()
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        deadline, killed = time.monotonic() + AGENT_STOP_TIMEOUT_S, False
        while True:
            pid, status = os.waitpid(proc.pid, os.WNOHANG)
            if pid:
                break
            if not killed and time.monotonic() > deadline:
                proc.kill()
                killed = True
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)
        return self.maxrss_kb
