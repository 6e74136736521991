"""Kernel failures as typed errors, without importing pyroute2 (the verbs and fakes use it)."""

from __future__ import annotations

import os

from cni_bridge_py.errors import IOFailure


class KernelError(IOFailure):
    """A netlink call failed; `errno` is the kernel's answer."""

    def __init__(self, doing: str, err: int, text: str = "") -> None:
        super().__init__(f"{doing}: {text or os.strerror(err)}")
        self.errno = err
