"""The agent's worker processes, forked by a supervisor that serves nothing itself.

One process serves at most one CPU's worth of Python (the interpreter lock): a request is
~10 ms of Python, and a burst of 20 ADDs would queue behind one lock while the other cores
run only the fronts. So the first process imports everything, binds (or is passed) the
socket, and forks workers that each accept on it; the kernel hands each connection to one.
The supervisor starts no thread, so forking a replacement for a worker that died (a crash,
an OOM kill) is as safe as the first forks, and the new worker is as warm as they were.

Workers end with the supervisor: on its SIGTERM (passed on by `stop`) and, should it die
without passing one on, by the kernel's parent-death signal.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable

MAX_DEFAULT = 4
_PR_SET_PDEATHSIG = 1
_WAIT_STEP_S = 0.02
# A worker that dies this soon after its start is replaced only after a pause: a worker that
# cannot run at all must not turn the supervisor into a fork loop.
_SHORT_LIFE_S = 1.0
_PAUSE_S = 0.5
HELD_WHILE_FORKING = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}

Log = Callable[[str], None]


def default_count() -> int:
    """One per CPU this process may run on, at most MAX_DEFAULT (and at least 1)."""
    return max(1, min(MAX_DEFAULT, len(os.sched_getaffinity(0))))


class Workers:
    def __init__(self, serve: Callable[[], None], log: Log) -> None:
        """`serve()` is a worker's life: it returns when the worker should end."""
        self._serve = serve
        self._log = log
        self._parent = os.getpid()
        self.started: dict[int, float] = {}  # pid -> monotonic start

    def start(self, count: int) -> None:
        for _ in range(count):
            self._fork()

    def replace_ended(self) -> None:
        """Reap the workers that ended and start one in place of each."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            began = self.started.pop(pid, None)
            if began is None:
                continue
            self._log(f"agent worker {pid} ended ({_how(status)}); starting another")
            if time.monotonic() - began < _SHORT_LIFE_S:
                time.sleep(_PAUSE_S)
            self._fork()

    def stop(self, timeout: float) -> None:
        """SIGTERM to every worker; reap them, killing one still running after `timeout`."""
        for pid in self.started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.started:
            for pid in list(self.started):
                with contextlib.suppress(ChildProcessError):
                    if os.waitpid(pid, os.WNOHANG)[0] == 0:
                        continue
                del self.started[pid]
            if self.started and time.monotonic() > deadline:
                for pid in self.started:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                deadline = float("inf")
            elif self.started:
                time.sleep(_WAIT_STEP_S)

    def _fork(self) -> None:
        # The stop signals wait while forking: os.fork runs Python's at-fork callbacks
        # (logging registers some), and an exception a signal handler raises inside one is
        # printed and dropped, so a SIGTERM arriving then was lost and the agent never
        # stopped. Held, it is delivered after, and the new worker is already counted.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, HELD_WHILE_FORKING)
        try:
            pid = os.fork()
            if pid == 0:
                _worker_main(self._parent, self._serve, mask)  # never returns
            self.started[pid] = time.monotonic()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _worker_main(parent: int, serve: Callable[[], None], mask: set[int | signal.Signals]) -> None:
    code = 0
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the supervisor's, not a worker's
        _die_with(parent)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        serve()
    # Whatever happens, a worker ends here: returning would run the supervisor's code.
    except BaseException:
        sys.stderr.write(f"an agent worker failed:\n{traceback.format_exc()}")
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os._exit(code)


def _die_with(parent: int) -> None:
    """SIGTERM when the supervisor dies (a SIGKILL leaves no one to pass the signal on)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the prctl
        os.kill(os.getpid(), signal.SIGTERM)


def _how(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit {os.waitstatus_to_exitcode(status)}"
