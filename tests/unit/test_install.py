from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import cni_bridge_py
from cni_bridge_py.install import (
    EXECUTABLES,
    install,
    launcher_interpreter,
    launcher_shell_part,
    launcher_text,
    site_paths,
    uninstall,
)
from cni_bridge_py.version import version_json
from tests.doubles.agent import FakeAgent

SOURCE_DIR = Path(cni_bridge_py.__file__).resolve().parents[1]
VERSION_ENV = {"CNI_COMMAND": "VERSION"}
ADD_ENV = {
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "c1",
    "CNI_NETNS": "/var/run/netns/x",
    "CNI_IFNAME": "eth0",
    "CNI_PATH": "/opt/cni/bin",
}


def test_install_writes_launchers_and_aliases_and_uninstall_removes_exactly_them(
    tmp_path: Path,
) -> None:
    neighbour = tmp_path / "portmap"
    neighbour.write_text("not ours")
    written = install(
        tmp_path,
        python="/opt/py/bin/python3",
        aliases=("bridge", "host-local"),
        paths=["/opt/venv/site-packages", "/opt/src"],
    )
    assert sorted(p.name for p in written) == [
        "bridge",
        "cni-bridge-py",
        "cni-host-local-py",
        "host-local",
    ]
    launcher = (tmp_path / "cni-bridge-py").read_text()
    assert launcher.startswith("#!/bin/sh\n")
    assert launcher_interpreter(launcher) == ["/opt/py/bin/python3", "-IS"]
    assert "sys.path += ['/opt/venv/site-packages', '/opt/src']\n" in launcher
    assert os.access(tmp_path / "cni-bridge-py", os.X_OK)
    assert (
        "from cni_bridge_py.ipam.plugin import main" in (tmp_path / "cni-host-local-py").read_text()
    )
    assert os.readlink(tmp_path / "bridge") == "cni-bridge-py"
    assert os.readlink(tmp_path / "host-local") == "cni-host-local-py"

    removed = uninstall(tmp_path, aliases=("bridge", "host-local"))
    assert len(removed) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["portmap"]


def test_an_alias_never_replaces_a_foreign_file(tmp_path: Path) -> None:
    reference = tmp_path / "bridge"
    reference.write_bytes(b"\x7fELF reference plugin")
    with pytest.raises(SystemExit, match="not ours"):
        install(tmp_path, aliases=("bridge",), paths=[])
    assert reference.read_bytes() == b"\x7fELF reference plugin"
    assert uninstall(tmp_path, aliases=("bridge",)) == []
    assert reference.exists()


def test_the_launcher_runs_isolated_without_site_on_exactly_its_paths() -> None:
    """-I (no PYTHON* variables, no user site) and -S (no site: ~4 ms and every .pth file);
    the paths come after the stdlib's."""
    text = launcher_text("/venv/bin/python", ["/venv/site", "/src"])
    assert text.splitlines()[0] == "#!/bin/sh"
    assert 'exec \'/venv/bin/python\' -IS "$0" "$@"' in text.splitlines()
    assert launcher_interpreter(text) == ["/venv/bin/python", "-IS"]
    assert "sys.path += ['/venv/site', '/src']" in text.splitlines()
    assert text.rstrip().splitlines()[-2:] == ["from cni_bridge_py.cli import launch", "launch()"]


def test_the_package_is_looked_up_on_its_own_entry_first_and_alone() -> None:
    """Only `import cni_bridge_py` sees its entry first: no entry before it is listed for it
    (site-packages has dozens of names), and sys.path is as before for everything else."""
    site_packages = str(Path(pytest.__file__).resolve().parents[1])
    paths = [site_packages, str(SOURCE_DIR)]
    text = launcher_text(sys.executable, paths, home=str(SOURCE_DIR))
    lines = text.splitlines()
    at = lines.index(f"sys.path += {paths!r}")
    assert lines[at + 1 : at + 5] == [
        f"sys.path.insert(0, {str(SOURCE_DIR)!r})",
        "import cni_bridge_py",
        "del sys.path[0]",
        "from cni_bridge_py.cli import launch",
    ]
    probe = text.replace("launch()\n", "") + (
        "import json\n"
        "print(json.dumps([sys.path[-2:], cni_bridge_py.__file__, "
        f"{site_packages!r} in sys.path_importer_cache, sys.path.count({str(SOURCE_DIR)!r})]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-IS", "-c", probe], capture_output=True, check=True, timeout=60
    )
    tail, package, listed, count = json.loads(out.stdout)
    assert tail == paths and count == 1
    assert package == str(SOURCE_DIR / "cni_bridge_py" / "__init__.py")
    assert listed is False  # the launcher's imports never looked in site-packages
    # An entry that is not among the paths (or none): the paths alone, as before.
    for home in (None, "/elsewhere"):
        assert "sys.path.insert" not in launcher_text(sys.executable, paths, home=home)


def test_site_paths_are_what_site_adds_for_the_interpreter() -> None:
    """This venv: its site-packages (where pytest is) and the editable install's source dir,
    in site's order, and none of the stdlib's own entries."""
    paths = site_paths(sys.executable)
    site_packages = str(Path(pytest.__file__).resolve().parents[1])
    assert site_packages in paths and str(SOURCE_DIR) in paths
    assert paths.index(site_packages) < paths.index(str(SOURCE_DIR))
    assert not any(Path(p, "os.py").exists() for p in paths)


def test_the_front_runs_from_bytecode_install_compiled(tmp_path: Path) -> None:
    """A copy of the package without any bytecode, installed: the launcher's runs (-IS), for
    VERSION and for a request handed to an agent, load each of our modules from the
    __pycache__ install wrote (`python -v` says "matches"), none compiled from source."""
    source = tmp_path / "src"
    shutil.copytree(
        SOURCE_DIR / "cni_bridge_py",
        source / "cni_bridge_py",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    site_packages = str(Path(pytest.__file__).resolve().parents[1])
    bin_dir = tmp_path / "bin"
    install(bin_dir, python=sys.executable, paths=[site_packages, str(source)])
    package = source / "cni_bridge_py"
    with FakeAgent(tmp_path / "agent.sock") as agent:
        runs = {
            "VERSION": (VERSION_ENV, ["__init__.py", "cli.py", "version.py"]),
            "ADD": (
                {**ADD_ENV, "CNI_BRIDGE_PY_AGENT": str(agent.path)},
                ["cli.py", "agent/__init__.py", "agent/client.py", "agent/protocol.py"],
            ),
        }
        for env, modules in runs.values():
            proc = subprocess.run(
                [sys.executable, "-IS", "-v", str(bin_dir / "cni-bridge-py")],
                env=env,
                input=b"{}",
                capture_output=True,
                check=True,
                timeout=60,
            )
            verbose = proc.stderr.decode().splitlines()
            from_bytecode = {line.split(" matches ")[1] for line in verbose if " matches " in line}
            assert {str(package / m) for m in modules} <= from_bytecode, verbose
            compiled_here = [line for line in verbose if line.startswith("# created")]
            assert compiled_here == [], compiled_here
        assert len(agent.seen) == 1  # the ADD went to the agent, as the modules say


def run_launcher(path: Path, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*argv, str(path)], env=env, input=b"", capture_output=True, check=False, timeout=60
    )


@pytest.mark.parametrize("executable", EXECUTABLES)
def test_the_shell_answers_version_as_python_does(tmp_path: Path, executable: str) -> None:
    """VERSION from the launcher's shell part, byte for byte what the Python front prints for
    the same file; with an interpreter that does not exist, VERSION still answers (Python
    never started) and any other command fails."""
    install(tmp_path, paths=site_paths(sys.executable), python=sys.executable)
    launcher = tmp_path / executable
    env = {"CNI_COMMAND": "VERSION", "PATH": "/usr/bin:/bin"}
    by_shell = run_launcher(launcher, env)
    by_python = run_launcher(launcher, env, sys.executable, "-IS")
    assert by_shell.returncode == by_python.returncode == 0
    assert by_shell.stdout == by_python.stdout == version_json().encode()
    assert by_shell.stderr == by_python.stderr == b""

    broken = tmp_path / "broken"
    install(broken, python=str(tmp_path / "no-python"), paths=[])
    assert run_launcher(broken / executable, env).stdout == version_json().encode()
    assert run_launcher(broken / executable, {**env, "CNI_COMMAND": "ADD"}).returncode != 0


def test_the_shell_part_is_the_launcher_with_nothing_for_python_to_run(tmp_path: Path) -> None:
    """The benchmark's floor of the launcher: the same shell and exec, then an interpreter
    that runs only the string. It answers VERSION; any other command runs the interpreter on
    it, which prints nothing (and runs what follows the string: the file is the script)."""
    install(tmp_path, paths=site_paths(sys.executable), python=sys.executable)
    text = (tmp_path / "cni-bridge-py").read_text()
    shell = launcher_shell_part(text)
    assert text.startswith(shell) and shell.endswith("\n'''\n")
    assert launcher_interpreter(shell) == launcher_interpreter(text)
    assert "import" not in shell
    empty = tmp_path / "empty"
    empty.write_text(shell)
    empty.chmod(0o755)
    env = {"CNI_COMMAND": "VERSION", "PATH": "/usr/bin:/bin"}
    assert run_launcher(empty, env).stdout == version_json().encode()
    ran = run_launcher(empty, {**ADD_ENV, "PATH": "/usr/bin:/bin"})
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, b"", b"")
    empty.write_text(shell + "raise SystemExit(7)\n")
    assert run_launcher(empty, {**ADD_ENV, "PATH": "/usr/bin:/bin"}).returncode == 7
    with pytest.raises(ValueError, match="not a cni-bridge-py launcher"):
        launcher_shell_part("#!/usr/bin/python3\nprint()\n")


def test_a_launcher_cannot_be_written_for_a_quoted_interpreter() -> None:
    with pytest.raises(SystemExit, match="quote"):
        launcher_text("/opt/it's/python", [])
