"""nsenter's one fatal case, without root: a thread that entered a namespace and cannot come
back ends the process (as the Go plugins' ns.Do panics) instead of running on in the wrong
namespace. Run in a child interpreter with a stand-in for libc's setns."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import ctypes, os, threading
from cni_bridge_py.kernel import nsenter

class Libc:
    calls = 0
    def setns(self, fd, kind):
        Libc.calls += 1
        if Libc.calls == 1:
            return 0  # entered
        ctypes.set_errno(12)  # ENOMEM: cannot come back
        return -1

nsenter._libc = Libc()
fd = os.open("/proc/self/stat", os.O_RDONLY)

def request():
    nsenter.in_netns(fd, lambda: print("work ran", flush=True))
    print("went on after the failure", flush=True)

thread = threading.Thread(target=request)
thread.start()
thread.join()
print("the process went on", flush=True)
"""


def test_a_thread_that_cannot_come_back_ends_the_process() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 70, proc.stderr
    assert proc.stdout == "work ran\n"
    assert "cannot return to its own network namespace" in proc.stderr
    assert "Cannot allocate memory" in proc.stderr
