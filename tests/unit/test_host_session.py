"""netlink.host_session keeps its socket per thread between sessions (an agent's request
thread serves one request after another), and never shares one between sessions alive at once,
threads or processes. A NETLINK_ROUTE socket needs no privilege. Run in a child interpreter:
importing kernel.netlink installs rtnl's stand-in pyroute2 package, which this process's
other tests must not see."""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = """
import json, os, threading
from cni_bridge_py.kernel.netlink import host_session

def socket_of_session():
    with host_session() as session:
        return session.sock

seen = {}
seen["reused"] = socket_of_session() is socket_of_session()
with host_session() as outer, host_session() as inner:
    seen["nested apart"] = outer.sock is not inner.sock
before = socket_of_session()
try:
    with host_session() as session:
        seen["failing one had it"] = session.sock is before
        raise ValueError("the request failed")
except ValueError:
    pass
seen["failed one closed"] = before._sock.fileno() == -1
seen["next is another"] = socket_of_session() is not before
mine, theirs = socket_of_session(), []
thread = threading.Thread(target=lambda: theirs.append(socket_of_session()))
thread.start()
thread.join()
seen["threads apart"] = theirs[0] is not mine
seen["closed with its thread"] = theirs[0]._sock.fileno() == -1
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(write, b"shared" if socket_of_session() is mine else b"own")
    os._exit(0)
os.close(write)
seen["child"] = os.read(read, 16).decode()
os.waitpid(pid, 0)
print(json.dumps(seen))
"""


def test_sessions_reuse_a_thread_s_socket_and_never_share_one_alive() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "reused": True,
        "nested apart": True,
        "failing one had it": True,
        "failed one closed": True,
        "next is another": True,
        "threads apart": True,
        "closed with its thread": True,
        "child": "own",
    }
