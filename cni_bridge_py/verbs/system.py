"""The real ports: pyroute2 sessions, /proc/sys, the disk store and the host's firewall."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING

from cni_bridge_py.firewall.backend import all_backends, default_backend, spoof_checker
from cni_bridge_py.ipam.disk import DiskStore
from cni_bridge_py.ipam.engine import ipam_for
from cni_bridge_py.kernel import netlink
from cni_bridge_py.kernel.netns import check_netns, netns_exists
from cni_bridge_py.kernel.nssysctl import write_in_netns
from cni_bridge_py.kernel.sysctl import ProcSysctl
from cni_bridge_py.lookups import DIRECT
from cni_bridge_py.ports import Background, Immediate, Links, Ports
from cni_bridge_py.request import Notes, Request

if TYPE_CHECKING:
    from cni_bridge_py.ipam.dirwatch import WatchedDirs  # ctypes: the agent's only
    from cni_bridge_py.lookups import Lookups


@contextmanager
def _open_netns(path: str) -> Iterator[Links]:
    with netlink.netns_session(path) as session:
        yield session


@contextmanager
def system_ports(
    request: Request,
    notes: Notes,
    background: Background | None = None,
    watched: WatchedDirs | None = None,
    lookups: Lookups | None = None,
) -> Iterator[Ports]:
    """`background`, `watched` and `lookups` are a resident process's (the agent): where slow
    work goes after the answer, its inotify copy of the data dirs, and where the host's tools
    are (kept until their directories change)."""
    # PATH first, as the reference's exec.LookPath("iptables"): a host that picked legacy
    # iptables through PATH gets the legacy backend. Then CNI_PATH and the usual dirs.
    dirs = [request.search_path, *request.path, "/usr/sbin:/usr/bin:/sbin:/bin"]
    path_env = ":".join(d for d in dirs if d)
    tools = (lookups or DIRECT).for_request()
    open_store = DiskStore if watched is None else partial(DiskStore, watched=watched)
    with netlink.host_session() as host:
        yield Ports(
            host=host,
            open_host=netlink.host_session,
            open_netns=_open_netns,
            sysctl=ProcSysctl(),
            ipam=lambda conf, req: ipam_for(conf, req, open_store, notes),
            masq=lambda preference: default_backend(path_env, preference, tools),
            masq_all=lambda: all_backends(path_env, tools),
            netns_exists=netns_exists,
            check_netns=check_netns,
            netns_sysctl=write_in_netns,
            random_suffix=lambda: os.urandom(4).hex(),  # secrets.token_hex(4), without secrets
            notes=notes,
            background=background or Immediate(),
            spoof=lambda: spoof_checker(path_env, tools),
            alongside=_in_thread,
        )


def _in_thread(work: Callable[[], None]) -> Callable[[], None]:
    failure: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # handed to the thread that waits
            failure.append(exc)

    worker = threading.Thread(target=run, name="alongside", daemon=True)
    worker.start()

    def wait() -> None:
        worker.join()
        if failure:
            raise failure[0]

    return wait
