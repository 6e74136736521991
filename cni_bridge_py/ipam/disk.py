"""host-local's on-disk store, byte-compatible with the reference plugin.

<dataDir>/<network>/<ip> holds "<containerID>\\r\\n<ifname>" (no newline), created with O_EXCL,
mode 0600; last_reserved_ip.<rangeSet> holds the last address handed out; `lock` is flock()ed.
The reference and this store can share one directory.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import os
import time
from collections.abc import Iterator

from cni_bridge_py.errors import IOFailure, TryAgainLater
from cni_bridge_py.ipam.store import LINE_BREAK, Owner, parse_owner
from cni_bridge_py.netaddr import IPAddress

LOCK_NAME = "lock"
LAST_RESERVED_PREFIX = "last_reserved_ip."
LOCK_TIMEOUT_S = 30.0


def _owner_line(container_id: str, ifname: str) -> str:
    return container_id.strip() + LINE_BREAK + ifname


class DiskStore:
    def __init__(self, data_dir: str, network: str, lock_timeout: float = LOCK_TIMEOUT_S) -> None:
        # `network` is validated by config (no "/" or ".."), so the join stays inside data_dir.
        self.directory = os.path.join(data_dir, network)
        self.lock_timeout = lock_timeout
        try:
            os.makedirs(self.directory, mode=0o755, exist_ok=True)
        except OSError as exc:
            raise IOFailure(f"cannot create the IPAM data dir {self.directory}", str(exc)) from exc

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        path = os.path.join(self.directory, LOCK_NAME)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o750)
        except OSError as exc:
            raise IOFailure(f"cannot open the IPAM lock {path}", str(exc)) from exc
        try:
            self._flock(fd, path)
            yield
        finally:
            os.close(fd)  # closing drops the flock

    def _flock(self, fd: int, path: str) -> None:
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TryAgainLater(
                        f"the IPAM lock {path} is held by another process",
                        f"waited {self.lock_timeout:g}s; retry the request",
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    def reserve(self, container_id: str, ifname: str, addr: IPAddress, range_id: int) -> bool:
        path = os.path.join(self.directory, str(addr))
        try:
            fd = os.open(
                path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
            )
        except FileExistsError:
            return False
        except OSError as exc:
            raise IOFailure(f"cannot reserve {addr} in {self.directory}", str(exc)) from exc
        try:
            try:
                os.write(fd, _owner_line(container_id, ifname).encode())
            finally:
                os.close(fd)
            self._write_last_reserved(range_id, addr)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise IOFailure(f"cannot record the reservation of {addr}", str(exc)) from exc
        return True

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
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.name == LOCK_NAME or entry.name.startswith(LAST_RESERVED_PREFIX):
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            try:
                addr = ipaddress.ip_address(entry.name)
            except ValueError:
                continue
            text = self._read(entry.path)
            if text is not None:
                yield addr, text.strip()

    def owned_by(self, container_id: str, ifname: str) -> list[IPAddress]:
        line = _owner_line(container_id, ifname)
        legacy = container_id.strip()
        return [addr for addr, owner in self.reservations() if owner in (line, legacy)]

    def release(self, container_id: str, ifname: str) -> list[IPAddress]:
        line = _owner_line(container_id, ifname)
        owners = list(self.reservations())
        mine = [addr for addr, owner in owners if owner == line]
        if not mine:
            # Files written by host-local before 0.7 hold only the container ID.
            mine = [addr for addr, owner in owners if owner == container_id.strip()]
        for addr in mine:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.directory, str(addr)))
        return mine

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
        """Create an unnamed file in the directory: proves a reservation could be written
        (a read-only or full filesystem fails) and leaves nothing behind."""
        try:
            fd = os.open(self.directory, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                # This filesystem has no O_TMPFILE: fall back to the permission bits.
                if os.access(self.directory, os.W_OK | os.X_OK):
                    return
                reason = "no write permission"
            raise IOFailure(f"the IPAM data dir {self.directory} is not writable", reason) from exc
        os.close(fd)

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
