"""IPAM delegation: any ipam.type but host-local is a plugin executable on CNI_PATH.

As the spec (and libcni's pkg/invoke) runs it: found by name in the CNI_PATH dirs, executed
with the caller's environment with CNI_COMMAND set to the verb, the caller's stdin bytes
unchanged, its stderr passed through. A result without cniVersion has the config's version;
an error object it prints is passed on unchanged. It runs plugins through spawn.py, as the
runner does, and only the verbs load it (never VERSION or an error path).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence, Set

from cni_bridge_py import result as results
from cni_bridge_py.errors import (
    CniError,
    DecodingFailure,
    InvalidConfig,
    PassthroughError,
)
from cni_bridge_py.ipam.allocator import Attachment
from cni_bridge_py.ipam.interface import IpamResult
from cni_bridge_py.netaddr import IPAddress, IPInterface
from cni_bridge_py.record import record, replace
from cni_bridge_py.request import Notes, Request
from cni_bridge_py.result import Result
from cni_bridge_py.spawn import run_plugin

# How much of a failed plugin's output goes into our error's details.
OUTPUT_EXCERPT = 2000


class IpamPluginNotFound(InvalidConfig):
    """ipam.type names no executable file in the CNI_PATH dirs (code 7)."""


class IpamPluginFailed(CniError):
    """The plugin failed without a CNI error object (crashed, killed, printed no JSON) or
    answered something that is not a usable result. Code 999: nothing more specific is known."""

    code = 999


@record(frozen=True)
class Completed:
    returncode: int
    stdout: bytes
    stderr: bytes


# Runs one executable: (path, environment, stdin) -> what it did; replaceable (e.g. by an
# agent that must not block its event loop).
Runner = Callable[[str, Mapping[str, str], bytes], Completed]


def run_executable(path: str, env: Mapping[str, str], stdin: bytes) -> Completed:
    try:
        proc = run_plugin(path, env, stdin)
    except OSError as exc:
        raise IpamPluginFailed(
            f"cannot execute IPAM plugin {path}",
            f"{exc.strerror or exc}; check that it is an executable for this machine",
        ) from exc
    return Completed(proc.returncode, proc.stdout, proc.stderr)


def find_plugin(name: str, dirs: tuple[str, ...]) -> str:
    """The first regular file called `name` in the CNI_PATH dirs (libcni's FindInPath)."""
    if not name or "/" in name or name in (".", ".."):
        raise IpamPluginNotFound(f"invalid IPAM plugin name {name!r}", "name a file on CNI_PATH")
    for directory in dirs:
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate):
            return candidate
    raise IpamPluginNotFound(
        f'failed to find IPAM plugin "{name}" in CNI_PATH [{" ".join(dirs)}]',
        f'install "{name}" into one of those directories, or fix "ipam.type"',
    )


def plugin_env(request: Request, command: str) -> dict[str, str]:
    """The caller's environment with CNI_COMMAND replaced. A request that did not come from
    an environment (unit tests, a resident agent) gets the CNI variables rebuilt from its
    fields."""
    env = dict(request.environ)
    if not env:
        env = {
            "CNI_CONTAINERID": request.container_id,
            "CNI_NETNS": request.netns,
            "CNI_IFNAME": request.ifname,
            "CNI_ARGS": ";".join(f"{k}={v}" for k, v in request.args.items()),
            "CNI_PATH": ":".join(request.path),
        }
        if request.search_path:
            env["PATH"] = request.search_path
    env["CNI_COMMAND"] = command
    return env


def plugin_error(name: str, done: Completed) -> CniError:
    """What a failed plugin said: its error object unchanged, or what we could make of it."""
    try:
        body = json.loads(done.stdout)
    except (ValueError, RecursionError):
        body = None
    if (
        isinstance(body, dict)
        and isinstance(body.get("code"), int)
        and not isinstance(body.get("code"), bool)
        and isinstance(body.get("msg"), str)
    ):
        details = body.get("details")
        return PassthroughError(
            body["code"], body["msg"], details if isinstance(details, str) else ""
        )
    said = (done.stdout or done.stderr).decode(errors="replace").strip()
    return IpamPluginFailed(
        f"IPAM plugin {name} failed (exit status {done.returncode}) without a CNI error",
        said[-OUTPUT_EXCERPT:] if said else "it printed nothing; see its stderr",
    )


def parse_result(name: str, stdout: bytes, config_version: str) -> Result:
    """A result of any version; one without cniVersion has the config's (libcni does this)."""
    try:
        body = json.loads(stdout)
    except (ValueError, RecursionError) as exc:
        raise DecodingFailure(
            f"cannot read the result of IPAM plugin {name}", f"not valid JSON: {exc}"
        ) from exc
    if not isinstance(body, dict):
        raise DecodingFailure(
            f"cannot read the result of IPAM plugin {name}",
            f"expected a JSON object, got {type(body).__name__}",
        )
    try:
        return results.from_dict(body, default_version=config_version)
    except DecodingFailure as exc:
        raise DecodingFailure(f"cannot read the result of IPAM plugin {name}", exc.details) from exc


class Delegated:
    """IPAM by the plugin executable named `plugin` (the Ipam protocol), run for `request`:
    its environment (CNI_COMMAND replaced) and stdin bytes, as libcni runs a plugin."""

    def __init__(
        self, plugin: str, request: Request, notes: Notes, runner: Runner = run_executable
    ) -> None:
        self.plugin = plugin
        self.request = request
        self.notes = notes
        self.runner = runner

    def invoke(self, command: str) -> bytes:
        request = self.request
        path = find_plugin(self.plugin, request.path)
        done = self.runner(path, plugin_env(request, command), request.stdin)
        if done.stderr:
            # The runtime's log gets it, as libcni passes a plugin's stderr through.
            self.notes.add(done.stderr.decode(errors="replace"))
        if done.returncode != 0:
            raise plugin_error(self.plugin, done)
        return done.stdout

    def ready(self) -> None:
        find_plugin(self.plugin, self.request.path)

    def add(self, who: Attachment) -> IpamResult:
        got = parse_result(self.plugin, self.invoke("ADD"), self.request.cni_version)
        if not got.ips:
            # Nothing to configure, and the runtime would never DEL what this ADD reserved.
            self._release_quietly()
            raise IpamPluginFailed(
                "IPAM plugin returned missing IP config",
                f'{self.plugin} answered ADD without "ips"; check its configuration',
            )
        ips = tuple(replace(ip, interface=None) for ip in got.ips)
        return IpamResult(ips, got.routes, got.dns)

    def _release_quietly(self) -> None:
        try:
            self.invoke("DEL")
        except CniError as exc:
            self.notes.add(f"IPAM plugin {self.plugin}: DEL after an empty ADD failed: {exc}")

    def delete(self, who: Attachment) -> list[IPInterface]:
        # A DEL answers nothing, so which addresses went is unknown here.
        self.invoke("DEL")
        return []

    def check(self, who: Attachment, likely: Sequence[IPAddress] = ()) -> None:
        self.invoke("CHECK")  # the plugin reads prevResult from the same stdin

    def gc(self, valid: Set[tuple[str, str]]) -> list[IPAddress]:
        # The plugin reads cni.dev/valid-attachments from the same stdin.
        self.invoke("GC")
        return []

    def status(self) -> None:
        self.invoke("STATUS")
