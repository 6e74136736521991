"""host-local's on-disk store, byte-compatible with the reference plugin.

<dataDir>/<network>/<ip> holds "<containerID>\\r\\n<ifname>" (no newline), mode 0600;
last_reserved_ip.<rangeSet> holds the last address handed out; `lock` is flock()ed.
The reference and this store can share one directory.

A reservation appears whole or not at all: the owner line is written to a temporary file
(".reserving-*") in the same directory, which is then hard-linked to the address's name.
link() fails with EEXIST exactly as the reference's O_CREAT|O_EXCL does, so the claim is
the same, but a crash can never leave an empty `<ip>` file that nobody owns (the reference
can, between its create and its write). A temporary file left by a crash is removed by the
next caller that holds the lock.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import stat
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from cni_bridge_py.errors import IOFailure, TryAgainLater
from cni_bridge_py.filelock import flock_within
from cni_bridge_py.ipam.store import LINE_BREAK, Owner, parse_owner
from cni_bridge_py.netaddr import IPAddress

if TYPE_CHECKING:
    from cni_bridge_py.ipam.dirwatch import WatchedDirs

LOCK_NAME = "lock"
LAST_RESERVED_PREFIX = "last_reserved_ip."
# A reservation being written; never an address, so no reader takes it for one.
TEMP_PREFIX = ".reserving-"
LOCK_TIMEOUT_S = 30.0
# link() is not supported everywhere (some FUSE and vfat mounts): there the claim falls back
# to the reference's O_EXCL create-then-write.
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS})


def _owner_line(container_id: str, ifname: str) -> str:
    return container_id.strip() + LINE_BREAK + ifname


def _owner_texts(container_id: str, ifname: str) -> tuple[str, str]:
    """What a reservation of this attachment holds: the owner line, or (host-local before
    0.7) the container ID alone."""
    return _owner_line(container_id, ifname), container_id.strip()


def _made(directory: str) -> int:
    """The lstat mode of `directory`, made first when it does not exist: one lstat where the
    data dir is there already (every request but a network's first), not makedirs' mkdir,
    EEXIST and stat before it."""
    try:
        return os.lstat(directory).st_mode
    except FileNotFoundError:
        os.makedirs(directory, mode=0o755, exist_ok=True)
        return os.lstat(directory).st_mode


class DiskStore:
    def __init__(
        self,
        data_dir: str,
        network: str,
        lock_timeout: float = LOCK_TIMEOUT_S,
        watched: WatchedDirs | None = None,
    ) -> None:
        """`watched`: a resident process's copy of the directory (dirwatch), which lookups
        by owner use instead of reading every file; None reads them."""
        # `network` is validated by config (no "/" or ".."), so the join stays inside data_dir.
        self.directory = os.path.join(data_dir, network)
        self.lock_timeout = lock_timeout
        self._watched = watched
        # True while this instance holds the flock: only then is a temporary file certainly
        # a crash's leftover (every writer holds the lock). Not shared between threads.
        self._locked = False
        try:
            mode = _made(self.directory)
        except OSError as exc:
            raise IOFailure(f"cannot create the IPAM data dir {self.directory}", str(exc)) from exc
        if not stat.S_ISDIR(mode):
            # A symlink planted in the data dir would take reads, writes and GC's deletions
            # to wherever it points.
            raise IOFailure(
                f"the IPAM data dir {self.directory} is not a directory (a symlink?)",
                "refusing to follow it; remove it or point dataDir elsewhere",
            )

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        path = os.path.join(self.directory, LOCK_NAME)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o750)
        except OSError as exc:
            raise IOFailure(f"cannot open the IPAM lock {path}", str(exc)) from exc
        try:
            self._flock(fd, path)
            self._locked = True
            yield
        finally:
            self._locked = False
            os.close(fd)  # closing drops the flock

    def _flock(self, fd: int, path: str) -> None:
        # `fd` is this call's own open of the lock file, so concurrent requests in the agent's
        # threads exclude each other exactly as separate processes do.
        if not flock_within(fd, self.lock_timeout):
            raise TryAgainLater(
                f"the IPAM lock {path} is held by another process",
                f"waited {self.lock_timeout:g}s; retry the request",
            )

    def reserve(self, container_id: str, ifname: str, addr: IPAddress, range_id: int) -> bool:
        path = os.path.join(self.directory, str(addr))
        if os.path.lexists(path):
            return False  # the common case while scanning a busy range: no file written
        owner = _owner_line(container_id, ifname).encode()
        try:
            claimed = self._claim(path, owner)
        except OSError as exc:
            raise IOFailure(f"cannot reserve {addr} in {self.directory}", str(exc)) from exc
        if not claimed:
            return False
        try:
            self._write_last_reserved(range_id, addr)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise IOFailure(f"cannot record the reservation of {addr}", str(exc)) from exc
        return True

    def _claim(self, path: str, owner: bytes) -> bool:
        """Create `path` holding `owner`, atomically; False when it already exists."""
        temp = os.path.join(self.directory, f"{TEMP_PREFIX}{os.getpid()}-{os.urandom(4).hex()}")
        self._write_new(temp, owner)
        try:
            os.link(temp, path)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            return self._claim_without_link(path, owner)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
        return True

    def _claim_without_link(self, path: str, owner: bytes) -> bool:
        try:
            self._write_new(path, owner)
        except FileExistsError:
            return False
        return True

    @staticmethod
    def _write_new(path: str, data: bytes) -> None:
        fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        try:
            os.write(fd, data)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        os.close(fd)

    def _write_last_reserved(self, range_id: int, addr: IPAddress) -> None:
        path = os.path.join(self.directory, f"{LAST_RESERVED_PREFIX}{range_id}")
        fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        try:
            os.write(fd, str(addr).encode())
        finally:
            os.close(fd)

    def last_reserved(self, range_id: int) -> IPAddress | None:
        text = self._read(os.path.join(self.directory, f"{LAST_RESERVED_PREFIX}{range_id}"))
        if text is None:
            return None
        try:
            return ipaddress.ip_address(text.strip())
        except ValueError:
            return None  # a damaged hint only costs round-robin order once

    def reservations(self) -> Iterator[tuple[IPAddress, str]]:
        """Every (address, owner text) in the directory; symlinks and odd names are skipped."""
        for name, text in self._files():
            addr = _address(name)
            if addr is not None:
                yield addr, text

    def _files(self) -> Iterator[tuple[str, str]]:
        """(file name, owner text) of every plain file that may be a reservation, the name not
        parsed yet: a lookup by owner parses only the names it keeps (with hundreds of
        attachments, parsing every name cost more than reading every file)."""
        known = self._watched.files(self.directory) if self._watched is not None else None
        if known is not None:
            self._remove_stale_temps(known)
            yield from ((n, owner) for n, owner in known.items() if not n.startswith(TEMP_PREFIX))
            return
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.name.startswith(TEMP_PREFIX):
                self._remove_stale_temp(entry.path)
                continue
            if not may_be_reservation(entry):
                continue
            text = self._read(entry.path)
            if text is not None:
                yield entry.name, text.strip()

    def _remove_stale_temp(self, path: str) -> None:
        """Under the lock nobody is writing a reservation, so a temporary file is what a
        crash left (before or after its link); without the lock (STATUS) it is skipped."""
        if self._locked:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def owned_by(self, container_id: str, ifname: str) -> list[IPAddress]:
        owners = _owner_texts(container_id, ifname)
        held = self._holding(owners)
        if held is not None:
            names = [name for owner in owners for name in held.get(owner, ())]
            return [addr for addr in map(_address, names) if addr is not None]
        found = (_address(name) for name, owner in self._files() if owner in owners)
        return [addr for addr in found if addr is not None]

    def holds(self, addr: IPAddress, container_id: str, ifname: str) -> bool:
        try:
            # O_NOFOLLOW: a symlink is no reservation, as in reservations().
            text = self._read(os.path.join(self.directory, str(addr)))
        except (OSError, IOFailure):
            return False  # a directory, an unreadable file: owned_by() decides
        return text is not None and text.strip() in _owner_texts(container_id, ifname)

    def release(self, container_id: str, ifname: str) -> list[IPAddress]:
        line, legacy = _owner_texts(container_id, ifname)
        held = self._holding((line, legacy))
        if held is not None:
            # Files written by host-local before 0.7 hold only the container ID.
            names = held.get(line) or held.get(legacy, [])
        else:
            owners = list(self._files())
            names = [name for name, owner in owners if owner == line]
            if not names:
                names = [name for name, owner in owners if owner == legacy]
        mine = [addr for addr in map(_address, names) if addr is not None]
        for addr in mine:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.directory, str(addr)))
        return mine

    def _holding(self, owners: tuple[str, str]) -> dict[str, list[str]] | None:
        """From the watched copy: the files holding each owner text, after the temporary
        files a crash left are removed (as _files does); None without a watched copy."""
        if self._watched is None:
            return None
        held = self._watched.holding(self.directory, (*owners, ""))
        if held is None:
            return None
        self._remove_stale_temps(held.pop("", ()))
        return held

    def _remove_stale_temps(self, names: Iterable[str]) -> None:
        for name in names:
            if name.startswith(TEMP_PREFIX):
                self._remove_stale_temp(os.path.join(self.directory, name))

    def owners(self) -> list[tuple[IPAddress, Owner]]:
        return [(addr, parse_owner(text)) for addr, text in self.reservations()]

    def remove(self, addr: IPAddress) -> bool:
        try:
            os.unlink(os.path.join(self.directory, str(addr)))
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise IOFailure(f"cannot remove the reservation of {addr}", str(exc)) from exc
        return True

    def check_writable(self) -> None:
        check_writable(self.directory)

    @staticmethod
    def _read(path: str) -> str | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ELOOP):
                return None
            raise IOFailure(f"cannot read {path}", str(exc)) from exc
        try:
            return os.read(fd, 4096).decode(errors="replace")
        finally:
            os.close(fd)


def check_writable(directory: str) -> None:
    """Create an unnamed file in the directory: proves a reservation could be written
    (a read-only or full filesystem fails) and leaves nothing behind. Also doctor's test of
    a data dir (or, before its first ADD, of the nearest directory that exists)."""
    try:
        fd = os.open(directory, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            # This filesystem has no O_TMPFILE: fall back to the permission bits.
            if os.access(directory, os.W_OK | os.X_OK):
                return
            reason = "no write permission"
        raise IOFailure(f"the IPAM data dir {directory} is not writable", reason) from exc
    os.close(fd)


def watched_entry(directory: str, name: str) -> str | None:
    """What a watched copy of the directory keeps of one entry (dirwatch's reader): as
    _files reads it, a reservation's owner text; "" for a temporary file, which the next
    caller holding the lock removes; None for anything else, or when it is gone."""
    if name == LOCK_NAME or name.startswith(LAST_RESERVED_PREFIX):
        return None
    path = os.path.join(directory, name)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IOFailure(f"cannot read {path}", str(exc)) from exc
    if name.startswith(TEMP_PREFIX):
        return ""
    if not stat.S_ISREG(mode):
        return None
    text = DiskStore._read(path)
    return None if text is None else text.strip()


def may_be_reservation(entry: os.DirEntry[str]) -> bool:
    """A file of the data dir that may be a reservation: a plain file (no symlink) other than
    the lock, a last-reserved hint or a temporary file. inspect lists the dir by this too."""
    name = entry.name
    if name == LOCK_NAME or name.startswith((LAST_RESERVED_PREFIX, TEMP_PREFIX)):
        return False
    return entry.is_file(follow_symlinks=False)


def _address(name: str) -> IPAddress | None:
    """A reservation's file name as its address; None for any other name."""
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None
