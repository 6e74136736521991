"""Writes the launcher a runtime executes: `python -m cni_bridge_py.install --bin-dir DIR`.

Runtimes run plugins with a minimal environment (no venv activated, a bare PATH), so the
launcher names this interpreter by absolute path and runs it isolated (-I: no PYTHON*
variables, no user site) and without `site` (-S): site costs every run ~4 ms and more with
each .pth file, so the launcher puts on sys.path exactly what site would add for this
interpreter (the venv's site-packages and the editable install's source dir), computed here.
It works under any name, e.g. a `bridge` symlink for a drop-in swap.

The launcher is one file that is both a POSIX shell script and Python: /bin/sh reads it first
and answers VERSION itself, then execs the interpreter on the same file, for which the shell
part is a string. VERSION's answer is fixed (version.version_json, written in at install
time), and libcni asks for it each time it validates a config: podman does before each `podman
run`'s ADD and again before the DEL of `podman container cleanup`. Starting Python costs ~10
ms here, the shell ~1 ms; every other call pays the shell's exec first (~0.6 ms).
"""

from __future__ import annotations

import argparse
import compileall
import os
import subprocess
import sys
from pathlib import Path

import cni_bridge_py
from cni_bridge_py.version import version_json

# The bridge plugin first (aliases point at it), then the standalone host-local IPAM plugin
# that any main plugin (ptp, macvlan, ...) can name as "ipam": {"type": "cni-host-local-py"}.
EXECUTABLES = ("cni-bridge-py", "cni-host-local-py")
# Each executable's module; it has a main() -> exit code, which cli.launch runs.
ENTRY_MODULES = {
    "cni-bridge-py": "cni_bridge_py.cli",
    "cni-host-local-py": "cni_bridge_py.ipam.plugin",
}


INTERPRETER_FLAGS = "-IS"
_PRINT_PATH = "import sys; sys.stdout.write(chr(0).join(sys.path))"
# The shell part's last line: the interpreter the launcher runs (tools/bench reads it).
EXEC_PREFIX = "exec "
EXEC_SUFFIX = ' "$0" "$@"'
# Opens a Python string that holds the shell part; the shell reads it as the `:` builtin.
_SHEBANG = "#!/bin/sh\n"
_SHELL_START = "''':'"
_SHELL_END = "'''"


def launcher_text(
    python: str, paths: list[str], module: str = "cni_bridge_py.cli", home: str | None = None
) -> str:
    """`home`: the entry of `paths` that holds the package (install finds it), looked in first
    for the package alone."""
    answer = version_json().rstrip("\n")
    # The shell part is single-quoted shell inside a Python string: nothing may end either.
    if "'" in answer + python or "\\" in answer + python:
        raise SystemExit(f"cannot write a launcher for {python!r}: a quote or backslash in it")
    return (
        f"{_SHEBANG}"
        "# Installed by cni-bridge-py (make install). A shell script, then Python (see\n"
        "# cni_bridge_py/install.py): the shell answers VERSION, Python everything else.\n"
        f"{_SHELL_START}\n"
        'if [ "$CNI_COMMAND" = VERSION ]; then\n'
        f"  printf '%s\\n' '{answer}'\n"
        "  exit 0\n"
        "fi\n"
        f"{EXEC_PREFIX}'{python}' {INTERPRETER_FLAGS}{EXEC_SUFFIX}\n"
        f"{_SHELL_END}\n"
        "# Without site: these are the paths site would add, as they were at install time.\n"
        "import sys\n"
        f"sys.path += {paths!r}\n"
        + (_HOME_FIRST.format(home=home) if home is not None and home in paths else "")
        + "from cni_bridge_py.cli import launch\n"
        + (
            "launch()\n"
            if module == "cni_bridge_py.cli"
            else f"from {module} import main\nlaunch(main)\n"
        )
    )


# The package is looked up on every entry before its own, and each entry looked in is listed
# whole (site-packages: dozens of names, ~0.2 ms of every call here). Its own entry first, for
# the package alone: its modules then come through its __path__, and anything else (the
# standard library first) in the usual order. Its __init__ imports nothing.
_HOME_FIRST = "sys.path.insert(0, {home!r})\nimport cni_bridge_py\ndel sys.path[0]\n"


def launcher_interpreter(text: str) -> list[str]:
    """The interpreter and flags a launcher execs (its shell part's exec line)."""
    for line in text.splitlines():
        if line.startswith(EXEC_PREFIX) and line.endswith(EXEC_SUFFIX):
            command = line.removeprefix(EXEC_PREFIX).removesuffix(EXEC_SUFFIX)
            python, flags = command.rsplit(" ", 1)
            return [python.strip("'"), flags]
    raise ValueError("not a cni-bridge-py launcher")


def launcher_shell_part(text: str) -> str:
    """A launcher with its Python part left out: its shell answers VERSION and execs the
    interpreter as before, and the interpreter then has only the string to run (the benchmark
    times it as the launcher's floor)."""
    end = f"\n{_SHELL_END}\n"
    if not text.startswith(_SHEBANG) or end not in text:
        raise ValueError("not a cni-bridge-py launcher")
    return text[: text.index(end) + len(end)]


def site_paths(python: str) -> list[str]:
    """The sys.path entries `site` adds for `python` run isolated, in site's order."""
    with_site, without_site = (
        _sys_path([python, *flags, "-c", _PRINT_PATH]) for flags in (["-I"], ["-I", "-S"])
    )
    return [p for p in with_site if p and p not in without_site]


def _sys_path(argv: list[str]) -> list[str]:
    try:
        out = subprocess.run(argv, capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise SystemExit(f"cannot ask {argv[0]} for its sys.path: {exc}") from exc
    return out.decode().split("\0")


def package_dir(paths: list[str]) -> Path:
    """The cni_bridge_py the launcher will import: the first on its paths."""
    for entry in paths:
        candidate = Path(entry) / "cni_bridge_py"
        if (candidate / "__init__.py").is_file():
            return candidate
    return Path(cni_bridge_py.__file__).parent


# Drop-in names: a runtime configured for the reference plugins finds ours under them.
ALIAS_TARGETS = {"host-local": "cni-host-local-py"}
MARKER = "# Installed by cni-bridge-py"


def alias_target(alias: str) -> str:
    return ALIAS_TARGETS.get(alias, EXECUTABLES[0])


def install(
    bin_dir: Path,
    python: str = sys.executable,
    aliases: tuple[str, ...] = (),
    paths: list[str] | None = None,
) -> list[Path]:
    """Write the launchers (and alias symlinks); returns every path written. An alias never
    replaces a file that is not ours (e.g. the reference `bridge`): remove it first. `paths`:
    the launcher's sys.path additions (by default what site adds for `python`)."""
    if paths is None:
        paths = site_paths(python)
    package = package_dir(paths)
    bin_dir.mkdir(parents=True, exist_ok=True)
    for alias in aliases:
        link = bin_dir / alias
        if (link.exists() or link.is_symlink()) and not _is_ours(link):
            raise SystemExit(f"{link} exists and is not ours; move it away to install the alias")
    written: list[Path] = []
    for name in EXECUTABLES:
        path = bin_dir / name
        tmp = bin_dir / f".{name}.tmp"
        tmp.write_text(launcher_text(python, paths, ENTRY_MODULES[name], str(package.parent)))
        tmp.chmod(0o755)
        tmp.replace(path)  # atomic: a runtime never executes a half-written launcher
        written.append(path)
    for alias in aliases:
        link = bin_dir / alias
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(alias_target(alias))
        written.append(link)
    # Start-up speed: the bytecode of the package the launcher imports, compiled once here,
    # not at each run (a runtime may run the plugin where it cannot write __pycache__).
    compileall.compile_dir(package, quiet=1)
    return written


def uninstall(bin_dir: Path, aliases: tuple[str, ...] = ()) -> list[Path]:
    """Remove exactly what install() put there, and nothing that is not ours."""
    removed: list[Path] = []
    for name in (*aliases, *EXECUTABLES):
        path = bin_dir / name
        if (path.exists() or path.is_symlink()) and _is_ours(path):
            path.unlink()
            removed.append(path)
    return removed


def _is_ours(path: Path) -> bool:
    if path.is_symlink():
        return os.readlink(path) in EXECUTABLES
    try:
        with path.open("rb") as f:
            return MARKER.encode() in f.read(512)
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bin-dir", required=True, type=Path)
    parser.add_argument("--alias", action="append", default=[], help="extra name, e.g. bridge")
    parser.add_argument("--uninstall", action="store_true", help="remove what install wrote")
    args = parser.parse_args(argv)
    action = uninstall if args.uninstall else install
    for path in action(args.bin_dir, aliases=tuple(args.alias)):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
