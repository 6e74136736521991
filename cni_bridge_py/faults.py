"""The crash and rollback tests' hook: CNI_BRIDGE_PY_FAULT names a step of ADD or DEL.

"<step>" fails right after `step` (the rollback tests prove a failed ADD leaves nothing);
"kill:<step>" dies there by SIGKILL, as a crash would, so no rollback runs (the crash tests
prove GC or a later DEL recovers). Unset, every fault point is a no-op.
"""

from __future__ import annotations

from cni_bridge_py.errors import IOFailure

TYPE_CHECKING = False  # not typing's (the front imports this module for FAULT_ENV)
if TYPE_CHECKING:
    from cni_bridge_py.request import Request

FAULT_ENV = "CNI_BRIDGE_PY_FAULT"


def fault_point(request: Request, step: str) -> None:
    if not request.fault:
        return
    if request.fault == step:
        raise IOFailure(f"injected fault after step {step!r}", f"test hook {FAULT_ENV}")
    if request.fault == f"kill:{step}":
        import os  # noqa: PLC0415 - only the crash tests get here
        import signal  # noqa: PLC0415

        os.kill(os.getpid(), signal.SIGKILL)
