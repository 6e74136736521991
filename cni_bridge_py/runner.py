"""The cnitool-compatible runner: `cni-bridge-py cnitool add|check|del|gc|status NETWORK NETNS`.

Behaves like upstream Go cnitool on top of libcni: the same config lookup (NETCONFPATH), plugin
search (CNI_PATH), per-plugin stdin (libcni's buildOneConfig), container ID derived from the
netns path, and result cache (see runner_cache), so the two can be used interchangeably on one
host. Standard library only: it runs plugins as subprocesses and never touches the kernel itself.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from cni_bridge_py.runner_cache import (
    CacheError,
    RunnerError,
    RuntimeConf,
    cache_root,
    cached_attachments,
    read_result,
    remove_result,
    write_result,
)

DEFAULT_NETCONFPATH = "/etc/cni/net.d"
DEFAULT_IFNAME = "eth0"
# The spec version an unversioned config means.
IMPLICIT_VERSION = "0.1.0"
# The newest spec libcni implements; newer entries of "cniVersions" are ignored, as libcni does.
NEWEST_VERSION = (1, 1, 0)
# Both spellings of the GC key: the spec first said one, libcni sent the other (cni#1101).
VALID_ATTACHMENTS_KEYS = ("cni.dev/valid-attachments", "cni.dev/attachments")
# libcni retries a plugin whose executable is being replaced ("text file busy").
TEXT_BUSY_ATTEMPTS = 6
TEXT_BUSY_DELAY_S = 1.0

USAGE = """\
cni-bridge-py cnitool: add, check, remove, gc or status network interfaces of a network namespace
  cni-bridge-py cnitool add    <net> <netns>
  cni-bridge-py cnitool check  <net> <netns>
  cni-bridge-py cnitool del    <net> <netns>
  cni-bridge-py cnitool gc     <net> <netns>
  cni-bridge-py cnitool status <net> <netns>
Environment: NETCONFPATH, CNI_PATH, CNI_IFNAME, CNI_ARGS, CAP_ARGS, CNI_CACHE_DIR"""

# libcni's utils.ValidateNetworkName / ValidateContainerID pattern.
_NAME_PATTERN = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]*")
_IFNAME_MAX = 15  # IFNAMSIZ - 1


class UsageError(RunnerError):
    """The command line is not `COMMAND NETWORK NETNS`."""


class ConfigError(RunnerError):
    """The network configuration, or an environment variable, is missing or malformed."""


class PluginError(RunnerError):
    """A plugin could not be found or run, or it reported an error."""


@dataclasses.dataclass(frozen=True)
class NetworkList:
    """A parsed conflist, or a single-plugin config upgraded to one."""

    name: str
    cni_version: str
    plugins: tuple[dict[str, Any], ...]
    config_bytes: bytes  # what the cache stores: the conflist as read (or as upgraded)
    disable_check: bool = False
    disable_gc: bool = False


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
    if not _NAME_PATTERN.fullmatch(network):
        raise ConfigError(
            f"invalid network name {network!r}: use letters, digits, '_', '.' and '-', "
            "starting with a letter or digit"
        )
    if not _NAME_PATTERN.fullmatch(rt.container_id):
        raise ConfigError(f"invalid container ID {rt.container_id!r}")
    ifname = rt.ifname
    if not ifname:
        raise ConfigError("interface name is empty: unset CNI_IFNAME or give a name")
    if len(ifname) > _IFNAME_MAX or ifname in (".", "..") or re.search(r"[/:\s]", ifname):
        raise ConfigError(
            f"invalid interface name {ifname!r} (CNI_IFNAME): at most {_IFNAME_MAX} characters, "
            "not '.' or '..', without '/', ':' or whitespace"
        )


# --- configuration lookup -----------------------------------------------------------------


def load_network(netdir: Path, name: str) -> NetworkList:
    """The first *.conflist named `name`, else the first such *.conf/*.json, files sorted."""
    lists = _conf_files(netdir, (".conflist",))
    for path in lists:
        net = _load_conflist(path)
        if net.name == name:
            return net
    singles = _conf_files(netdir, (".conf", ".json"))
    for path in singles:
        plugin = parse_plugin(_read_object(path), str(path))
        if plugin.get("name") == name:
            return upgrade_single(plugin)
    if not lists and not singles:
        raise ConfigError(
            f"no net configurations found in {netdir}: add one there, "
            "or set NETCONFPATH to the directory holding them"
        )
    raise ConfigError(
        f'no net configuration with name "{name}" in {netdir}: check the "name" field '
        "of the files there, or set NETCONFPATH"
    )


def parse_conflist(data: Mapping[str, Any], raw: bytes, where: str) -> NetworkList:
    """libcni's NetworkConfFromBytes, without the plugins kept in a per-network directory."""
    if "name" not in data:
        raise ConfigError(f'{where}: the conflist has no "name"')
    name = data["name"]
    if not isinstance(name, str):
        raise ConfigError(f'{where}: "name" must be a string')
    cni_version = _optional_str(data, "cniVersion", where)
    if "cniVersions" in data:
        cni_version = _pick_version(data["cniVersions"], cni_version, where)
    inlined_only = _read_bool(data, "loadOnlyInlinedPlugins", where)
    return NetworkList(
        name=name,
        cni_version=cni_version,
        plugins=_inline_plugins(data, inlined_only, where),
        config_bytes=raw,
        disable_check=_read_bool(data, "disableCheck", where),
        disable_gc=_read_bool(data, "disableGC", where),
    )


def parse_plugin(data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a plugin configuration must be a JSON object")
    plugin_type = data.get("type")
    if not isinstance(plugin_type, str) or not plugin_type:
        raise ConfigError(f'{where}: missing "type" (the plugin executable to run)')
    for key in ("name", "cniVersion"):
        _optional_str(data, key, where)
    capabilities = data.get("capabilities")
    if capabilities is not None and not (
        isinstance(capabilities, dict) and all(isinstance(v, bool) for v in capabilities.values())
    ):
        raise ConfigError(f'{where}: "capabilities" must map capability names to true/false')
    return dict(data)


def upgrade_single(plugin: Mapping[str, Any]) -> NetworkList:
    """libcni's ConfListFromConf: a one-plugin list named and versioned like the plugin."""
    name = plugin.get("name", "")
    cni_version = plugin.get("cniVersion", "")
    wrapper = {"name": name, "cniVersion": cni_version, "plugins": [dict(plugin)]}
    return NetworkList(name, cni_version, (dict(plugin),), _go_json(wrapper))


def _load_conflist(path: Path) -> NetworkList:
    raw = _read_bytes(path)
    data = _decode_object(raw, str(path))
    net = parse_conflist(data, raw, str(path))
    if not _read_bool(data, "loadOnlyInlinedPlugins", str(path)):
        extra = _plugin_dir_confs(path.parent / net.name)
        net = dataclasses.replace(net, plugins=net.plugins + extra)
    if not net.plugins:
        raise ConfigError(f'{path}: no plugin configs found: add a "plugins" list')
    return net


def _plugin_dir_confs(directory: Path) -> tuple[dict[str, Any], ...]:
    """Newer libcni also loads `<netdir>/<network>/*.conf` as extra plugins of a conflist."""
    if not directory.is_dir():
        return ()
    paths = _conf_files(directory, (".conf",))
    return tuple(parse_plugin(_read_object(p), str(p)) for p in paths)


def _inline_plugins(
    data: Mapping[str, Any], inlined_only: bool, where: str
) -> tuple[dict[str, Any], ...]:
    if "plugins" not in data:
        if inlined_only:
            raise ConfigError(
                f'{where}: "loadOnlyInlinedPlugins" is true but there is no "plugins"'
            )
        return ()
    plugins = data["plugins"]
    if not isinstance(plugins, list):
        raise ConfigError(f'{where}: "plugins" must be a list')
    if not plugins:
        raise ConfigError(f'{where}: "plugins" is empty; a network needs at least one plugin')
    return tuple(parse_plugin(p, f"{where}: plugin {i}") for i, p in enumerate(plugins))


def _pick_version(raw: Any, cni_version: str, where: str) -> str:
    """The highest of "cniVersions" and "cniVersion" that libcni implements."""
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        raise ConfigError(f'{where}: "cniVersions" must be a list of version strings')
    candidates = [*raw, cni_version] if cni_version else list(raw)
    known = [v for v in candidates if _version_tuple(v, where) <= NEWEST_VERSION]
    return max(known, key=lambda v: _version_tuple(v, where)) if known else cni_version


def _conf_files(directory: Path, extensions: tuple[str, ...]) -> list[Path]:
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise ConfigError(f"cannot list network configurations in {directory}: {e.strerror}") from e
    names = sorted(e.name for e in entries if not e.is_dir() and _extension(e.name) in extensions)
    return [directory / name for name in names]


def _extension(name: str) -> str:
    """Go's filepath.Ext: from the last dot on, so ".conflist" alone counts."""
    dot = name.rfind(".")
    return name[dot:] if dot >= 0 else ""


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from e


def _decode_object(raw: bytes, where: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise ConfigError(f"{where}: not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the configuration must be a JSON object")
    return data


def _read_object(path: Path) -> dict[str, Any]:
    return _decode_object(_read_bytes(path), str(path))


def _optional_str(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise ConfigError(f'{where}: "{key}" must be a string')
    return value


def _read_bool(data: Mapping[str, Any], key: str, where: str) -> bool:
    """libcni accepts true/false or the strings "true"/"false" in any case."""
    value = data.get(key, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ConfigError(f'{where}: "{key}" must be true or false, got {value!r}')


def _version_tuple(version: str, where: str) -> tuple[int, int, int]:
    """libcni's ParseVersion: "" is 0.1.0, missing minor/patch parts are 0."""
    parts = (version or IMPLICIT_VERSION).split(".")
    if len(parts) > 3 or not all(p.isdigit() for p in parts):
        raise ConfigError(f'{where}: cniVersion {version!r} is not a version like "1.0.0"')
    numbers = [int(p) for p in parts] + [0] * (3 - len(parts))
    return numbers[0], numbers[1], numbers[2]


def _at_least(net: NetworkList, minimum: str) -> bool:
    where = f"network {net.name!r}"
    return _version_tuple(net.cni_version, where) >= _version_tuple(minimum, where)


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
    if not _at_least(net, "0.4.0"):
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
    if _at_least(net, "0.4.0"):
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
    if _at_least(net, "1.1.0"):
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
            exec_plugin(ctx, plugin, "GC", _go_json({**plugin, **inject}), RuntimeConf())
        except RunnerError as e:
            failures.append(f"failed to GC plugin {plugin['type']}: {e}")
    return failures


def cmd_status(ctx: Context, net: NetworkList, _rt: RuntimeConf) -> None:
    if not _at_least(net, "1.1.0"):
        _note_not_sent(ctx, net, "STATUS")
        return None
    inject = {"name": net.name, "cniVersion": net.cni_version}
    for plugin in net.plugins:
        exec_plugin(ctx, plugin, "STATUS", _go_json({**plugin, **inject}), RuntimeConf())


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
    return _go_json({**plugin, **inject})


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


def _go_json(value: Any) -> bytes:
    """JSON the way Go marshals a map: keys sorted, no spaces."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


# --- running plugins ------------------------------------------------------------------------


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
    attempts_left = TEXT_BUSY_ATTEMPTS
    while True:
        attempts_left -= 1
        try:
            return subprocess.run(
                [str(path)], input=stdin, env=env, capture_output=True, check=False
            )
        except OSError as e:
            if e.errno != errno.ETXTBSY or attempts_left == 0:
                raise PluginError(
                    f"could not execute plugin {path}: {e.strerror}; check that it is an "
                    "executable built for this machine"
                ) from e
        time.sleep(TEXT_BUSY_DELAY_S)  # the executable is being replaced; it will be back


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
