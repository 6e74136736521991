"""How nft commands reach the kernel (pure): the result of one command, and what runs it
(nft_lib in process, or nft_binary as a process)."""

from __future__ import annotations

import os
from typing import Protocol

from cni_bridge_py.record import record


@record(frozen=True)
class Outcome:
    ok: bool
    output: str
    error: str


class Transport(Protocol):
    def run(self, commands: str, *, json: bool = False, handles: bool = False) -> Outcome:
        """Run nft commands (text, or a JSON document with json=True, which also makes the
        output JSON); `handles` adds `# handle N` to the rules of a text listing and prints
        chain priorities as numbers."""


def in_process_netns() -> bool:
    """Whether the calling thread is in the network namespace of the process's main thread:
    setns moves only the thread that calls it, and a kept netlink socket reaches the
    namespace it was made in, so only such a thread may use one."""
    return _netns("thread-self") == _netns("self")


def _netns(task: str) -> tuple[int, int]:
    found = os.stat(f"/proc/{task}/ns/net")
    return found.st_dev, found.st_ino
