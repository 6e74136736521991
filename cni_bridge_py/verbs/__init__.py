"""The verbs: ADD, DEL, CHECK, GC and STATUS, each orchestrating the ports."""

from __future__ import annotations

import os
import signal

from cni_bridge_py import config
from cni_bridge_py.errors import IOFailure
from cni_bridge_py.front import Request
from cni_bridge_py.ports import Ports


def dispatch(request: Request) -> str:
    """Run one validated request on the real kernel; returns stdout."""
    from cni_bridge_py.verbs.system import system_ports  # noqa: PLC0415 - loads pyroute2

    conf = config.parse(request.config, request.cni_version, request.args)
    with system_ports(request) as ports:
        return run(request, conf, ports)


def run(request: Request, conf: config.NetConf, ports: Ports) -> str:
    """The verb table, as the CNI skeleton's: ADD prints its result, the others nothing."""
    from cni_bridge_py.verbs import add, check, delete, gc, status  # noqa: PLC0415

    if request.command == "ADD":
        return add.add(request, conf, ports).to_json(conf.cni_version)
    silent = {
        "DEL": delete.delete,
        "CHECK": check.check,
        "GC": gc.gc,
        "STATUS": status.status,
    }
    silent[request.command](request, conf, ports)  # the front admits only these verbs
    return ""


def fault_point(request: Request, step: str) -> None:
    """The crash and rollback tests' hook (CNI_BRIDGE_PY_FAULT): "<step>" fails right after
    `step`; "kill:<step>" dies there by SIGKILL, as a crash would (no rollback runs)."""
    if not request.fault:
        return
    if request.fault == step:
        raise IOFailure(f"injected fault after step {step!r}", "test hook CNI_BRIDGE_PY_FAULT")
    if request.fault == f"kill:{step}":
        os.kill(os.getpid(), signal.SIGKILL)
