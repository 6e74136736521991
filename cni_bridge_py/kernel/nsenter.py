"""Run a little work inside another network namespace: what it opens there (a netlink
socket, /proc/sys/net files) belongs to that namespace for its whole life.

setns(CLONE_NEWNET) moves only the calling thread. An agent's request runs on one of its
acceptor threads, so that thread enters the namespace and comes back (~25 us here). Starting
a thread for the same work costs ~110 us more, once per namespace entry (twice per ADD, once
per CHECK and DEL), and a request's thread is never the main thread, whose namespace
/proc/self/ns/net names for the whole process (nft_transport.in_process_netns). So the main
thread alone (a one-shot run) still sends the work to a short-lived thread and never moves.

A thread that cannot come back must not run anything else: every socket it opened later
would be in the container's namespace. As the Go plugins' ns.Do panics there, the process
ends; an agent's supervisor starts another worker, and the front answers the ADD it was
serving "try again" (agent/client.py). setns back to a namespace file held open can fail only
for want of kernel memory.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from typing import TypeVar

from cni_bridge_py.kernel.netns import CLONE_NEWNET

_STRANDED_EXIT = 70  # EX_SOFTWARE

T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)


def in_netns(netns_fd: int, work: Callable[[], T]) -> T:
    """`work()` run by a thread inside the network namespace `netns_fd`; raises OSError
    when the namespace cannot be entered, and whatever `work` raises."""
    if threading.current_thread() is threading.main_thread():
        return _in_short_lived_thread(netns_fd, work)
    return _here_and_back(netns_fd, work)


def _here_and_back(netns_fd: int, work: Callable[[], T]) -> T:
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _enter(netns_fd)
        try:
            return work()
        finally:
            if _libc.setns(home, CLONE_NEWNET) != 0:
                _stranded(ctypes.get_errno())
    finally:
        os.close(home)


def _in_short_lived_thread(netns_fd: int, work: Callable[[], T]) -> T:
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        # The thread ends with the work, never leaving the namespace: nothing to come back to.
        try:
            _enter(netns_fd)
            outcome.append(work())
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=run, name="netns", daemon=True)
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
    return outcome[0]


def _enter(netns_fd: int) -> None:
    if _libc.setns(netns_fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")


def _stranded(code: int) -> None:
    message = (
        "cni-bridge-py: a thread cannot return to its own network namespace after setns "
        f"({os.strerror(code)}); ending the process, as nothing more may run on that thread\n"
    )
    try:
        os.write(2, message.encode())
    finally:
        os._exit(_STRANDED_EXIT)
