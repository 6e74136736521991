"""One inotify instance per process, read without blocking (ctypes: a resident process's only).

What a resident process keeps about the filesystem (ipam.dirwatch's copy of the data dirs,
lookups' executables on PATH) stays exact because every change to a directory entry, or to
an attribute or the content of a file made through its directory, queues an event before the
changing call returns: a reader that drains the queue first sees every change made so far.
A forked child makes its own instance (a shared one would hand each event to one process).
"""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Iterator

IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_UNMOUNT = 0x2000
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
# The watch no longer describes the directory at its path.
LOST = IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT | IN_IGNORED

# statfs f_type of the filesystems whose changes all happen in this kernel: elsewhere (NFS, a
# FUSE mount) a change made by another machine or process queues no event.
LOCAL_FILESYSTEMS = frozenset(
    {
        0xEF53,  # ext2/3/4
        0x58465342,  # xfs
        0x9123683E,  # btrfs
        0x01021994,  # tmpfs
    }
)

_EVENT = struct.Struct("=iIII")
_STATFS_BYTES = 120  # struct statfs on 64-bit Linux; f_type is its first field


class Inotify:
    """The process's instance, made on first use and again in a forked child. Not locked:
    its owner holds its own lock around every call."""

    def __init__(self) -> None:
        self._pid = -1
        self._fd = -1
        # Counts the instances made: an owner's watch descriptors are only those of its own.
        self.instance = 0

    def ready(self) -> bool:
        """Whether there is an instance for this process (made now if there was none)."""
        if self._pid != os.getpid():  # first use, or a forked child
            if self._fd >= 0:
                os.close(self._fd)  # the parent's instance, copied by fork
            self._pid = os.getpid()
            self._fd = libc_call("inotify_init1", os.O_NONBLOCK | os.O_CLOEXEC)
            self.instance += 1
        return self._fd >= 0

    def watch(self, path: str, mask: int) -> int:
        """The watch descriptor of `path` (the same for every path of one inode), -1 when it
        cannot be watched."""
        return libc_call("inotify_add_watch", self._fd, os.fsencode(path), mask)

    def events(self) -> Iterator[tuple[int, int, str]]:
        """(watch descriptor, mask, name) of every event queued until now."""
        while True:
            try:
                data = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                return
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                raw = data[offset + _EVENT.size : offset + _EVENT.size + length]
                offset += _EVENT.size + length
                yield wd, mask, os.fsdecode(raw.rstrip(b"\0"))


def local(path: str) -> bool:
    """Whether `path` is on a filesystem whose every change queues its event here."""
    return filesystem(path) in LOCAL_FILESYSTEMS


def filesystem(path: str) -> int:
    """statfs's f_type of `path`, -1 when it cannot be asked."""
    buffer = ctypes.create_string_buffer(_STATFS_BYTES)
    if libc_call("statfs", os.fsencode(path), buffer) != 0:
        return -1
    return int(struct.unpack_from("=q", buffer.raw)[0]) & 0xFFFFFFFF


_LIBC: list[ctypes.CDLL] = []


def _libc() -> ctypes.CDLL:
    if not _LIBC:
        _LIBC.append(ctypes.CDLL(None, use_errno=True))
    return _LIBC[0]


def libc_call(name: str, *args: object) -> int:
    """A libc call's result, -1 when it fails or does not exist."""
    try:
        result: int = getattr(_libc(), name)(*args)
    except (AttributeError, OSError):
        return -1
    return result
