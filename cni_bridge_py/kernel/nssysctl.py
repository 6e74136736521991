"""sysctls of another network namespace, written by a thread inside it.

/proc/sys/net shows the namespace of the task that opens it, and setns(CLONE_NEWNET) moves
only the calling thread (nsenter.in_netns): cheaper than forking a child, and the rest of the
process stays where it was.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from cni_bridge_py.errors import InvalidNetns, IOFailure
from cni_bridge_py.kernel.nsenter import in_netns


def write_in_netns(
    netns: str, settings: Sequence[tuple[str, str]], strict: Sequence[str] = ()
) -> None:
    """Write each (key, value), key a /proc/sys path like 'net/ipv6/conf/eth0/accept_dad'.

    A failure on a key listed in `strict` is an error; others are skipped (e.g. IPv6 sysctls
    on a kernel booted with ipv6.disable=1)."""
    try:
        fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise InvalidNetns(f"cannot open network namespace {netns!r}", str(exc)) from exc
    try:
        in_netns(fd, lambda: _write(netns, settings, set(strict)))
    except OSError as exc:  # setns refused
        raise InvalidNetns(f"cannot enter network namespace {netns!r}", exc.strerror or "") from exc
    finally:
        os.close(fd)


def _write(netns: str, settings: Sequence[tuple[str, str]], strict: set[str]) -> None:
    for key, value in settings:
        try:
            with open(f"/proc/sys/{key}", "w") as f:
                f.write(value)
        except OSError as exc:
            if key in strict:
                raise IOFailure(f"cannot set {key}={value} in {netns}", str(exc)) from exc
