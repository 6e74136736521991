"""The verb table, as the CNI skeleton's: a validated request in, its stdout back.

The process edge (cli, the agent) passes `dispatch` to front.handle; nothing in the front
imports this module, so VERSION and every argument or config error are answered without it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from cni_bridge_py import config
from cni_bridge_py.ports import Background, Ports
from cni_bridge_py.request import Handler, Notes, Request
from cni_bridge_py.verbs import add, check, delete, gc, status

if TYPE_CHECKING:
    from cni_bridge_py.config_memo import ParsedConfigs
    from cni_bridge_py.ipam.dirwatch import WatchedDirs  # ctypes: the agent's only
    from cni_bridge_py.lookups import Lookups

# The verbs that print nothing on success (ADD prints its result).
SILENT: dict[str, Callable[[Request, config.NetConf, Ports], object]] = {
    "DEL": delete.delete,
    "CHECK": check.check,
    "GC": gc.gc,
    "STATUS": status.status,
}


def dispatch(request: Request, notes: Notes) -> str:
    """Run one validated request on the real kernel, firewall and store."""
    return dispatch_with(None)(request, notes)


def dispatch_with(
    background: Background | None,
    watched: WatchedDirs | None = None,
    configs: ParsedConfigs | None = None,
    lookups: Lookups | None = None,
) -> Handler:
    """The dispatch of a resident process (the agent): it can finish slow work after
    answering, keep a copy of the IPAM data dirs that inotify keeps current, keep the
    configs it parsed (config_memo), and keep where the host's tools are (lookups)."""
    parse = prepare if configs is None else configs.parse

    def run_request(request: Request, notes: Notes) -> str:
        from cni_bridge_py.verbs.system import system_ports  # noqa: PLC0415 - loads pyroute2

        started = time.perf_counter()
        conf = parse(request)
        if conf.cluster is not None:
            # The node's leased subnet, from its local file (no etcd on the plugin's path).
            from cni_bridge_py.cluster.leased import with_lease  # noqa: PLC0415

            conf = with_lease(conf, request.command)
        return run_logged(
            request,
            conf,
            notes,
            lambda: system_ports(request, notes, background, watched, lookups),
            started,
        )

    return run_request


def run_logged(
    request: Request,
    conf: config.NetConf,
    notes: Notes,
    open_ports: Callable[[], AbstractContextManager[Ports]],
    started: float,
) -> str:
    """`run` over the ports `open_ports` opens, with the request's log line when the config
    names a logFile (its failure too: the line is written as the error leaves)."""
    if not conf.log_file:
        with open_ports() as ports:
            return run(request, conf, ports)
    from cni_bridge_py.log import RequestLog  # noqa: PLC0415 - only a logging config pays

    log = RequestLog(
        request,
        notes,
        network=conf.name,
        path=conf.log_file,
        level=conf.log_level,
        started=started,
    )
    with log:
        log.detail = {"bridge": conf.bridge}
        with open_ports() as ports:
            ports.steps = log.steps
            return run(request, conf, ports)


def prepare(request: Request) -> config.NetConf:
    """Everything a verb checks before it changes anything: the whole config, as this verb
    reads it (pure)."""
    return config.parse(request.config, request.cni_version, request.args, request.command)


def run(request: Request, conf: config.NetConf, ports: Ports) -> str:
    if request.command == "ADD":
        return add.add(request, conf, ports).to_json(conf.cni_version)
    SILENT[request.command](request, conf, ports)  # the front admits only these verbs
    return ""
