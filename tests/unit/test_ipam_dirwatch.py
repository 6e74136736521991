"""The agent's inotify copy of a host-local data dir (ipam/dirwatch.py): after any change made
through the directory, by this process or another, it answers what reading the directory
answers; what it cannot see makes it read the directory again, or hand the reading back."""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
from pathlib import Path

import pytest

from cni_bridge_py.ipam.dirwatch import WatchedDirs
from cni_bridge_py.ipam.disk import LAST_RESERVED_PREFIX, TEMP_PREFIX, DiskStore, watched_entry
from cni_bridge_py.kernel import inotify


def read_directly(directory: Path) -> dict[str, str]:
    """What the store keeps of a directory, found by reading every entry."""
    found = {name: watched_entry(str(directory), name) for name in os.listdir(directory)}
    return {name: text for name, text in found.items() if text is not None}


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    made = tmp_path / "net"
    made.mkdir()
    return made


@pytest.fixture
def watched() -> WatchedDirs:
    return WatchedDirs(watched_entry)


def test_changes_by_another_writer_are_seen(directory: Path, watched: WatchedDirs) -> None:
    (directory / "10.0.0.2").write_text("c1\r\neth0")
    assert watched.files(str(directory)) == {"10.0.0.2": "c1\r\neth0"}
    (directory / "10.0.0.3").write_text("c2\r\neth0")  # created
    (directory / "10.0.0.2").write_text("c9\r\neth1")  # rewritten in place
    (directory / "lock").touch()
    (directory / f"{LAST_RESERVED_PREFIX}0").write_text("10.0.0.3")
    assert watched.files(str(directory)) == {"10.0.0.2": "c9\r\neth1", "10.0.0.3": "c2\r\neth0"}
    (directory / "10.0.0.3").rename(directory / "10.0.0.4")
    (directory / "10.0.0.2").unlink()
    assert watched.files(str(directory)) == {"10.0.0.4": "c2\r\neth0"}


def test_symlinks_directories_and_temporaries(directory: Path, watched: WatchedDirs) -> None:
    (directory / "elsewhere").write_text("c1\r\neth0")
    assert watched.files(str(directory)) == {"elsewhere": "c1\r\neth0"}
    (directory / "10.0.0.5").symlink_to(directory / "elsewhere")
    (directory / "10.0.0.6").mkdir()
    (directory / f"{TEMP_PREFIX}1-ab").write_text("x")
    assert watched.files(str(directory)) == {"elsewhere": "c1\r\neth0", f"{TEMP_PREFIX}1-ab": ""}


def test_a_replaced_directory_is_read_again(directory: Path, watched: WatchedDirs) -> None:
    (directory / "10.0.0.2").write_text("old")
    assert watched.files(str(directory)) == {"10.0.0.2": "old"}
    shutil.rmtree(directory)
    directory.mkdir()
    (directory / "10.0.0.9").write_text("new")
    assert watched.files(str(directory)) == {"10.0.0.9": "new"}
    moved = directory.parent / "moved"
    directory.rename(moved)
    directory.mkdir()
    assert watched.files(str(directory)) == {}
    assert watched.files(str(moved)) == {"10.0.0.9": "new"}


def test_a_lost_event_queue_reads_every_directory_again(
    directory: Path, watched: WatchedDirs
) -> None:
    assert watched.files(str(directory)) == {}
    (directory / "10.0.0.2").write_text("c1")
    os.read(watched._inotify._fd, 1 << 16)  # the events are gone unread: the copy is stale...
    assert watched.files(str(directory)) == {}
    watched._note(-1, inotify.IN_Q_OVERFLOW, "")  # ...unless the kernel says it dropped some
    assert watched.files(str(directory)) == {"10.0.0.2": "c1"}


def test_an_overflow_marks_every_directory_lost(directory: Path, watched: WatchedDirs) -> None:
    other = directory.parent / "other"
    other.mkdir()
    watched.files(str(directory)), watched.files(str(other))
    watched._note(-1, inotify.IN_Q_OVERFLOW, "")
    assert all(known.lost for known in watched._by_identity.values())


def test_a_filesystem_that_changes_elsewhere_is_not_watched(
    directory: Path, watched: WatchedDirs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inotify, "filesystem", lambda _path: 0x6969)  # NFS
    assert watched.files(str(directory)) is None
    store = DiskStore(str(directory), "n", watched=watched)
    assert store.reserve("c1", "eth0", ipaddress.ip_address("10.0.0.2"), 0)
    assert store.owned_by("c1", "eth0") == [ipaddress.ip_address("10.0.0.2")]


def test_without_inotify_the_store_reads_the_directory(
    directory: Path, watched: WatchedDirs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inotify, "libc_call", lambda *_args: -1)
    assert watched.files(str(directory)) is None


def test_a_forked_child_watches_for_itself(directory: Path, watched: WatchedDirs) -> None:
    assert watched.files(str(directory)) == {}
    parent_fd = watched._inotify._fd
    pid = os.fork()
    if pid == 0:  # the child: its own instance, then changes the parent must see
        code = 1
        try:
            (directory / "10.0.0.7").write_text("child")
            seen = watched.files(str(directory))
            own = watched._inotify._pid == os.getpid()
            code = 0 if seen == {"10.0.0.7": "child"} and own else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert watched._inotify._fd == parent_fd
    assert watched.files(str(directory)) == {"10.0.0.7": "child"}


def test_random_changes_by_two_stores_and_a_bystander(directory: Path) -> None:
    """host-local's own operations, through two watched stores (two workers), mixed with
    writes as the reference makes them; after each, both copies equal a read of the
    directory, and the stores' answers equal an unwatched store's."""
    data_dir = str(directory)
    first = DiskStore(data_dir, "net", watched=WatchedDirs(watched_entry))
    second = DiskStore(data_dir, "net", watched=WatchedDirs(watched_entry))
    plain = DiskStore(data_dir, "net")
    net = Path(plain.directory)
    rng = random.Random(7)
    for step in range(400):
        container, ifname = f"c{rng.randrange(12)}", rng.choice(["eth0", "eth1"])
        addr = ipaddress.ip_address(f"10.0.0.{rng.randrange(2, 40)}")
        store = rng.choice([first, second])
        action = rng.randrange(5)
        with store.lock():
            if action == 0:
                store.reserve(container, ifname, addr, 0)
            elif action == 1:
                store.release(container, ifname)
            elif action == 2:  # the reference: O_EXCL create, then the write
                if not (net / str(addr)).exists():
                    (net / str(addr)).write_text(f"{container}\r\n{ifname}")
            elif action == 3:
                store.remove(addr)
            else:  # a crash's leftover temporary file
                (net / f"{TEMP_PREFIX}{step}").write_text("x")
            for each in (first, second):
                assert sorted(each.owned_by(container, ifname)) == sorted(
                    plain.owned_by(container, ifname)
                )
                assert sorted(each.owners()) == sorted(plain.owners())
        on_disk = read_directly(net)
        wanted = (f"{container}\r\n{ifname}", container, "")
        expected = {
            text: sorted(name for name, held in on_disk.items() if held == text)
            for text in wanted
            if text in on_disk.values()
        }
        for each in (first, second):
            assert each._watched is not None
            assert each._watched.files(each.directory) == on_disk
            assert each._watched.holding(each.directory, wanted) == expected
