"""IPAM as the verbs get it in the fake world: the real engine over in-memory stores, its
changes (add, delete, gc) logged in the shared Calls and able to fail when armed."""

from __future__ import annotations

from collections.abc import Callable, Sequence, Set
from typing import TypeVar

from cni_bridge_py.errors import IOFailure
from cni_bridge_py.ipam.allocator import Attachment
from cni_bridge_py.ipam.interface import Ipam, IpamResult
from cni_bridge_py.netaddr import IPAddress, IPInterface
from tests.doubles.calls import Calls
from tests.doubles.store import MemoryStore

T = TypeVar("T")


class RecordingIpam:
    def __init__(self, inner: Ipam, calls: Calls) -> None:
        self.inner = inner
        self.calls = calls

    def ready(self) -> None:
        self.inner.ready()

    def add(self, who: Attachment) -> IpamResult:
        return self._logged("add", _name(who), lambda: self.inner.add(who))

    def delete(self, who: Attachment) -> list[IPInterface]:
        return self._logged("delete", _name(who), lambda: self.inner.delete(who))

    def check(self, who: Attachment, likely: Sequence[IPAddress] = ()) -> None:
        self.inner.check(who, likely)

    def gc(self, valid: Set[tuple[str, str]]) -> list[IPAddress]:
        return self._logged("gc", "*", lambda: self.inner.gc(valid))

    def status(self) -> None:
        self.inner.status()

    def _logged(self, op: str, target: str, run: Callable[[], T]) -> T:
        self.calls.hit("ipam", op, target, fail=_failure)
        try:
            return run()
        except Exception:
            # The engine's own refusal (a full range, a duplicate): logged as a failed call.
            self.calls.refuse()
            raise


def _name(who: Attachment) -> str:
    return f"{who.container_id}/{who.ifname}"


def _failure(code: int) -> Exception:
    return IOFailure("host-local: cannot write the reservation", f"errno {code}, injected")


class ReadOnlyStore(MemoryStore):
    """A store whose directory cannot take a new reservation (a read-only filesystem)."""

    def check_writable(self) -> None:
        raise IOFailure("the IPAM data dir is not writable", "Read-only file system")
