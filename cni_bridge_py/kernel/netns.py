"""Checks on CNI_NETNS before anything is created in it (standard library only)."""

from __future__ import annotations

import fcntl
import os

from cni_bridge_py.errors import InvalidNetns

# ioctl(fd, NS_GET_NSTYPE) on a namespace file returns its CLONE_NEW* flag.
NS_GET_NSTYPE = 0xB703
CLONE_NEWNET = 0x40000000


def check_netns(path: str, own_netns: str = "/proc/self/ns/net") -> None:
    """Refuse a path that is missing, not a network namespace, or our own namespace."""
    try:
        target = os.stat(path)
    except FileNotFoundError:
        raise InvalidNetns(
            f"network namespace {path!r} does not exist", "create the namespace before ADD"
        ) from None
    except OSError as exc:
        raise InvalidNetns(f"cannot open network namespace {path!r}", str(exc)) from exc
    if not _is_namespace_file(path):
        raise InvalidNetns(
            f"{path!r} is not a network namespace",
            "CNI_NETNS must name a bind-mounted netns (/var/run/netns/NAME) or /proc/PID/ns/net",
        )
    mine = os.stat(own_netns)
    if (target.st_dev, target.st_ino) == (mine.st_dev, mine.st_ino):
        raise InvalidNetns(
            f"{path!r} is the plugin's own network namespace",
            "refusing to move the host's side into itself; pass the container's namespace",
        )


def _is_namespace_file(path: str) -> bool:
    """True for a network namespace: the NS_GET_NSTYPE ioctl answers only on nsfs files."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return fcntl.ioctl(fd, NS_GET_NSTYPE) == CLONE_NEWNET
    except OSError:
        return False  # ENOTTY: a regular file, directory or another filesystem
    finally:
        os.close(fd)


def netns_exists(path: str) -> bool:
    return bool(path) and os.path.exists(path) and _is_namespace_file(path)
