"""A resident agent inside a test's host namespace, stopped (only it) when the test ends."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.integration.netns import Namespace


class RunningAgent:
    def __init__(self, proc: subprocess.Popen[str], socket: Path, log: Path) -> None:
        self.proc = proc
        self.socket = socket
        self.log = log

    def served(self) -> list[str]:
        """The agent's per-request log lines."""
        return [line for line in self.log.read_text().splitlines() if "container=" in line]

    def env(self) -> dict[str, str]:
        return {"CNI_BRIDGE_PY_AGENT": str(self.socket)}


@contextmanager
def agent_in(host: Namespace, launcher: Path, workdir: Path) -> Iterator[RunningAgent]:
    socket, log = workdir / "agent.sock", workdir / "agent.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", host.name, str(launcher), "agent", "--socket", str(socket)],
            stdout=sink,
            stderr=sink,
            text=True,
        )
    try:
        deadline = time.monotonic() + 15
        while "listening" not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"agent did not start: {log.read_text()}")
            time.sleep(0.02)
        yield RunningAgent(proc, socket, log)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
