"""An exclusive flock on a lock file, held for a with-block (released when the fd closes)."""

from __future__ import annotations

import contextlib
import fcntl
import os
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
