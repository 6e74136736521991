"""The resident agent inside a test's host namespace: started, restarted, and stopped (only the
process started here is ever signalled)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

from tests.support.netns import Namespace

AGENT_ENV = "CNI_BRIDGE_PY_AGENT"
# The front uses an agent at its default socket if the machine runs one: one-shot says no.
ONE_SHOT_ENV = {AGENT_ENV: "off"}
START_TIMEOUT = 20  # seconds; a loaded 2-core machine imports pyroute2 slowly


class Agent:
    """`ip netns exec` execs the launcher, so the process started here is the agent itself."""

    def __init__(
        self, host: Namespace, launcher: Path, workdir: Path, socket: Path | None = None
    ) -> None:
        self.host = host
        self.launcher = launcher
        self.workdir = workdir
        # By default in a directory the agent creates itself (0700), as it would under /run.
        self.socket = socket if socket is not None else workdir / "run" / "agent.sock"
        self.starts = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.workdir / f"agent-{self.starts}.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the agent was never started"
        return self.proc.pid

    def env(self) -> dict[str, str]:
        return {AGENT_ENV: str(self.socket)}

    def start(self) -> Agent:
        assert not self.alive(), "the agent is already running"
        self.starts += 1
        argv = ["ip", "netns", "exec", self.host.name, str(self.launcher), "agent"]
        with self.log.open("wb") as sink:
            self.proc = subprocess.Popen(
                [*argv, "--socket", str(self.socket)], stdout=sink, stderr=sink
            )
        deadline = time.monotonic() + START_TIMEOUT
        while b"listening" not in self.log.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"agent did not start: {self.log.read_text()}")
            time.sleep(0.02)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout: float = 10) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def served(self) -> list[str]:
        """The per-request log lines of every run of the agent so far."""
        lines: list[str] = []
        for n in range(1, self.starts + 1):
            path = self.workdir / f"agent-{n}.log"
            lines += [ln for ln in path.read_text().splitlines() if "container=" in ln]
        return lines

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Agent:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
