"""kernel/nsenter.py: work runs inside the namespace asked for, and no thread of the process
is left anywhere else afterwards, whichever thread asked (an agent's request thread enters
and comes back; the main thread hands the work to a thread of its own)."""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import pytest

from cni_bridge_py.kernel.nsenter import in_netns
from tests.support.netns import NamespaceFactory

T = TypeVar("T")


def _netns_of(task: str) -> int:
    return os.stat(f"/proc/{task}/ns/net").st_ino


def _on_another_thread(work: Callable[[], T]) -> T:
    box: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            box.append(work())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return box[0]


@contextmanager
def _opened(path: str) -> Iterator[int]:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


def _seen_from_inside(fd: int) -> tuple[int, int, int]:
    """(the netns the work ran in, the calling thread's netns after, the process's after)."""
    inside = in_netns(fd, lambda: _netns_of("thread-self"))
    return inside, _netns_of("thread-self"), _netns_of("self")


@pytest.mark.parametrize("caller", ["main thread", "request thread"])
def test_work_runs_inside_and_every_thread_stays_home(
    namespaces: NamespaceFactory, caller: str
) -> None:
    target = namespaces.new("nsenter")
    home = _netns_of("self")
    with _opened(target.path) as fd:
        if caller == "main thread":
            assert threading.current_thread() is threading.main_thread()
            inside, thread_after, process_after = _seen_from_inside(fd)
        else:
            inside, thread_after, process_after = _on_another_thread(lambda: _seen_from_inside(fd))
    assert inside == os.stat(target.path).st_ino != home
    assert thread_after == process_after == home == _netns_of("thread-self")


def test_a_socket_opened_inside_sees_that_namespace(namespaces: NamespaceFactory) -> None:
    # A link made only in the target: the socket's namespace, not the thread's, decides.
    target = namespaces.new("nsenter")
    target.exec("ip", "link", "add", "nsx0", "type", "veth", "peer", "name", "nsx1")

    def index_of_nsx0() -> int:
        with _opened(target.path) as fd:
            sock = in_netns(fd, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        with sock:
            return _ifindex(sock, "nsx0")

    assert _on_another_thread(index_of_nsx0) > 0


def _ifindex(sock: socket.socket, name: str) -> int:
    """SIOCGIFINDEX on `sock`: asked in the socket's namespace (if_nametoindex opens its own)."""
    siocgifindex = 0x8933
    request = struct.pack("16si", name.encode(), 0)
    return int(struct.unpack("16si", fcntl.ioctl(sock.fileno(), siocgifindex, request))[1])


def test_an_error_inside_comes_back_with_the_thread(namespaces: NamespaceFactory) -> None:
    target = namespaces.new("nsenter")
    home = _netns_of("self")

    def fail() -> None:
        raise ValueError("inside")

    def attempt() -> int:
        with _opened(target.path) as fd, pytest.raises(ValueError, match="inside"):
            in_netns(fd, fail)
        return _netns_of("thread-self")

    assert _on_another_thread(attempt) == home


def test_a_file_that_is_no_namespace_is_refused_where_the_thread_is() -> None:
    home = _netns_of("self")

    def attempt() -> int:
        with _opened("/proc/self/stat") as fd, pytest.raises(OSError):
            in_netns(fd, lambda: None)
        return _netns_of("thread-self")

    assert _on_another_thread(attempt) == home
