"""which() answers as shutil.which(name, path=...) does."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cni_bridge_py.which import which


@pytest.fixture
def dirs(tmp_path: Path) -> str:
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
    (a / "tool").write_text("")  # not executable
    (b / "tool").write_text("#!/bin/sh\n")
    (b / "tool").chmod(0o755)
    (a / "both").mkdir()  # a directory is not a match
    (b / "both").write_text("")
    (b / "both").chmod(0o755)
    return f"{a}:{b}:{a}"


@pytest.mark.parametrize("name", ["tool", "both", "missing", "sh"])
def test_same_as_shutil(name: str, dirs: str) -> None:
    assert which(name, path=dirs) == shutil.which(name, path=dirs)


def test_empty_and_absolute(dirs: str) -> None:
    assert which("sh", path="") is None and shutil.which("sh", path="") is None
    tool = dirs.split(":")[1] + "/tool"
    assert which(tool, path="") == shutil.which(tool, path="") == tool
    assert which("sh") == shutil.which("sh")
