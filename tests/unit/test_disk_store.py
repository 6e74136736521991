"""The on-disk store: byte-compatible with host-local's files, atomic (link) claims that fail
like O_EXCL, flock, no symlinks."""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import os
import signal
import stat
import threading
import time
from pathlib import Path

import pytest

from cni_bridge_py.errors import CniError, IOFailure, TryAgainLater
from cni_bridge_py.filelock import flock_within
from cni_bridge_py.ipam import allocator
from cni_bridge_py.ipam.allocator import Attachment
from cni_bridge_py.ipam.config import DEFAULT_DATA_DIR
from cni_bridge_py.ipam.dirwatch import WatchedDirs
from cni_bridge_py.ipam.disk import TEMP_PREFIX, DiskStore, watched_entry
from cni_bridge_py.ipam.gc import gc
from cni_bridge_py.ipam.ranges import Range, RangeSet
from tests.reference import CAPTURE

ip = ipaddress.ip_address
MYNET = RangeSet.build([Range.build(ipaddress.ip_network("10.188.0.0/24"))])


@pytest.fixture(params=["reads the dir", "watched"])
def store(tmp_path: Path, request: pytest.FixtureRequest) -> DiskStore:
    """Each test twice: reading the directory, and as the agent's store, whose lookups use
    its inotify copy of the directory (dirwatch)."""
    watched = WatchedDirs(watched_entry) if request.param == "watched" else None
    made = DiskStore(str(tmp_path), "mynet", lock_timeout=0.2, watched=watched)
    if watched is not None:
        assert watched.files(made.directory) is not None  # really watched here
    return made


def listing(directory: Path) -> str:
    """The reference's snapshot format: ./name<TAB>repr(bytes), sorted, one per line."""
    return "".join(
        f"./{p.name}\t{p.read_bytes()!r}\n"
        for p in sorted(directory.iterdir(), key=lambda p: p.name)
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_default_data_dir() -> None:
    assert DEFAULT_DATA_DIR == "/var/lib/cni/networks"


def test_directory_is_created(tmp_path: Path) -> None:
    DiskStore(str(tmp_path / "a" / "b"), "mynet")
    directory = tmp_path / "a" / "b" / "mynet"
    assert directory.is_dir()
    assert mode(directory) & ~0o755 == 0


def test_directory_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(IOFailure) as info:
        DiskStore(str(tmp_path / "file"), "mynet")
    assert info.value.code == 5


@pytest.mark.parametrize("what", ["a file", "a dangling symlink"])
def test_a_network_directory_that_is_no_directory_is_refused(tmp_path: Path, what: str) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    if what == "a file":
        (data_dir / "mynet").write_text("")
    else:
        (data_dir / "mynet").symlink_to(tmp_path / "nowhere")
    with pytest.raises(IOFailure) as info:
        DiskStore(str(data_dir), "mynet")
    assert info.value.code == 5
    assert "not a directory" in info.value.msg
    assert not (tmp_path / "nowhere").exists()  # nothing was made through the link


def test_reserve_writes_host_local_files(store: DiskStore, tmp_path: Path) -> None:
    assert store.reserve("cnih-red", "eth0", ip("10.188.0.2"), 0)
    directory = tmp_path / "mynet"
    assert (directory / "10.188.0.2").read_bytes() == b"cnih-red\r\neth0"
    assert (directory / "last_reserved_ip.0").read_bytes() == b"10.188.0.2"
    assert mode(directory / "10.188.0.2") == 0o600
    assert mode(directory / "last_reserved_ip.0") == 0o600


def test_container_id_is_trimmed(store: DiskStore, tmp_path: Path) -> None:
    store.reserve(" red \n", "eth0", ip("10.188.0.2"), 0)
    assert (tmp_path / "mynet" / "10.188.0.2").read_bytes() == b"red\r\neth0"


def test_ipv6_file_names_are_canonical(store: DiskStore, tmp_path: Path) -> None:
    store.reserve("red", "eth0", ip("2001:0DB8:0000:0000:0000:0000:0000:0005"), 3)
    assert (tmp_path / "mynet" / "2001:db8::5").read_bytes() == b"red\r\neth0"
    assert (tmp_path / "mynet" / "last_reserved_ip.3").read_bytes() == b"2001:db8::5"
    assert store.last_reserved(3) == ip("2001:db8::5")


def test_reserve_is_exclusive(store: DiskStore, tmp_path: Path) -> None:
    assert store.reserve("red", "eth0", ip("10.188.0.2"), 0)
    assert not store.reserve("blue", "eth0", ip("10.188.0.2"), 0)
    assert not store.reserve("red", "eth0", ip("10.188.0.2"), 0)
    assert (tmp_path / "mynet" / "10.188.0.2").read_bytes() == b"red\r\neth0"


def test_last_reserved_is_overwritten_per_range_set(store: DiskStore) -> None:
    assert store.last_reserved(0) is None
    store.reserve("a", "eth0", ip("10.188.0.9"), 0)
    store.reserve("b", "eth0", ip("10.188.0.3"), 0)
    store.reserve("c", "eth0", ip("10.189.0.3"), 1)
    assert store.last_reserved(0) == ip("10.188.0.3")
    assert store.last_reserved(1) == ip("10.189.0.3")


@pytest.mark.parametrize("content", [b"", b"garbage", b"10.188.0"])
def test_damaged_last_reserved_is_ignored(store: DiskStore, tmp_path: Path, content: bytes) -> None:
    (tmp_path / "mynet" / "last_reserved_ip.0").write_bytes(content)
    assert store.last_reserved(0) is None


def test_last_reserved_tolerates_a_newline(store: DiskStore, tmp_path: Path) -> None:
    (tmp_path / "mynet" / "last_reserved_ip.0").write_bytes(b"10.188.0.7\n")
    assert store.last_reserved(0) == ip("10.188.0.7")


def test_owned_by_and_release(store: DiskStore, tmp_path: Path) -> None:
    store.reserve("red", "eth0", ip("10.188.0.2"), 0)
    store.reserve("red", "net1", ip("10.188.0.3"), 0)
    store.reserve("blue", "eth0", ip("10.188.0.4"), 0)
    assert store.owned_by("red", "eth0") == [ip("10.188.0.2")]
    assert store.release("red", "eth0") == [ip("10.188.0.2")]
    assert sorted(p.name for p in (tmp_path / "mynet").iterdir()) == [
        "10.188.0.3",
        "10.188.0.4",
        "last_reserved_ip.0",
    ]
    assert store.release("red", "eth0") == []
    assert store.release("nobody", "eth0") == []


def test_owner_content_is_trimmed_like_host_local(store: DiskStore, tmp_path: Path) -> None:
    (tmp_path / "mynet" / "10.188.0.9").write_bytes(b"red\r\neth0\n")
    assert store.owned_by("red", "eth0") == [ip("10.188.0.9")]
    assert store.release("red", "eth0") == [ip("10.188.0.9")]


def test_legacy_id_only_files(store: DiskStore, tmp_path: Path) -> None:
    directory = tmp_path / "mynet"
    (directory / "10.188.0.7").write_bytes(b"red")
    # owned_by (the duplicate check, CHECK) sees legacy files...
    assert store.owned_by("red", "eth0") == [ip("10.188.0.7")]
    # ...and release falls back to them when no current-format file matches.
    assert store.release("red", "eth0") == [ip("10.188.0.7")]
    assert not (directory / "10.188.0.7").exists()


def test_legacy_files_are_kept_when_a_current_file_matches(
    store: DiskStore, tmp_path: Path
) -> None:
    directory = tmp_path / "mynet"
    (directory / "10.188.0.7").write_bytes(b"red")
    store.reserve("red", "eth0", ip("10.188.0.8"), 0)
    assert store.release("red", "eth0") == [ip("10.188.0.8")]
    assert (directory / "10.188.0.7").exists()


def test_legacy_file_blocks_a_duplicate_allocation(store: DiskStore, tmp_path: Path) -> None:
    (tmp_path / "mynet" / "10.188.0.7").write_bytes(b"red")
    with pytest.raises(CniError, match=r"10\.188\.0\.7 has been allocated to red"):
        allocator.allocate(store, [MYNET], Attachment("red", "eth0"))


def test_odd_entries_are_ignored(store: DiskStore, tmp_path: Path) -> None:
    directory = tmp_path / "mynet"
    (directory / "notes.txt").write_bytes(b"red\r\neth0")
    (directory / "10.188.0.20").mkdir()
    (directory / "lock").write_bytes(b"red\r\neth0")
    (directory / "last_reserved_ip.0").write_bytes(b"red\r\neth0")
    assert store.owned_by("red", "eth0") == []
    assert store.release("red", "eth0") == []
    assert (directory / "notes.txt").exists()


def test_symlinks_are_not_followed(store: DiskStore, tmp_path: Path) -> None:
    directory = tmp_path / "mynet"
    target = tmp_path / "elsewhere"
    target.write_bytes(b"red\r\neth0")
    (directory / "10.188.0.5").symlink_to(target)
    assert store.owned_by("red", "eth0") == []
    assert store.release("red", "eth0") == []
    assert target.read_bytes() == b"red\r\neth0"
    assert (directory / "10.188.0.5").is_symlink()


def test_reserve_does_not_write_through_a_symlink(store: DiskStore, tmp_path: Path) -> None:
    target = tmp_path / "victim"
    (tmp_path / "mynet" / "10.188.0.5").symlink_to(target)
    assert not store.reserve("red", "eth0", ip("10.188.0.5"), 0)
    assert not target.exists()


def test_last_reserved_symlink_is_neither_read_nor_written(
    store: DiskStore, tmp_path: Path
) -> None:
    directory = tmp_path / "mynet"
    target = tmp_path / "victim"
    target.write_bytes(b"10.188.0.77")
    (directory / "last_reserved_ip.0").symlink_to(target)
    assert store.last_reserved(0) is None
    with pytest.raises(IOFailure):
        store.reserve("red", "eth0", ip("10.188.0.5"), 0)
    assert target.read_bytes() == b"10.188.0.77"
    assert not (directory / "10.188.0.5").exists()  # the claim was rolled back


def test_lock_file(store: DiskStore, tmp_path: Path) -> None:
    with store.lock():
        lock = tmp_path / "mynet" / "lock"
        assert lock.is_file() and lock.read_bytes() == b""
        assert mode(lock) & ~0o750 == 0
    with store.lock():  # released on exit
        pass


def test_lock_symlink_is_refused(store: DiskStore, tmp_path: Path) -> None:
    (tmp_path / "mynet" / "lock").symlink_to(tmp_path / "victim")
    with pytest.raises(IOFailure), store.lock():
        pass
    assert not (tmp_path / "victim").exists()


def test_lock_timeout_is_try_again_later(store: DiskStore, tmp_path: Path) -> None:
    with store.lock():
        pass
    fd = os.open(tmp_path / "mynet" / "lock", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(TryAgainLater) as info, store.lock():
            pass
        assert info.value.code == 11
        with pytest.raises(TryAgainLater):
            allocator.allocate(store, [MYNET], Attachment("red", "eth0"))
    finally:
        os.close(fd)
    with store.lock():
        pass


def test_lock_is_exclusive_between_stores(tmp_path: Path) -> None:
    one = DiskStore(str(tmp_path), "mynet", lock_timeout=0.1)
    two = DiskStore(str(tmp_path), "mynet", lock_timeout=0.1)
    with one.lock(), pytest.raises(TryAgainLater), two.lock():
        pass


def _no_sleeping(*_args: object) -> None:
    raise AssertionError("the lock waits in flock(2), it does not poll")


def test_a_contended_lock_is_taken_when_released_without_polling(
    store: DiskStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "sleep", _no_sleeping)
    store.lock_timeout = 30.0
    with store.lock():  # creates the lock file
        pass
    fd = os.open(tmp_path / "mynet" / "lock", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    releaser = threading.Timer(0.3, os.close, (fd,))  # the holder goes away while we wait
    releaser.start()
    started = time.monotonic()
    with store.lock():
        waited = time.monotonic() - started
    releaser.join()
    assert 0.2 < waited < 20


def test_a_lock_given_up_on_is_not_kept_by_the_late_waiter(
    store: DiskStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deadline passes (code 11); when the holder then lets go, the waiter that was still
    blocked in flock(2) takes the lock and must drop it at once: the next caller gets it."""
    monkeypatch.setattr(time, "sleep", _no_sleeping)
    with store.lock():
        pass
    holder = os.open(tmp_path / "mynet" / "lock", os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    with pytest.raises(TryAgainLater), store.lock():
        pass
    os.close(holder)
    nxt = os.open(tmp_path / "mynet" / "lock", os.O_RDONLY)
    try:
        assert flock_within(nxt, 10.0)
    finally:
        os.close(nxt)


def test_threads_with_their_own_descriptions_exclude_each_other(tmp_path: Path) -> None:
    """The agent's requests are threads of one process: each lock() opens the file anew, so
    flock excludes them as it excludes processes (no lost update below)."""
    counter = [0]

    def bump() -> None:
        with DiskStore(str(tmp_path), "mynet", lock_timeout=30).lock():
            value = counter[0]
            time.sleep(0.002)  # let another thread in, were it not excluded
            counter[0] = value + 1

    threads = [threading.Thread(target=bump) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert counter[0] == 20


def test_an_uncontended_lock_starts_no_thread(store: DiskStore) -> None:
    before = threading.active_count()
    with store.lock():
        assert threading.active_count() == before


def test_networks_are_separate(tmp_path: Path) -> None:
    a = DiskStore(str(tmp_path), "net-a")
    b = DiskStore(str(tmp_path), "net-b")
    a.reserve("red", "eth0", ip("10.188.0.2"), 0)
    assert b.owned_by("red", "eth0") == []
    assert b.reserve("red", "eth0", ip("10.188.0.2"), 0)


def test_replays_the_reference_run(tmp_path: Path) -> None:
    """add red, add blue, del red, del blue, add green, del green: the same files as host-local."""
    store = DiskStore(str(tmp_path), "mynet")
    directory = tmp_path / "mynet"

    def expect(state: str) -> None:
        assert listing(directory) == (CAPTURE / state / "var-lib-cni-networks.txt").read_text()

    red, blue, green = (Attachment(f"cnih-{c}", "eth0") for c in ("red", "blue", "green"))
    assert str(allocator.allocate(store, [MYNET], red)[0].address) == "10.188.0.2/24"
    expect("state-1-after-add-red")
    assert str(allocator.allocate(store, [MYNET], blue)[0].address) == "10.188.0.3/24"
    expect("state-2-after-add-blue")
    allocator.release(store, red)
    allocator.release(store, red)  # DEL is idempotent
    expect("state-3-after-del-red")
    allocator.release(store, blue)
    expect("state-4-after-del-blue")
    assert str(allocator.allocate(store, [MYNET], green)[0].address) == "10.188.0.4/24"
    allocator.release(store, green)
    expect("state-7-after-del-green-netns-gone")


# --- atomic reservations: a crash never leaves an empty or half-written <ip> file ----------


def entries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def temp_files(directory: Path) -> list[str]:
    return [name for name in entries(directory) if name.startswith(TEMP_PREFIX)]


def test_reserve_leaves_one_complete_file_and_no_temporary(
    store: DiskStore, tmp_path: Path
) -> None:
    assert store.reserve("red", "eth0", ip("10.188.0.2"), 0)
    directory = tmp_path / "mynet"
    assert entries(directory) == ["10.188.0.2", "last_reserved_ip.0"]
    reservation = directory / "10.188.0.2"
    assert reservation.read_bytes() == b"red\r\neth0"
    assert reservation.stat().st_nlink == 1  # the temporary name is gone
    assert mode(reservation) == 0o600


def crash_inside(store: DiskStore, function: str, addr: str) -> None:
    """Run store.reserve in a child process that SIGKILLs itself when it calls os.<function>
    (the temporary file is written by then): what a crash at that instant leaves on disk."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            setattr(os, function, lambda *_args, **_kw: os.kill(os.getpid(), signal.SIGKILL))
            store.reserve("red", "eth0", ip(addr), 0)
        finally:
            os._exit(3)  # only reached if the hook did not fire
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def test_a_crash_before_the_link_leaves_no_reservation(store: DiskStore, tmp_path: Path) -> None:
    directory = tmp_path / "mynet"
    crash_inside(store, "link", "10.188.0.2")
    # Only a temporary file: the address is not taken by a file nobody owns.
    assert [n for n in entries(directory) if not n.startswith(TEMP_PREFIX)] == []
    assert len(temp_files(directory)) == 1
    assert store.owners() == []  # without the lock (STATUS) it is skipped, not removed
    assert len(temp_files(directory)) == 1
    # The next caller holding the lock removes it, and the address is free.
    got = allocator.allocate(store, [MYNET], Attachment("blue", "eth0"))
    assert str(got[0].address) == "10.188.0.2/24"
    assert temp_files(directory) == []
    assert (directory / "10.188.0.2").read_bytes() == b"blue\r\neth0"


def test_a_crash_after_the_link_leaves_a_complete_reservation(
    store: DiskStore, tmp_path: Path
) -> None:
    directory = tmp_path / "mynet"
    crash_inside(store, "unlink", "10.188.0.2")
    assert (directory / "10.188.0.2").read_bytes() == b"red\r\neth0"
    assert len(temp_files(directory)) == 1
    # DEL finds it (the owner line is whole) and the stale temporary goes with the lock.
    assert allocator.release(store, Attachment("red", "eth0")) == [ip("10.188.0.2")]
    assert temp_files(directory) == []
    assert not (directory / "10.188.0.2").exists()


def test_gc_removes_stale_temporaries_and_keeps_valid_reservations(
    store: DiskStore, tmp_path: Path
) -> None:
    directory = tmp_path / "mynet"
    store.reserve("red", "eth0", ip("10.188.0.2"), 0)
    (directory / f"{TEMP_PREFIX}999-deadbeef").write_bytes(b"blue\r\neth0")
    assert gc(store, {("red", "eth0")}) == []
    assert entries(directory) == ["10.188.0.2", "last_reserved_ip.0", "lock"]


def test_an_empty_reservation_file_does_not_block_and_gc_reclaims_it(
    store: DiskStore, tmp_path: Path
) -> None:
    """What the reference (or an older version of this store) leaves when it dies between
    its O_EXCL create and its write: nobody's, so DEL cannot release it; allocation passes
    over it and GC, which keeps only valid owners, reclaims it."""
    directory = tmp_path / "mynet"
    (directory / "10.188.0.2").write_bytes(b"")
    got = allocator.allocate(store, [MYNET], Attachment("red", "eth0"))
    assert str(got[0].address) == "10.188.0.3/24"
    assert allocator.release(store, Attachment("blue", "eth0")) == []
    assert (directory / "10.188.0.2").exists()
    assert gc(store, {("red", "eth0")}) == [ip("10.188.0.2")]
    assert (directory / "10.188.0.3").read_bytes() == b"red\r\neth0"


def test_without_hard_links_the_claim_falls_back_to_o_excl(
    store: DiskStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_link(*_args: object, **_kw: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    assert store.reserve("red", "eth0", ip("10.188.0.2"), 0)
    assert not store.reserve("blue", "eth0", ip("10.188.0.2"), 0)
    directory = tmp_path / "mynet"
    assert entries(directory) == ["10.188.0.2", "last_reserved_ip.0"]
    assert (directory / "10.188.0.2").read_bytes() == b"red\r\neth0"


def test_a_symlinked_network_directory_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "10.188.0.9").write_bytes(b"someone\r\neth0")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "mynet").symlink_to(outside)
    with pytest.raises(IOFailure) as info:
        DiskStore(str(data_dir), "mynet")
    assert "symlink" in info.value.msg
    assert entries(outside) == ["10.188.0.9"]


def test_holds_reads_one_reservation(store: DiskStore, tmp_path: Path) -> None:
    directory = tmp_path / "mynet"
    store.reserve("red", "eth0", ip("10.188.0.2"), 0)
    (directory / "10.188.0.7").write_bytes(b"blue")  # legacy: the container ID only
    assert store.holds(ip("10.188.0.2"), "red", "eth0")
    assert not store.holds(ip("10.188.0.2"), "red", "eth1")
    assert not store.holds(ip("10.188.0.2"), "blue", "eth0")
    assert store.holds(ip("10.188.0.7"), "blue", "eth0")
    assert not store.holds(ip("10.188.0.9"), "red", "eth0")  # no such file


def test_holds_ignores_what_reservations_skip(store: DiskStore, tmp_path: Path) -> None:
    directory = tmp_path / "mynet"
    target = tmp_path / "elsewhere"
    target.write_bytes(b"red\r\neth0")
    (directory / "10.188.0.5").symlink_to(target)
    (directory / "10.188.0.6").mkdir()
    assert not store.holds(ip("10.188.0.5"), "red", "eth0")
    assert not store.holds(ip("10.188.0.6"), "red", "eth0")


def test_holds_any_looks_at_the_likely_addresses_first(
    store: DiskStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.reserve("red", "eth0", ip("10.188.0.2"), 0)
    store.reserve("blue", "eth0", ip("10.188.0.3"), 0)
    red = Attachment("red", "eth0")

    def no_scan() -> list[object]:
        raise AssertionError("the whole store was read")

    with monkeypatch.context() as patched:
        patched.setattr(store, "reservations", no_scan)
        assert allocator.holds_any(store, red, [ip("10.188.0.2")])
    # A wrong or missing hint falls back to the whole store: the same answer as owned().
    assert allocator.holds_any(store, red, [ip("10.188.0.3")])
    assert allocator.holds_any(store, red)
    assert not allocator.holds_any(store, Attachment("red", "eth1"), [ip("10.188.0.2")])
