"""The call log and the fault switchboard one fake world shares across its namespaces, its
firewall and its IPAM: rollback order is only visible in a single log of every change.

An entry reads "<where> <op> <target> [details]", e.g. "host attach_port veth00000001 cni0"
or "red add_address eth0 10.0.0.2/24". A call that an armed fault made fail is logged too,
with " !failed" appended, so a test can read exactly what ran after the failure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

FAILED = " !failed"


@dataclass
class Fault:
    where: str
    op: str
    # None: any target of that op in that place.
    target: str | None
    # None: the fake builds the error the real module raises for this call.
    error: Exception | None
    errno: int
    # How many more calls fail; the switchboard forgets the fault at zero.
    times: int


class Calls:
    def __init__(self) -> None:
        self.log: list[str] = []
        self._faults: list[Fault] = []

    def arm(
        self,
        where: str,
        op: str,
        target: str | None = None,
        *,
        error: Exception | None = None,
        errno: int = 1,
        times: int = 1,
    ) -> None:
        """Make the next `times` matching calls fail (errno 1 is EPERM, the usual refusal)."""
        self._faults.append(Fault(where, op, target, error, errno, times))

    def hit(
        self,
        where: str,
        op: str,
        target: str,
        details: str = "",
        *,
        fail: Callable[[int], Exception],
        logged: bool = True,
    ) -> None:
        """Log a call (reads only when they fail), then raise if a fault is armed for it;
        `fail(errno)` builds the error the real module would raise."""
        entry = f"{where} {op} {target}" + (f" {details}" if details else "")
        fault = self._take(where, op, target)
        if fault is None:
            if logged:
                self.log.append(entry)
            return
        self.log.append(entry + FAILED)
        raise fault.error if fault.error is not None else fail(fault.errno)

    def _take(self, where: str, op: str, target: str) -> Fault | None:
        for fault in self._faults:
            if (fault.where, fault.op) == (where, op) and fault.target in (None, target):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def refuse(self) -> None:
        """Mark the latest call failed: the fake's own model refused it (a name taken, a link
        gone), as the kernel would have."""
        self.log[-1] += FAILED

    def after_failure(self) -> list[str]:
        """What ran after the first failed call: for ADD, its rollback."""
        failed = next(i for i, entry in enumerate(self.log) if entry.endswith(FAILED))
        return self.log[failed + 1 :]

    def mark(self) -> int:
        return len(self.log)

    def since(self, mark: int) -> list[str]:
        return self.log[mark:]
