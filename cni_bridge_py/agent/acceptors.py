"""Threads that each wait in accept() on the listening socket and serve what they accepted.

A request's path starts no thread and hands nothing between threads: the kernel wakes one
waiting thread, which serves the connection and goes back to accept(). Starting a thread costs
0.1-0.3 ms (ThreadingMixIn paid it on every request), so a spawner thread keeps SPARE threads
waiting, off every request's path; a burst of 64 grows the pool to 64, and threads beyond
MAX_IDLE end once the burst is served.
"""

from __future__ import annotations

import errno
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable

SPARE = 2
MAX_IDLE = 16
# accept() failing for want of file descriptors or memory: the connection waits in the queue.
_TRANSIENT = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_TRANSIENT_PAUSE_S = 0.05

Serve = Callable[[socket.socket, float], None]


class Acceptors:
    def __init__(self, listener: socket.socket, serve: Serve) -> None:
        """`serve(connection, monotonic time of its accept)` answers one connection; the
        connection is closed after it returns."""
        self._listener = listener
        self._serve = serve
        self._state = threading.Condition()
        self.waiting = 0  # threads in accept(), or started to be
        self.busy = 0  # threads serving a connection

    def start(self) -> None:
        threading.Thread(target=self._spawner, name="agent-spawner", daemon=True).start()

    def wait_idle(self, timeout: float) -> bool:
        """True once no connection is being served (False: `timeout` passed first)."""
        with self._state:
            return self._state.wait_for(lambda: self.busy == 0, timeout)

    def _spawner(self) -> None:
        while True:
            with self._state:
                self._state.wait_for(lambda: self.waiting < SPARE)
                self.waiting += 1
            threading.Thread(target=self._accept_loop, name="agent-acceptor", daemon=True).start()

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError as exc:
                if exc.errno in _TRANSIENT:
                    time.sleep(_TRANSIENT_PAUSE_S)
                    continue
                with self._state:  # the listener was closed: the agent is stopping
                    self.waiting -= 1
                return
            accepted = time.monotonic()
            with self._state:
                self.waiting -= 1
                self.busy += 1
                if self.waiting < SPARE:
                    self._state.notify_all()
            try:
                self._serve(conn, accepted)
            except Exception:  # one request's bug must not end the thread's successors
                sys.stderr.write(f"the agent failed a request:\n{traceback.format_exc()}")
                sys.stderr.flush()
            finally:
                conn.close()
            with self._state:
                self.busy -= 1
                if self.busy == 0:
                    self._state.notify_all()  # wait_idle's; the spawner's is above
                if self.waiting >= MAX_IDLE:
                    return
                self.waiting += 1
