"""The resident agent inside a test's host namespace: started, restarted, and stopped (only the
process started here is ever signalled). Bound by the agent itself, or socket-activated:
`systemd-socket-activate` (Debian's systemd package; no running systemd needed) holds the socket
and execs the agent on the first connection, as systemd's cni-bridge-py-agent.socket does."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Protocol

AGENT_ENV = "CNI_BRIDGE_PY_AGENT"
# The front uses an agent at its default socket if the machine runs one: one-shot says no.
ONE_SHOT_ENV = {AGENT_ENV: "off"}
START_TIMEOUT = 20  # seconds; a loaded 2-core machine imports pyroute2 slowly
SOCKET_ACTIVATE = "systemd-socket-activate"


def socket_activation_available() -> bool:
    return shutil.which(SOCKET_ACTIVATE) is not None


class Host(Protocol):
    """Where the agent runs: a test's host Namespace (`ip netns exec`), or a runtime test's
    node (nsenter into its mount and network namespaces). Either execs the command."""

    def argv(self, *command: str) -> list[str]: ...


class Agent:
    """The host's argv execs the launcher, so the process started here is the agent itself."""

    def __init__(
        self,
        host: Host,
        launcher: Path,
        workdir: Path,
        socket: Path | None = None,
        *,
        activated: bool = False,
        extra_env: dict[str, str] | None = None,
        workers: int | None = None,
    ) -> None:
        self.activated = activated
        # Its worker processes (--workers); None: the agent's default, one per CPU.
        self.workers = workers
        # Added to the agent's environment (CNI_BRIDGE_PY_LOG, ...).
        self.extra_env = extra_env or {}
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
        if self.activated:
            return self._start_activated()
        argv = self.host.argv(str(self.launcher), "agent")
        with self.log.open("wb") as sink:
            workers = [] if self.workers is None else ["--workers", str(self.workers)]
            self.proc = subprocess.Popen(
                [*argv, "--socket", str(self.socket), *workers],
                stdout=sink,
                stderr=sink,
                env={**os.environ, **self.extra_env},
            )
        self._wait_for(b"cni-bridge-py agent listening")
        return self

    def _start_activated(self) -> Agent:
        """Only the socket: the agent itself starts with the first connection. The socket is
        made root-only here, as systemd's SocketMode=0600 does."""
        self.socket.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        argv = self.host.argv(SOCKET_ACTIVATE, "-l", str(self.socket))
        with self.log.open("wb") as sink:
            self.proc = subprocess.Popen(
                [*argv, str(self.launcher), "agent"],
                stdout=sink,
                stderr=sink,
                env={**os.environ, **self.extra_env},
            )
        self._wait_for(b"Listening on")
        os.chmod(self.socket, 0o600)
        return self

    def started(self) -> bool:
        """The agent process itself runs (for a socket-activated one: a call has come)."""
        return b"cni-bridge-py agent listening" in self.log.read_bytes()

    def wait_logged(self, text: bytes) -> None:
        """Until the agent's log has `text` (it must keep running meanwhile)."""
        self._wait_for(text)

    def _wait_for(self, text: bytes) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while text not in self.log.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"agent did not start: {self.log.read_text()}")
            time.sleep(0.02)

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
