"""Where the host's tools are (which, link_target), and which directories each answer is read
from (pure but for the lstats and readlinks of the lookups themselves).

The masquerade backend is picked from the tools on PATH on every request (firewall.backend):
where iptables is, where its links end (nft or legacy) and where nft is. A one-shot run asks
each once (DIRECT); an agent keeps the answers until a directory they were read from changes
(lookup_memo.KeptLookups, which watches the directories resolution_dirs names).
"""

from __future__ import annotations

import os
from collections import deque
from stat import S_ISLNK
from typing import Protocol

from cni_bridge_py.which import MAX_LINKS, candidates, is_executable, link_target, which


class Lookups(Protocol):
    def which(self, name: str, path: str | None) -> str | None:
        """which.which(name, path=path)."""

    def link_target(self, path: str) -> str:
        """which.link_target(path)."""

    def for_request(self) -> Lookups:
        """The lookups one request makes (the backend pick asks several times)."""


class Direct:
    """Every answer looked up when asked (a one-shot run asks each once)."""

    def which(self, name: str, path: str | None) -> str | None:
        return which(name, path=path)

    def link_target(self, path: str) -> str:
        return link_target(path)

    def for_request(self) -> Direct:
        return self


DIRECT = Direct()


def which_dirs(name: str, path: str) -> set[str] | None:
    """The directories whose entries which(name, path) reads: each PATH entry's resolution
    of `name`, up to the first that is executable; None when one cannot be watched."""
    if os.path.dirname(name):
        return resolution_dirs(name)  # a path: which looks only there
    found: set[str] = set()
    for candidate in candidates(name, path):
        read = resolution_dirs(candidate)
        if read is None:
            return None
        found |= read
        if is_executable(candidate):
            break
    return found


def resolution_dirs(path: str) -> set[str] | None:
    """The directories whose entries are read to resolve `path` as stat does, through every
    symlink: a change to any of them may change what `path` is. None for a relative path, a
    chain of more than 40 links, or a failure other than "no such entry"."""
    if not os.path.isabs(path):
        return None
    read: set[str] = set()
    parts = deque(path.split("/"))
    current = "/"
    links = 0
    while parts:
        part = parts.popleft()
        if part in ("", "."):
            continue
        if part == "..":
            current = os.path.dirname(current)  # current is resolved: its parent is real
            continue
        read.add(current)
        candidate = os.path.join(current, part)
        try:
            mode = os.lstat(candidate).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return read  # an entry made here would change the answer: `current` is watched
        except OSError:
            return None
        if S_ISLNK(mode):
            links += 1
            if links > MAX_LINKS:
                return None
            try:
                target = os.readlink(candidate)
            except OSError:
                return None
            if target.startswith("/"):
                current = "/"
            parts.extendleft(reversed(target.split("/")))
            continue
        current = candidate
    return read
