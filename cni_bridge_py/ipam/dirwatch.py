"""A resident process's copy of host-local data dirs, kept current by inotify.

An ADD asks whether its attachment already holds an address, and a DEL which addresses it
holds: host-local answers by reading every reservation file of the network (the reference
does the same), 2.5 ms with 250 attachments here, growing with each one. The agent serves many
requests, so it keeps each file's content and re-reads only the files the kernel says changed.

Why this stays exact: every change to a directory entry or a file's content made through the
directory (create, link, rename, unlink, write, truncate) queues an inotify event before the
changing call returns, so once a caller holds the store's flock, every change of every other
writer (they all hold it while writing, the reference included) is in the queue, and draining
the queue before answering gives the directory as it is. What inotify cannot see makes the
caller fall back to reading the directory: a filesystem where changes can come from another
machine (only local disk filesystems and tmpfs are watched), a lost event queue
(IN_Q_OVERFLOW), a directory replaced or moved, or no inotify at all. A file changed through a
hard link from outside the directory is not seen; host-local's files have no such links.

One inotify instance per process, made on first use: a forked worker makes its own (a shared
instance would hand each event to one process only).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection

from cni_bridge_py.kernel import inotify
from cni_bridge_py.kernel.inotify import (
    IN_ATTRIB,
    IN_CLOSE_WRITE,
    IN_CREATE,
    IN_DELETE,
    IN_DELETE_SELF,
    IN_DONT_FOLLOW,
    IN_MODIFY,
    IN_MOVE_SELF,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_ONLYDIR,
    IN_Q_OVERFLOW,
)

WATCHED_EVENTS = (
    IN_MODIFY
    | IN_ATTRIB
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
    | IN_DONT_FOLLOW
)

# What a directory's file holds, as the store reads it; None: nothing to keep.
Reader = Callable[[str, str], "str | None"]
Identity = tuple[int, int]


class _Directory:
    def __init__(self, identity: Identity, wd: int) -> None:
        self.identity = identity
        self.wd = wd
        self.files: dict[str, str] = {}
        # content -> the names holding it: a lookup by owner reads no other entry.
        self.holders: dict[str, set[str]] = {}
        self.dirty: set[str] = set()
        self.lost = False

    def put(self, name: str, content: str | None) -> None:
        old = self.files.pop(name, None)
        if old is not None:
            names = self.holders[old]
            names.discard(name)
            if not names:
                del self.holders[old]
        if content is not None:
            self.files[name] = content
            self.holders.setdefault(content, set()).add(name)


class WatchedDirs:
    """name -> content of the files of each directory asked for, per process."""

    def __init__(self, read: Reader) -> None:
        self._read = read
        self._guard = threading.Lock()
        self._inotify = inotify.Inotify()
        self._instance = 0
        self._by_wd: dict[int, _Directory] = {}
        self._by_identity: dict[Identity, _Directory] = {}

    def files(self, directory: str) -> dict[str, str] | None:
        """The directory's files (name -> what `read` returned) as they are now; None when
        it cannot be watched here (the caller reads the directory itself)."""
        with self._guard:
            known = self._current(directory)
            return None if known is None else dict(known.files)

    def holding(self, directory: str, contents: Collection[str]) -> dict[str, list[str]] | None:
        """The names of the files holding each of `contents` (sorted; a content no file
        holds is left out), as files() would find them, without looking at any other."""
        with self._guard:
            known = self._current(directory)
            if known is None:
                return None
            found = {c: sorted(known.holders[c]) for c in contents if c in known.holders}
            return found

    def _current(self, directory: str) -> _Directory | None:
        if not self._ready():
            return None
        self._drain()
        try:
            identity = _identity(directory)
        except OSError:
            return None
        known = self._by_identity.get(identity)
        if known is None or known.lost:
            return self._watch(directory, identity)
        for name in sorted(known.dirty):
            self._refresh(known, directory, name)
            known.dirty.discard(name)
        return known

    def _ready(self) -> bool:
        if not self._inotify.ready():
            return False
        if self._instance != self._inotify.instance:  # first use, or a forked child
            self._instance, self._by_wd, self._by_identity = self._inotify.instance, {}, {}
        return True

    def _watch(self, directory: str, identity: Identity) -> _Directory | None:
        if not inotify.local(directory):
            return None
        # The watch first, then the read: a change during the read is an event for later.
        wd = self._inotify.watch(directory, WATCHED_EVENTS)
        if wd < 0:
            return None
        try:
            if _identity(directory) != identity:
                return None  # replaced between the two looks; the next call starts over
            names = os.listdir(directory)
        except OSError:
            return None
        known = _Directory(identity, wd)
        for name in names:
            self._refresh(known, directory, name)
        old = self._by_wd.get(wd)
        if old is not None:
            self._by_identity.pop(old.identity, None)
        self._by_wd[wd] = self._by_identity[identity] = known
        return known

    def _refresh(self, known: _Directory, directory: str, name: str) -> None:
        known.put(name, self._read(directory, name))

    def _drain(self) -> None:
        for wd, mask, name in self._inotify.events():
            self._note(wd, mask, name)

    def _note(self, wd: int, mask: int, name: str) -> None:
        if mask & IN_Q_OVERFLOW:
            for each in self._by_wd.values():
                each.lost = True
            return
        known = self._by_wd.get(wd)
        if known is None:
            return
        if mask & inotify.LOST:
            known.lost = True
        elif name:
            known.dirty.add(name)


def _identity(directory: str) -> Identity:
    found = os.stat(directory)
    return found.st_dev, found.st_ino
