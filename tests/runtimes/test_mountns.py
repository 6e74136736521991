"""The private mount namespaces the runtime suites run in (mountns.py): a holder that ends
early must say how, not leave a later step to fail without a reason."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.runtimes.mountns import MountNamespace


def test_a_holder_that_ended_says_how_at_the_next_use(root: None, tmp_path: Path) -> None:
    ns = MountNamespace(tmp_path / "mnt")
    try:
        assert os.readlink(f"/proc/{ns.pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
        assert ns.exists(Path("/proc"))
        os.kill(ns.pid, signal.SIGKILL)  # the holder this test started
        os.waitid(os.P_PID, ns.pid, os.WEXITED | os.WNOWAIT)
        with pytest.raises(AssertionError, match=r"holder has exited: killed by signal 9$"):
            ns.argv("true")
    finally:
        ns.close()
