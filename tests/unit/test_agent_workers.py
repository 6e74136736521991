"""The agent's worker processes (agent.workers): they serve requests on the first process's
socket, stop with it on SIGTERM, and end by themselves when it dies without passing one on."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cni_bridge_py.agent.protocol import decode_reply, encode_request, netns_identity, read_frame
from cni_bridge_py.agent.workers import MAX_DEFAULT, default_count

ROOT = Path(__file__).resolve().parents[2]
ERROR_ENV = {
    b"CNI_COMMAND": b"ADD",
    b"CNI_CONTAINERID": b"c1",
    b"CNI_NETNS": b"/var/run/netns/x",
    b"CNI_IFNAME": b"eth0",
    b"CNI_PATH": b"/opt/cni/bin",
}


def test_the_default_is_one_worker_per_cpu_up_to_a_bound() -> None:
    assert 1 <= default_count() <= MAX_DEFAULT
    assert default_count() == min(MAX_DEFAULT, len(os.sched_getaffinity(0)))


class Agent:
    def __init__(self, tmp_path: Path, workers: int) -> None:
        self.path = tmp_path / "agent.sock"
        self.log = tmp_path / "agent.log"
        argv = [sys.executable, "-m", "cni_bridge_py", "agent", "--socket", str(self.path)]
        with self.log.open("wb") as sink:
            self.proc = subprocess.Popen(
                [*argv, "--workers", str(workers)], cwd=ROOT, stdout=sink, stderr=sink
            )
        _wait_for(lambda: "listening on" in self.log.read_text(), what="the agent to listen")
        # The socket listens (and queues) before the workers are forked.
        _wait_for(lambda: len(self.workers()) == workers, what="the workers")

    def workers(self) -> list[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return [int(pid) for pid in children.split()]

    def ask(self) -> int:
        """A malformed ADD: answered with the decoding error's code, by whichever process."""
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(30)
            conn.connect(str(self.path))
            conn.sendall(encode_request(ERROR_ENV, b"{not json", netns_identity()))
            reply = decode_reply(read_frame(conn))
        assert reply is not None and reply[0] == 1, self.log.read_text()
        code: int = json.loads(reply[1])["code"]
        return code


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    started = Agent(tmp_path, workers=3)
    try:
        yield started
    finally:
        # Only the process this test started: its workers end with it (the parent-death
        # signal), and a pid of theirs may already belong to someone else.
        if started.proc.poll() is None:
            started.proc.kill()
        started.proc.wait(timeout=30)


def test_the_workers_serve_and_the_supervisor_does_not(agent: Agent) -> None:
    assert len(agent.workers()) == 3
    assert "; 3 processes" in agent.log.read_text()
    os.kill(agent.proc.pid, signal.SIGSTOP)
    try:
        assert [agent.ask() for _ in range(5)] == [6] * 5
    finally:
        os.kill(agent.proc.pid, signal.SIGCONT)


def test_a_worker_that_dies_is_replaced(agent: Agent) -> None:
    first, *others = agent.workers()
    os.kill(first, signal.SIGKILL)
    _wait_for(
        lambda: (
            f"agent worker {first} ended (killed by signal 9); starting another"
            in agent.log.read_text()
        ),
        what="the supervisor to notice",
    )
    _wait_for(lambda: len(agent.workers()) == 3, what="a new worker")
    assert set(others) < set(agent.workers())
    assert [agent.ask() for _ in range(5)] == [6] * 5


def test_sigterm_stops_every_process_and_removes_the_socket(agent: Agent) -> None:
    workers = agent.workers()
    agent.ask()
    agent.proc.send_signal(signal.SIGTERM)
    assert agent.proc.wait(timeout=30) == 0
    _wait_for(lambda: not any(_alive(pid) for pid in workers), what="the workers to end")
    assert not agent.path.exists()
    assert "worker failed" not in agent.log.read_text()


def test_workers_end_when_the_first_process_is_killed(agent: Agent) -> None:
    workers = agent.workers()
    os.kill(agent.proc.pid, signal.SIGKILL)
    agent.proc.wait(timeout=30)
    _wait_for(lambda: not any(_alive(pid) for pid in workers), what="the workers to end")


def _alive(pid: int) -> bool:
    """Running, and not a zombie (a worker's parent, init here, may not have reaped it yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_for(done: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


SIGTERM_DURING_FORK = """
import os, signal, sys
from cni_bridge_py.agent.workers import Workers

class Stop(BaseException):
    pass

def stop(_signum, _frame):
    raise Stop

signal.signal(signal.SIGTERM, stop)
# As if SIGTERM arrived while os.fork ran the at-fork callbacks (logging registers some):
# raised there, the handler's exception would be printed and dropped.
os.register_at_fork(after_in_parent=lambda: os.kill(os.getpid(), signal.SIGTERM))
workers = Workers(lambda: None, print)
try:
    workers.start(1)
except Stop:
    os.waitpid(next(iter(workers.started)), 0)
    print("stopped, worker counted:", len(workers.started))
    sys.exit(0)
print("SIGTERM lost")
sys.exit(1)
"""


def test_a_sigterm_while_forking_a_worker_is_not_lost() -> None:
    """The supervisor holds its stop signals while it forks: a SIGTERM that arrives then is
    delivered after the fork, not dropped inside Python's at-fork callbacks (the agent used
    to keep serving, rarely, when stopped right as it started)."""
    done = subprocess.run(
        [sys.executable, "-c", SIGTERM_DURING_FORK],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "stopped, worker counted: 1" in done.stdout
    assert "Exception ignored" not in done.stderr
