"""lookups.py and lookup_memo.py: where the host's tools are. A kept answer (the agent's)
is what a fresh lookup answers, after any change to the directories it was read from;
nothing is kept where inotify cannot see every change."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cni_bridge_py import lookup_memo
from cni_bridge_py.kernel import inotify
from cni_bridge_py.lookup_memo import KeptLookups
from cni_bridge_py.lookups import DIRECT, Lookups, resolution_dirs, which_dirs
from cni_bridge_py.which import link_target, which


def ancestors(path: Path) -> set[str]:
    return {str(p) for p in path.parents} | {str(path)}


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """Debian's shape under tmp_path: sbin -> real/sbin (as /sbin -> usr/sbin), and
    real/sbin/iptables -> alternatives/iptables -> real/sbin/xtables-nft-multi."""
    root = tmp_path.resolve()
    sbin, alternatives, local = root / "real" / "sbin", root / "alternatives", root / "local"
    for directory in (sbin, alternatives, local, root / "unread"):
        directory.mkdir(parents=True)
    (root / "sbin").symlink_to("real/sbin")
    for name in ("xtables-nft-multi", "xtables-legacy-multi", "nft"):
        (sbin / name).write_text("#!/bin/sh\n")
        (sbin / name).chmod(0o755)
    (alternatives / "iptables").symlink_to(sbin / "xtables-nft-multi")
    (sbin / "iptables").symlink_to("../../alternatives/iptables")
    return root


def path_of(host: Path) -> str:
    return f"{host / 'local'}:{host / 'missing' / 'bin'}:{host / 'sbin'}"


def test_resolution_reads_every_directory_on_the_way(host: Path) -> None:
    found = resolution_dirs(str(host / "sbin" / "iptables"))
    assert found == ancestors(host) | {
        str(host / "real"),
        str(host / "real" / "sbin"),
        str(host / "alternatives"),
    }


def test_a_missing_entry_is_read_where_it_would_appear(host: Path) -> None:
    assert resolution_dirs(str(host / "missing" / "bin" / "nft")) == ancestors(host)
    assert resolution_dirs(str(host / "local" / "nft")) == ancestors(host / "local")


def test_what_cannot_be_watched_is_none(host: Path) -> None:
    (host / "local" / "loop-a").symlink_to("loop-b")
    (host / "local" / "loop-b").symlink_to("loop-a")
    assert resolution_dirs(str(host / "local" / "loop-a")) is None
    assert resolution_dirs("relative/nft") is None
    assert which_dirs("nft", f"relative:{host / 'sbin'}") is None


def test_which_reads_up_to_the_first_match(host: Path) -> None:
    found = which_dirs("nft", path_of(host))
    assert found is not None
    assert str(host / "local") in found and str(host / "real" / "sbin") in found
    assert which_dirs("nft", f"{host / 'sbin'}:{host / 'local'}") == ancestors(host) | {
        str(host / "real"),
        str(host / "real" / "sbin"),
    }


def _answers(kept: Lookups, path: str) -> tuple[object, ...]:
    tool = kept.which("iptables", path)
    return (
        tool,
        kept.which("nft", path),
        kept.link_target(tool) if tool else None,
    )


def _direct(path: str) -> tuple[object, ...]:
    tool = which("iptables", path=path)
    return (tool, which("nft", path=path), link_target(tool) if tool else None)


def _switch_to_legacy(host: Path) -> None:
    # update-alternatives: a new link renamed over the old one.
    (host / "alternatives" / "iptables.new").symlink_to(host / "real/sbin/xtables-legacy-multi")
    (host / "alternatives" / "iptables.new").rename(host / "alternatives" / "iptables")


def _shadow_nft(host: Path) -> None:
    _made_with_nft(host / "local")


def _made_with_nft(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "nft").write_text("#!/bin/sh\n")
    (directory / "nft").chmod(0o755)


CHANGES: dict[str, Callable[[Path], object]] = {
    "alternatives switched": _switch_to_legacy,
    "a tool earlier on PATH": _shadow_nft,
    "a tool made not executable": lambda host: (host / "real/sbin/nft").chmod(0o644),
    "a tool removed": lambda host: (host / "real/sbin/nft").unlink(),
    "a missing PATH dir made, with a tool": lambda host: _made_with_nft(host / "missing" / "bin"),
    "the directory link retargeted": lambda host: _retarget(host / "sbin", "local"),
    "a linked directory renamed": lambda host: (host / "alternatives").rename(host / "gone"),
}


def _retarget(link: Path, target: str) -> None:
    link.unlink()
    link.symlink_to(target)


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_kept_answer_follows_every_change(host: Path, change: str) -> None:
    kept, path = KeptLookups(), path_of(host)
    before = _answers(kept, path)
    assert before == _direct(path)
    assert kept._kept  # kept, or the test below proves nothing
    CHANGES[change](host)
    assert _direct(path) != before  # the change changes the answer...
    assert _answers(kept, path) == _direct(path)  # ...and the kept one follows at once


def test_changes_one_after_another(host: Path) -> None:
    kept, path = KeptLookups(), path_of(host)
    for change in ("a tool earlier on PATH", "alternatives switched", "a tool removed"):
        _answers(kept, path)
        CHANGES[change](host)
        assert _answers(kept, path) == _direct(path)


def test_an_unchanged_answer_is_not_looked_up_again(
    host: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept, path = KeptLookups(), path_of(host)
    first = _answers(kept, path)
    calls: list[str] = []
    monkeypatch.setattr(lookup_memo, "which", lambda *a, **k: calls.append("which"))
    monkeypatch.setattr(lookup_memo, "link_target", lambda *a: calls.append("link_target"))
    (host / "unread" / "nft").write_text("")  # no answer was read there: nothing to forget
    assert _answers(kept, path) == first
    assert calls == []


@pytest.mark.parametrize("why", ["no inotify", "a filesystem that changes elsewhere"])
def test_nothing_is_kept_where_inotify_cannot_see(
    host: Path, monkeypatch: pytest.MonkeyPatch, why: str
) -> None:
    if why == "no inotify":
        monkeypatch.setattr(inotify, "libc_call", lambda *_args: -1)
    else:
        monkeypatch.setattr(inotify, "filesystem", lambda _path: 0x6969)  # NFS
    kept, path = KeptLookups(), path_of(host)
    assert _answers(kept, path) == _direct(path)
    assert kept._kept == {}
    _shadow_nft(host)
    assert _answers(kept, path) == _direct(path)


def test_the_process_path_is_never_kept(host: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", path_of(host))
    kept = KeptLookups()
    assert kept.which("nft", None) == str(host / "sbin" / "nft")
    monkeypatch.setenv("PATH", str(host / "real" / "sbin"))
    assert kept.which("nft", None) == str(host / "real" / "sbin" / "nft")
    assert kept._kept == {}


def test_a_forked_child_keeps_its_own(host: Path) -> None:
    kept, path = KeptLookups(), path_of(host)
    _answers(kept, path)
    pid = os.fork()
    if pid == 0:  # the child: a change it makes, seen through its own instance
        code = 1
        try:
            _shadow_nft(host)
            code = 0 if _answers(kept, path) == _direct(path) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert _answers(kept, path) == _direct(path)  # the parent's events were queued too


def test_a_request_drains_the_queue_once_and_the_next_one_sees_every_change(
    host: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request's lookups are answered as of its first (the backend pick asks three times);
    the next request's first lookup drains what changed meanwhile."""
    kept, path = KeptLookups(), path_of(host)
    _answers(kept, path)
    drains: list[int] = []
    events = inotify.Inotify.events

    def counted(self: inotify.Inotify) -> Iterator[tuple[int, int, str]]:
        drains.append(1)
        return events(self)

    monkeypatch.setattr(inotify.Inotify, "events", counted)
    request = kept.for_request()
    before = _answers(request, path)
    assert before == _direct(path) and len(drains) == 1
    CHANGES["alternatives switched"](host)
    assert _answers(request, path) == before and len(drains) == 1
    assert _answers(kept.for_request(), path) == _direct(path) != before
    assert len(drains) == 2


def test_a_request_without_inotify_looks_up_every_answer(
    host: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inotify, "libc_call", lambda *_args: -1)
    kept, path = KeptLookups(), path_of(host)
    request = kept.for_request()
    assert _answers(request, path) == _direct(path)
    _shadow_nft(host)
    assert _answers(request, path) == _direct(path)
    assert DIRECT.for_request() is DIRECT
