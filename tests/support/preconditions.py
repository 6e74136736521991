"""What a root suite needs of the machine, checked once per session by its `root` fixture."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import pytest


def require_root(suite: str, tools: Iterable[str] = (), files: Iterable[Path] = ()) -> None:
    """Skip without root (a developer's plain `pytest` runs the rest); fail when a tool or file
    is missing, because then the suite would test nothing while looking green."""
    if os.geteuid() != 0:
        pytest.skip(f"{suite} needs root (network namespaces, bridges, iptables, nftables)")
    missing = [t for t in tools if shutil.which(t) is None]
    missing += [str(f) for f in files if not f.is_file()]
    if missing:
        pytest.fail(f"{suite} needs {missing}: `make deps` installs them")
