"""A resident process's answers of where the host's tools are, kept until inotify reports a
change in a directory an answer was read from (ctypes: the agent's only).

The masquerade backend is picked from the tools on PATH on every request (firewall.backend):
~10 stats and readlinks, ~0.1 ms of an agent's CHECK with its code cold between requests. The
agent serves request after request with the same PATH, so it keeps each answer.

Why a kept answer stays exact: a lookup's answer follows from the entries of the directories
its path resolutions read (lookups.resolution_dirs: the directory of each component, through
every symlink) and the attributes of the entries found there (a tool's mode). Each of those
directories is watched before the answer is looked up, and any event from any of them (an
entry made, removed or renamed, an attribute changed, the directory itself moved or removed)
drops every kept answer, the queue being drained before a request's first answer
(kernel.inotify; for_request). An answer whose resolution read a directory that was not
watched before it began is not kept.
Nothing is kept where inotify cannot see every change: a relative PATH entry, a directory on a
filesystem that is not local, a chain of more than 40 links, a resolution that fails other
than with "no such entry", the process's own PATH. A filesystem mounted over a watched
directory queues no event: a tool that appears that way is seen once the agent restarts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from cni_bridge_py.kernel import inotify
from cni_bridge_py.lookups import resolution_dirs, which_dirs
from cni_bridge_py.which import link_target, which

# IN_ATTRIB on a directory's watch also reports a change of mode of an entry in it.
_DIRECTORY_EVENTS = (
    inotify.IN_CREATE
    | inotify.IN_DELETE
    | inotify.IN_MOVED_FROM
    | inotify.IN_MOVED_TO
    | inotify.IN_ATTRIB
    | inotify.IN_DELETE_SELF
    | inotify.IN_MOVE_SELF
    | inotify.IN_ONLYDIR
    | inotify.IN_DONT_FOLLOW
)


class KeptLookups:
    """Answers kept until a directory they were read from changes (the agent's; one per
    process, shared by its threads)."""

    def __init__(self) -> None:
        self._inotify = inotify.Inotify()
        self._instance = 0
        self._guard = threading.Lock()
        self._kept: dict[tuple[str, str, str], str | None] = {}
        self._watched: dict[str, int] = {}  # directory -> watch descriptor

    def which(self, name: str, path: str | None, *, drain: bool = True) -> str | None:
        if path is None:  # the process's PATH, which may change under it: never kept
            return which(name)
        return self._answer(
            ("which", name, path),
            lambda: which(name, path=path),
            lambda: which_dirs(name, path),
            drain,
        )

    def link_target(self, path: str, *, drain: bool = True) -> str:
        found = self._answer(
            ("link", path, ""), lambda: link_target(path), lambda: resolution_dirs(path), drain
        )
        assert found is not None  # link_target always answers a path
        return found

    def for_request(self) -> _OneRequest:
        return _OneRequest(self)

    def _answer(
        self,
        key: tuple[str, str, str],
        look: Callable[[], str | None],
        dirs: Callable[[], set[str] | None],
        drain: bool = True,
    ) -> str | None:
        """`drain` False: answer as of the last drain (an answer kept since a later change
        is forgotten at the next drain, so a new one may still be kept)."""
        with self._guard:
            if not self._current(drain):
                return look()
            if key in self._kept:
                return self._kept[key]
            before = dirs()
            if before is None or not self._watch(before):
                return look()
            answer = look()
            after = dirs()  # read as the answer was: a directory new to it was not watched
            if after is not None and after <= before:
                self._kept[key] = answer
            return answer

    def _current(self, drain: bool = True) -> bool:
        """Whether answers can be kept here; every kept answer dropped once anything changed
        (with `drain`)."""
        if not self._inotify.ready():
            return False
        if self._instance != self._inotify.instance:  # first use, or a forked child
            self._instance, self._kept, self._watched = self._inotify.instance, {}, {}
        if not drain:
            return True
        for wd, mask, _name in self._inotify.events():
            self._kept.clear()
            if mask & inotify.LOST:  # the watch no longer follows its path
                self._watched = {d: w for d, w in self._watched.items() if w != wd}
        return True

    def _watch(self, directories: set[str]) -> bool:
        for directory in sorted(directories - self._watched.keys()):
            if not inotify.local(directory):
                return False
            wd = self._inotify.watch(directory, _DIRECTORY_EVENTS)
            if wd < 0:
                return False
            self._watched[directory] = wd
        return True


class _OneRequest:
    """One request's lookups: the queue drained at its first, its answers as of then. A
    change made meanwhile is seen by the next request: a request is one moment, as a
    one-shot run's few lookups are. The backend pick asks three times, and each drain is a
    read that answers EAGAIN and its exception (~1.5 us hot)."""

    __slots__ = ("_drained", "_kept")

    def __init__(self, kept: KeptLookups) -> None:
        self._kept = kept
        self._drained = False

    def which(self, name: str, path: str | None) -> str | None:
        if path is None:
            return self._kept.which(name, None)  # never kept: nothing drained
        drain, self._drained = not self._drained, True
        return self._kept.which(name, path, drain=drain)

    def link_target(self, path: str) -> str:
        drain, self._drained = not self._drained, True
        return self._kept.link_target(path, drain=drain)

    def for_request(self) -> _OneRequest:
        return _OneRequest(self._kept)
