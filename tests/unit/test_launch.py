"""cli.launch, the launcher's entry: a plugin call ends without the interpreter's finalization,
its answer flushed and its exit code kept; under a profiler or coverage it ends as usual."""

from __future__ import annotations

import subprocess
import sys

# An entry that leaves its answer in stdout's buffer and registers a finalization-time step.
SCRIPT = """
import atexit, sys
from cni_bridge_py.cli import launch
atexit.register(lambda: sys.stderr.write("finalized\\\\n"))
def entry():
    sys.stdout.write('{"cniVersion": "1.1.0"}')
    return 7
if sys.argv[1] == "profiled":
    import cProfile
    cProfile.Profile().enable()
launch(entry)
"""


def _run(mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, mode],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_plugin_call_ends_at_once_with_its_answer_and_code() -> None:
    done = _run("plain")
    assert (done.returncode, done.stdout) == (7, '{"cniVersion": "1.1.0"}')
    assert "finalized" not in done.stderr  # no finalization: nothing after the answer


def test_under_a_profiler_the_process_ends_as_usual() -> None:
    done = _run("profiled")
    assert (done.returncode, done.stdout) == (7, '{"cniVersion": "1.1.0"}')
    assert "finalized" in done.stderr


def test_a_subcommand_ends_as_usual() -> None:
    script = (
        "import atexit, sys\n"
        "from cni_bridge_py.cli import launch\n"
        "atexit.register(lambda: sys.stderr.write('finalized'))\n"
        "sys.argv = ['cni-bridge-py', 'agent', '--help']\n"
        "launch()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "--socket" in done.stdout
    assert "finalized" in done.stderr
