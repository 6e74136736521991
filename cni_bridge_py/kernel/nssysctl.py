"""sysctls of another network namespace, written from a short-lived thread.

/proc/sys/net shows the namespace of the task that opens it, and setns(CLONE_NEWNET) moves
only the calling thread; so a thread that enters the container's namespace, writes and ends
leaves the rest of the process where it was (cheaper than forking a child).
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Sequence

from cni_bridge_py.errors import InvalidNetns, IOFailure

CLONE_NEWNET = 0x40000000


def write_in_netns(
    netns: str, settings: Sequence[tuple[str, str]], strict: Sequence[str] = ()
) -> None:
    """Write each (key, value), key a /proc/sys path like 'net/ipv6/conf/eth0/accept_dad'.

    A failure on a key listed in `strict` is an error; others are skipped (e.g. IPv6 sysctls
    on a kernel booted with ipv6.disable=1)."""
    failures: list[BaseException] = []
    worker = threading.Thread(
        target=_enter_and_write, args=(netns, settings, set(strict), failures), daemon=True
    )
    worker.start()
    worker.join()
    if failures:
        raise failures[0]


def _enter_and_write(
    netns: str, settings: Sequence[tuple[str, str]], strict: set[str], failures: list[BaseException]
) -> None:
    try:
        fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        failures.append(InvalidNetns(f"cannot open network namespace {netns!r}", str(exc)))
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            failures.append(
                InvalidNetns(f"cannot enter network namespace {netns!r}", os.strerror(err))
            )
            return
    finally:
        os.close(fd)
    for key, value in settings:
        try:
            with open(f"/proc/sys/{key}", "w") as f:
                f.write(value)
        except OSError as exc:
            if key in strict:
                failures.append(IOFailure(f"cannot set {key}={value} in {netns}", str(exc)))
                return
