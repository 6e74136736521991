"""The reference capture the unit tests carry (tests/data/reference/direct) is still what the
installed reference plugins print and leave: scripts/capture-reference.sh, run again into a
temporary directory, makes the same files, equal byte for byte but for the MAC addresses and
the host veth's name, which are random on every run."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.reference import CAPTURE, CAPTURE_SCRIPT

RANDOM = {"add-red.stdout", "check-red.stdin.json"}  # hold MACs and a veth name
MAC = re.compile(r"\b(?:[0-9a-f]{2}:){5}[0-9a-f]{2}\b")
VETH = re.compile(r"\bveth[0-9a-f]{8}\b")


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def masked(text: str) -> str:
    return VETH.sub("<veth>", MAC.sub("<mac>", text))


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "direct"
    proc = subprocess.run(
        ["bash", str(CAPTURE_SCRIPT), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return out


def test_the_script_makes_exactly_the_carried_files(fresh: Path) -> None:
    assert files(fresh) == files(CAPTURE)


@pytest.mark.parametrize("name", sorted(set(files(CAPTURE)) - RANDOM))
def test_a_fixed_file_is_byte_for_byte_the_same(fresh: Path, name: str) -> None:
    assert (fresh / name).read_bytes() == (CAPTURE / name).read_bytes()


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_a_result_differs_only_in_random_values(fresh: Path, name: str) -> None:
    carried, again = (CAPTURE / name).read_text(), (fresh / name).read_text()
    assert MAC.search(carried) and VETH.search(carried)  # else the masking would prove nothing
    assert masked(again) == masked(carried)
