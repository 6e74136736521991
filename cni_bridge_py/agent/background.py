"""The agent's Background (ports.Background): slow work a request leaves behind, done on a
thread of its own after the answer.

Today that is a DEL's veth deletion: the kernel deletes a link only after RCU grace periods
(10-50 ms here), long after the attachment is down, released and unfirewalled. A later ADD of
the same attachment (container ID, ifname) settles the pending work first, so it never finds
the old interface. A failure can no longer reach the runtime: it goes to the agent's log, and
what it leaves (a veth owned by no attachment) is what GC removes.
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable

Key = tuple[str, str]


class BackgroundWork:
    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._pending: dict[Key, list[threading.Thread]] = {}

    def later(self, key: Key, work: Callable[[], object]) -> None:
        worker = threading.Thread(target=self._run, args=(key, work), daemon=True)
        with self._guard:
            self._pending.setdefault(key, []).append(worker)
        worker.start()

    def settle(self, key: Key) -> None:
        with self._guard:
            workers = list(self._pending.get(key, ()))
        for worker in workers:
            worker.join()

    def drain(self) -> None:
        """Wait for everything pending (the agent's shutdown)."""
        with self._guard:
            keys = list(self._pending)
        for key in keys:
            self.settle(key)

    def _run(self, key: Key, work: Callable[[], object]) -> None:
        try:
            work()
        except Exception:
            sys.stderr.write(
                f"background work of {key[0]}/{key[1]} failed:\n{traceback.format_exc()}"
            )
            sys.stderr.flush()
        finally:
            with self._guard:
                workers = self._pending.get(key, [])
                current = threading.current_thread()
                if current in workers:
                    workers.remove(current)
                if not workers:
                    self._pending.pop(key, None)
