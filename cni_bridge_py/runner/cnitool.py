"""The cnitool-compatible runner: `cni-bridge-py cnitool add|check|del|gc|status NETWORK NETNS`.

Behaves like upstream Go cnitool on top of libcni: the same config lookup (NETCONFPATH), plugin
search (CNI_PATH), per-plugin stdin (libcni's buildOneConfig), container ID derived from the
netns path, and result cache (see runner_cache), so the two can be used interchangeably on one
host. Standard library only: it runs plugins as subprocesses and never touches the kernel itself.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from cni_bridge_py.runner.cache import (
    CacheError,
    RunnerError,
    RuntimeConf,
    cache_root,
    cached_attachments,
    read_result,
    remove_result,
    write_result,
)
from cni_bridge_py.runner.conf import (
    IMPLICIT_VERSION,
    ConfigError,
    NetworkList,
    at_least,
    go_json,
    load_network,
)
from cni_bridge_py.spawn import run_plugin
from cni_bridge_py.validate import id_problem, ifname_problem

DEFAULT_NETCONFPATH = "/etc/cni/net.d"
DEFAULT_IFNAME = "eth0"
# Both spellings of the GC key: the spec first said one, libcni sent the other (cni#1101).
VALID_ATTACHMENTS_KEYS = ("cni.dev/valid-attachments", "cni.dev/attachments")

USAGE = """\
cni-bridge-py cnitool: add, check, remove, gc or status network interfaces of a network namespace
  cni-bridge-py cnitool add    <net> <netns>
  cni-bridge-py cnitool check  <net> <netns>
  cni-bridge-py cnitool del    <net> <netns>
  cni-bridge-py cnitool gc     <net> <netns>
  cni-bridge-py cnitool status <net> <netns>
Environment: NETCONFPATH, CNI_PATH, CNI_IFNAME, CNI_ARGS, CAP_ARGS, CNI_CACHE_DIR"""


class UsageError(RunnerError):
    """The command line is not `COMMAND NETWORK NETNS`."""


class PluginError(RunnerError):
    """A plugin could not be found or run, or it reported an error."""


@dataclasses.dataclass(frozen=True)
class Context:
    env: Mapping[str, str]
    cni_path: str
    cache: Path
    stderr: TextIO


Handler = Callable[[Context, NetworkList, RuntimeConf], dict[str, Any] | None]


def run_cnitool(
    argv: list[str],
    env: Mapping[str, str],
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run one cnitool command; the ADD result goes to stdout, errors to stderr; exit status."""
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    try:
        command, network, netns = parse_argv(argv)
        net = load_network(Path(env.get("NETCONFPATH") or DEFAULT_NETCONFPATH), network)
        rt = runtime_conf(env, netns)
        ctx = Context(env, env.get("CNI_PATH", ""), cache_root(env), err)
        result = HANDLERS[command](ctx, net, rt)
    except RunnerError as e:
        err.write(f"{e}\n")
        return 1
    if result is not None:
        out.write(json.dumps(result, indent=4) + "\n")
    return 0


def parse_argv(argv: list[str]) -> tuple[str, str, str]:
    if len(argv) != 3:
        raise UsageError(f"expected COMMAND NETWORK NETNS, got {len(argv)} argument(s)\n{USAGE}")
    command, network, netns = argv
    if command not in HANDLERS:
        raise UsageError(f"unknown command {command!r}\n{USAGE}")
    return command, network, netns


# --- the runtime side: container ID, interface, runtime arguments --------------------------


def runtime_conf(env: Mapping[str, str], netns: str) -> RuntimeConf:
    capability_args = parse_capability_args(env.get("CAP_ARGS", ""))
    cni_args = parse_cni_args(env.get("CNI_ARGS", ""))
    netns_path = absolute_path(netns)
    return RuntimeConf(
        container_id=container_id_for(netns_path),
        netns=netns_path,
        ifname=env.get("CNI_IFNAME", DEFAULT_IFNAME),  # set but empty stays empty, as upstream
        cni_args=cni_args,
        capability_args=capability_args,
    )


def container_id_for(netns_path: str) -> str:
    """cnitool's ID: the first 10 bytes of sha512(netns path), so one netns is one container."""
    return "cnitool-" + hashlib.sha512(os.fsencode(netns_path)).hexdigest()[:20]


def absolute_path(path: str) -> str:
    """Go's filepath.Abs: joined to the working directory and cleaned."""
    cleaned = os.path.normpath(os.path.join(os.getcwd(), path))
    # POSIX lets normpath keep exactly two leading slashes; Go's Clean does not.
    return cleaned[1:] if cleaned.startswith("//") else cleaned


def parse_cni_args(raw: str) -> tuple[tuple[str, str], ...]:
    if not raw:
        return ()
    pairs: list[tuple[str, str]] = []
    for pair in raw.split(";"):
        parts = pair.split("=")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise ConfigError(
                f"invalid CNI_ARGS pair {pair!r}: CNI_ARGS must be KEY=VALUE pairs joined by ';'"
            )
        pairs.append((parts[0], parts[1]))
    return tuple(pairs)


def parse_capability_args(raw: str) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise ConfigError(f"CAP_ARGS is not valid JSON ({e}); give a JSON object") from e
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"CAP_ARGS must be a JSON object, got {type(value).__name__}")
    return value


def _validate_for_add(network: str, rt: RuntimeConf) -> None:
    """libcni's checks before ADD: the names end up in file names and interface names."""
    if why := id_problem(network):
        raise ConfigError(f"invalid network name {network!r}: {why}")
    if why := id_problem(rt.container_id):
        raise ConfigError(f"invalid container ID {rt.container_id!r}: {why}")
    if why := ifname_problem(rt.ifname):
        raise ConfigError(f"invalid interface name {rt.ifname!r} (CNI_IFNAME): {why}")


# --- the commands ---------------------------------------------------------------------------


def cmd_add(ctx: Context, net: NetworkList, rt: RuntimeConf) -> dict[str, Any]:
    _validate_for_add(net.name, rt)
    result: dict[str, Any] = {}
    prev_result: dict[str, Any] | None = None  # each plugin's result is the next one's input
    for plugin in net.plugins:
        stdin = build_one_config(net, plugin, prev_result, rt)
        result = decode_result(plugin["type"], exec_plugin(ctx, plugin, "ADD", stdin, rt), net)
        prev_result = result
    write_result(ctx.cache, net.name, net.config_bytes, rt, result)
    return result


def cmd_check(ctx: Context, net: NetworkList, rt: RuntimeConf) -> None:
    if not at_least(net, "0.4.0"):
        raise ConfigError(
            f'configuration version "{net.cni_version}" does not support the CHECK command; '
            "CHECK needs cniVersion 0.4.0 or later"
        )
    if net.disable_check:
        return None
    cached = read_result(ctx.cache, net.name, rt)
    if cached is None:
        raise CacheError(
            f"no cached result for network {net.name!r}, container {rt.container_id}, "
            f"interface {rt.ifname!r} in {ctx.cache / 'results'}: run add first "
            "(with the same NETNS, CNI_IFNAME and CNI_CACHE_DIR)"
        )
    for plugin in net.plugins:
        exec_plugin(ctx, plugin, "CHECK", build_one_config(net, plugin, cached, rt), rt)


def cmd_del(ctx: Context, net: NetworkList, rt: RuntimeConf) -> None:
    cached: dict[str, Any] | None = None
    if at_least(net, "0.4.0"):
        try:
            cached = read_result(ctx.cache, net.name, rt)
        except CacheError:
            remove_result(ctx.cache, net.name, rt)  # unusable; libcni drops it and deletes anyway
    for plugin in reversed(net.plugins):
        exec_plugin(ctx, plugin, "DEL", build_one_config(net, plugin, cached, rt), rt)
    remove_result(ctx.cache, net.name, rt)


def cmd_gc(ctx: Context, net: NetworkList, _rt: RuntimeConf) -> None:
    """DEL every cached attachment of the network, then GC with nothing valid, like libcni."""
    if net.disable_gc:
        return None
    failures: list[str] = []
    for attachment in cached_attachments(ctx.cache):
        if attachment.network != net.name:
            continue
        stale = attachment.runtime
        try:
            cmd_del(ctx, net, stale)
        except RunnerError as e:
            failures.append(
                f"failed to delete stale attachment {stale.container_id} {stale.ifname}: {e}"
            )
    if at_least(net, "1.1.0"):
        failures.extend(_gc_plugins(ctx, net))
    else:
        _note_not_sent(ctx, net, "GC")
    if failures:
        raise PluginError("\n".join(failures))


def _gc_plugins(ctx: Context, net: NetworkList) -> list[str]:
    inject: dict[str, Any] = {"name": net.name, "cniVersion": net.cni_version}
    inject.update({key: [] for key in VALID_ATTACHMENTS_KEYS})
    failures: list[str] = []
    for plugin in net.plugins:
        try:
            exec_plugin(ctx, plugin, "GC", go_json({**plugin, **inject}), RuntimeConf())
        except RunnerError as e:
            failures.append(f"failed to GC plugin {plugin['type']}: {e}")
    return failures


def cmd_status(ctx: Context, net: NetworkList, _rt: RuntimeConf) -> None:
    if not at_least(net, "1.1.0"):
        _note_not_sent(ctx, net, "STATUS")
        return None
    inject = {"name": net.name, "cniVersion": net.cni_version}
    for plugin in net.plugins:
        exec_plugin(ctx, plugin, "STATUS", go_json({**plugin, **inject}), RuntimeConf())


def _note_not_sent(ctx: Context, net: NetworkList, verb: str) -> None:
    # libcni skips the verb silently and succeeds; say so, so an exit status of 0 is not misread.
    ctx.stderr.write(
        f"note: {verb} not sent: network {net.name!r} has cniVersion "
        f'"{net.cni_version}" and {verb} needs 1.1.0 or later\n'
    )


HANDLERS: dict[str, Handler] = {
    "add": cmd_add,
    "check": cmd_check,
    "del": cmd_del,
    "gc": cmd_gc,
    "status": cmd_status,
}


# --- plugin stdin and results ---------------------------------------------------------------


def build_one_config(
    net: NetworkList,
    plugin: Mapping[str, Any],
    prev_result: Mapping[str, Any] | None,
    rt: RuntimeConf,
) -> bytes:
    """libcni's buildOneConfig: the plugin's own object plus what the list and runtime add."""
    inject: dict[str, Any] = {"name": net.name, "cniVersion": net.cni_version}
    if prev_result is not None:
        inject["prevResult"] = prev_result
    runtime_config = _runtime_config(plugin, rt.capability_args)
    if runtime_config:
        inject["runtimeConfig"] = runtime_config  # replaces the plugin's own, as in libcni
    return go_json({**plugin, **inject})


def _runtime_config(
    plugin: Mapping[str, Any], capability_args: Mapping[str, Any]
) -> dict[str, Any]:
    """Only the capability arguments the plugin declares it understands."""
    capabilities = plugin.get("capabilities") or {}
    return {
        name: capability_args[name]
        for name, enabled in capabilities.items()
        if enabled is True and name in capability_args
    }


def decode_result(plugin_type: str, stdout: bytes, net: NetworkList) -> dict[str, Any]:
    try:
        result = json.loads(stdout)
    except ValueError as e:
        raise PluginError(
            f"{plugin_type}: ADD succeeded but its stdout is not a JSON result ({e}): "
            f"{_excerpt(stdout)}"
        ) from e
    if result is None:
        result = {}
    if not isinstance(result, dict):
        raise PluginError(f"{plugin_type}: ADD result is not a JSON object: {_excerpt(stdout)}")
    if not isinstance(result.get("cniVersion"), str) or not result["cniVersion"]:
        # libcni's fixupResultVersion: an unversioned result is taken to be in the config's version.
        result["cniVersion"] = net.cni_version or IMPLICIT_VERSION
    return result


def find_plugin(plugin_type: str, cni_path: str) -> Path:
    """The first executable regular file named `plugin_type` in the CNI_PATH directories."""
    if not plugin_type or "/" in plugin_type:
        raise ConfigError(f'invalid plugin type {plugin_type!r}: "type" must be a bare file name')
    dirs = [d for d in cni_path.split(":") if d]
    if not dirs:
        raise PluginError(
            f'cannot find plugin "{plugin_type}": CNI_PATH is empty; set it to the '
            "directories holding the plugin executables (for example /opt/cni/bin)"
        )
    for directory in dirs:
        candidate = Path(os.path.abspath(os.path.join(directory, plugin_type)))
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise PluginError(
        f'failed to find plugin "{plugin_type}" in path {dirs}: install it as an executable '
        "there, or add its directory to CNI_PATH"
    )


def plugin_env(ctx: Context, verb: str, rt: RuntimeConf) -> dict[str, str]:
    env = dict(ctx.env)
    # Ours win over the inherited environment (libcni means to do the same).
    env.update(
        CNI_COMMAND=verb,
        CNI_CONTAINERID=rt.container_id,
        CNI_NETNS=rt.netns,
        CNI_ARGS=";".join(f"{k}={v}" for k, v in rt.cni_args),
        CNI_IFNAME=rt.ifname,
        CNI_PATH=ctx.cni_path,
    )
    return env


def exec_plugin(
    ctx: Context, plugin: Mapping[str, Any], verb: str, stdin: bytes, rt: RuntimeConf
) -> bytes:
    """Run the plugin for one verb; its stdout on success, PluginError otherwise."""
    plugin_type: str = plugin["type"]
    path = find_plugin(plugin_type, ctx.cni_path)
    proc = _spawn(path, stdin, plugin_env(ctx, verb, rt))
    if proc.stderr:
        ctx.stderr.write(proc.stderr.decode(errors="replace"))
    if proc.returncode != 0:
        raise PluginError(describe_failure(plugin_type, proc.returncode, proc.stdout, proc.stderr))
    return proc.stdout


def _spawn(path: Path, stdin: bytes, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    try:
        return run_plugin(str(path), env, stdin)
    except OSError as e:
        raise PluginError(
            f"could not execute plugin {path}: {e.strerror}; check that it is an "
            "executable built for this machine"
        ) from e


def describe_failure(plugin_type: str, returncode: int, stdout: bytes, stderr: bytes) -> str:
    """`<type>: error <code>: <msg>; <details>` from the plugin's CNI error JSON on stdout."""
    how = (
        f"killed by signal {-returncode}" if returncode < 0 else f"exited with status {returncode}"
    )
    if not stdout.strip():
        where = "see its stderr above" if stderr.strip() else "and it wrote nothing to stderr"
        return f"{plugin_type}: {how} without a CNI error on stdout ({where})"
    try:
        error = json.loads(stdout)
    except ValueError:
        error = None
    if not isinstance(error, dict):
        return f"{plugin_type}: {how} and its stdout is not a CNI error: {_excerpt(stdout)}"
    text = f"{plugin_type}: error {error.get('code')}: {error.get('msg', '')}"
    details = error.get("details")
    return f"{text}; {details}" if details else text


def _excerpt(data: bytes, limit: int = 200) -> str:
    text = data.decode(errors="replace").strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")
