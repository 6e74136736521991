"""Exclusive flocks on lock files: held for a with-block (released when the fd closes), or
taken within a deadline."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def exclusive(path: str, mode: int = 0o600, dir_mode: int = 0o700) -> Iterator[None]:
    """Blocks until the lock is ours; the directory is created (dir_mode) when missing."""
    os.makedirs(os.path.dirname(path) or ".", mode=dir_mode, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def flock_within(fd: int, timeout: float) -> bool:
    """Take an exclusive flock on `fd` within `timeout` seconds: True once held, False when
    the deadline passed first. Nothing polls or sleeps: an uncontended lock is taken at once
    (LOCK_NB); a contended one is waited for in flock(2) itself, by a helper thread, while the
    caller waits on an event with the deadline (flock(2) has no timeout, and a signal would
    interrupt only the main thread).

    `fd` must be the caller's own open(2) of the lock file: flock excludes open file
    descriptions, not threads, so threads sharing one would not exclude each other. The helper
    waits on a dup of it (the same description, so the lock it takes is the caller's) that it
    closes itself: a caller that gave up closes `fd`, and the lock a late helper takes is gone
    with the description's last reference, the helper's dup."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        pass
    helper_fd = os.dup(fd)
    taken = threading.Event()

    def wait() -> None:
        try:
            fcntl.flock(helper_fd, fcntl.LOCK_EX)
            taken.set()
        finally:
            os.close(helper_fd)

    threading.Thread(target=wait, name="flock-wait", daemon=True).start()
    return taken.wait(timeout)
