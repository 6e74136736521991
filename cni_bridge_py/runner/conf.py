"""Network configuration lookup for the runner, as libcni does it: NETCONFPATH, *.conflist
first, then single-plugin *.conf/*.json upgraded to a list. Standard library only."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cni_bridge_py.runner.cache import RunnerError

# The spec version an unversioned config means.
IMPLICIT_VERSION = "0.1.0"
# The newest spec libcni implements; newer entries of "cniVersions" are ignored, as libcni does.
NEWEST_VERSION = (1, 1, 0)


class ConfigError(RunnerError):
    """The network configuration, or an environment variable, is missing or malformed."""


@dataclasses.dataclass(frozen=True)
class NetworkList:
    """A parsed conflist, or a single-plugin config upgraded to one."""

    name: str
    cni_version: str
    plugins: tuple[dict[str, Any], ...]
    config_bytes: bytes  # what the cache stores: the conflist as read (or as upgraded)
    disable_check: bool = False
    disable_gc: bool = False


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
    return NetworkList(name, cni_version, (dict(plugin),), go_json(wrapper))


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


def at_least(net: NetworkList, minimum: str) -> bool:
    where = f"network {net.name!r}"
    return _version_tuple(net.cni_version, where) >= _version_tuple(minimum, where)


def go_json(value: Any) -> bytes:
    """JSON the way Go marshals a map: keys sorted, no spaces."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


# --- running plugins ------------------------------------------------------------------------
