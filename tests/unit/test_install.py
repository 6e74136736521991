from __future__ import annotations

import os
from pathlib import Path

import pytest

from cni_bridge_py.install import install, uninstall


def test_install_writes_launchers_and_aliases_and_uninstall_removes_exactly_them(
    tmp_path: Path,
) -> None:
    neighbour = tmp_path / "portmap"
    neighbour.write_text("not ours")
    written = install(tmp_path, python="/opt/py/bin/python3", aliases=("bridge", "host-local"))
    assert sorted(p.name for p in written) == [
        "bridge",
        "cni-bridge-py",
        "cni-host-local-py",
        "host-local",
    ]
    launcher = (tmp_path / "cni-bridge-py").read_text()
    assert launcher.startswith("#!/opt/py/bin/python3 -I\n")
    assert os.access(tmp_path / "cni-bridge-py", os.X_OK)
    assert os.readlink(tmp_path / "bridge") == "cni-bridge-py"
    assert os.readlink(tmp_path / "host-local") == "cni-host-local-py"

    removed = uninstall(tmp_path, aliases=("bridge", "host-local"))
    assert len(removed) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["portmap"]


def test_an_alias_never_replaces_a_foreign_file(tmp_path: Path) -> None:
    reference = tmp_path / "bridge"
    reference.write_bytes(b"\x7fELF reference plugin")
    with pytest.raises(SystemExit, match="not ours"):
        install(tmp_path, aliases=("bridge",))
    assert reference.read_bytes() == b"\x7fELF reference plugin"
    assert uninstall(tmp_path, aliases=("bridge",)) == []
    assert reference.exists()
