"""The agent's background work: done after the answer, settled by a new ADD of the same
attachment, failures logged rather than lost."""

from __future__ import annotations

import threading

import pytest

from cni_bridge_py.agent.background import BackgroundWork


def test_settle_waits_for_the_attachments_work_only() -> None:
    work = BackgroundWork()
    release = threading.Event()
    done: list[str] = []

    def slow() -> None:
        release.wait(5)
        done.append("red")

    work.later(("red", "eth0"), slow)
    work.later(("blue", "eth0"), lambda: done.append("blue"))
    work.settle(("blue", "eth0"))
    assert "blue" in done and "red" not in done  # another attachment is not waited for
    threading.Timer(0.05, release.set).start()
    work.settle(("red", "eth0"))
    assert done[-1] == "red"
    work.settle(("red", "eth0"))  # nothing pending: returns at once


def test_a_failure_goes_to_the_agents_log_and_does_not_block(
    capsys: pytest.CaptureFixture[str],
) -> None:
    work = BackgroundWork()

    def broken() -> None:
        raise RuntimeError("the kernel said no")

    work.later(("red", "eth0"), broken)
    work.drain()
    assert "background work of red/eth0 failed" in capsys.readouterr().err
    work.settle(("red", "eth0"))
