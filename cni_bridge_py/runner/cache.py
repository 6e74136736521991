"""libcni's result cache, in the format Go cnitool reads and writes.

One file per attachment, `<cache dir>/results/<network>-<containerID>-<ifname>`, mode 0600 in
directories created 0700, holding compact JSON:
`{"kind":"cniCacheV1","containerId","config"(base64 of the conflist bytes),"ifName",
"networkName","netns","cniArgs":[[k,v],...],"capabilityArgs","result"}`; the last four are
left out when empty, as Go's `omitempty` does. Older libcni wrote the bare result instead; that
is still read.

Standard library only.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CACHE_KIND = "cniCacheV1"
DEFAULT_CACHE_DIR = "/var/lib/cni"
# Our extension: upstream cnitool always uses /var/lib/cni; tests and unprivileged runs need more.
CACHE_DIR_ENV = "CNI_CACHE_DIR"


class RunnerError(Exception):
    """A failure the runner reports as text on stderr with exit status 1."""


class CacheError(RunnerError):
    """The result cache could not be read, written or removed."""


@dataclass(frozen=True)
class RuntimeConf:
    """libcni's RuntimeConf: which attachment a command is about, and the runtime's arguments."""

    container_id: str = ""
    netns: str = ""
    ifname: str = ""
    cni_args: tuple[tuple[str, str], ...] = ()
    capability_args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CachedAttachment:
    network: str
    runtime: RuntimeConf


def cache_root(env: Mapping[str, str]) -> Path:
    return Path(env.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR)


def cache_path(root: Path, network: str, rt: RuntimeConf) -> Path:
    if not (network and rt.container_id and rt.ifname):
        raise CacheError(
            f"cache file path requires network name ({network!r}), container ID "
            f"({rt.container_id!r}) and interface name ({rt.ifname!r}); none may be empty"
        )
    return root / "results" / f"{network}-{rt.container_id}-{rt.ifname}"


def encode_entry(network: str, config: bytes, rt: RuntimeConf, result: Mapping[str, Any]) -> bytes:
    entry: dict[str, Any] = {
        "kind": CACHE_KIND,
        "containerId": rt.container_id,
        "config": base64.b64encode(config).decode("ascii"),
        "ifName": rt.ifname,
        "networkName": network,
    }
    if rt.netns:
        entry["netns"] = rt.netns
    if rt.cni_args:
        entry["cniArgs"] = [list(pair) for pair in rt.cni_args]
    if rt.capability_args:
        entry["capabilityArgs"] = dict(rt.capability_args)
    if result:
        entry["result"] = dict(result)
    return json.dumps(entry, separators=(",", ":")).encode()


def write_result(
    root: Path, network: str, config: bytes, rt: RuntimeConf, result: Mapping[str, Any]
) -> Path:
    """Cache the ADD result; a rename keeps readers from ever seeing half a file."""
    path = cache_path(root, network, rt)
    data = encode_entry(network, config, rt, result)
    try:
        _make_private_dirs(path.parent)
        _replace_file(path, data)
    except OSError as e:
        raise CacheError(
            f"failed to set network {network!r} cached result in {path}: {e.strerror}; "
            f"make {root} writable or set {CACHE_DIR_ENV} to another directory"
        ) from e
    return path


def read_result(root: Path, network: str, rt: RuntimeConf) -> dict[str, Any] | None:
    """The cached ADD result of this attachment, or None when nothing is cached."""
    path = cache_path(root, network, rt)
    data = _read_json(path)
    if data is None:
        return None
    if not isinstance(data, dict):
        raise CacheError(f"cache file {path} does not hold a JSON object; remove it")
    if data.get("kind") != CACHE_KIND:
        return data  # written by libcni before cniCacheV1: the file is the bare result
    result = data.get("result")
    if result is None or result == {}:
        return None
    if not isinstance(result, dict):
        raise CacheError(f'cache file {path}: "result" is not a JSON object; remove the file')
    return result


def remove_result(root: Path, network: str, rt: RuntimeConf) -> None:
    try:
        path = cache_path(root, network, rt)
    except CacheError:
        return  # no such file can exist, so there is nothing to remove
    try:
        path.unlink(missing_ok=True)
    except OSError as e:
        raise CacheError(
            f"could not remove cache file {path}: {e.strerror}; remove it by hand"
        ) from e


def cached_attachments(root: Path) -> list[CachedAttachment]:
    """Every readable cniCacheV1 entry, in file name order; anything else is skipped like libcni."""
    results = root / "results"
    try:
        # Dot files are our own half-written temporaries (see _replace_file).
        names = sorted(e.name for e in os.scandir(results) if not e.name.startswith("."))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise CacheError(f"cannot list the result cache {results}: {e.strerror}") from e
    found = (_attachment_from(results / name) for name in names)
    return [attachment for attachment in found if attachment is not None]


def _attachment_from(path: Path) -> CachedAttachment | None:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("kind") != CACHE_KIND:
        return None
    network, ifname = data.get("networkName"), data.get("ifName")
    if not (isinstance(network, str) and network and isinstance(ifname, str) and ifname):
        return None
    runtime = _runtime_from(data, ifname)
    return None if runtime is None else CachedAttachment(network, runtime)


def _runtime_from(data: Mapping[str, Any], ifname: str) -> RuntimeConf | None:
    """None when a field has the wrong type: Go's unmarshal would fail and libcni skip the file."""
    container_id, netns = data.get("containerId", ""), data.get("netns", "")
    cni_args = _cni_args_from(data.get("cniArgs"))
    capability_args = data.get("capabilityArgs") or {}
    if cni_args is None:
        return None
    valid = (
        isinstance(container_id, str)
        and isinstance(netns, str)
        and isinstance(capability_args, dict)
        and _is_base64(data.get("config"))
    )
    if not valid:
        return None
    return RuntimeConf(container_id, netns, ifname, cni_args, capability_args)


def _cni_args_from(raw: Any) -> tuple[tuple[str, str], ...] | None:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        return None
    pairs: list[tuple[str, str]] = []
    for pair in raw:
        if not (
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(s, str) for s in pair)
        ):
            return None
        pairs.append((pair[0], pair[1]))
    return tuple(pairs)


def _is_base64(raw: Any) -> bool:
    if raw is None:
        return True
    if not isinstance(raw, str):
        return False
    try:
        base64.b64decode(raw, validate=True)
    except binascii.Error:
        return False
    return True


def _read_json(path: Path) -> Any:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CacheError(f"cannot read cache file {path}: {e.strerror}") from e
    try:
        return json.loads(data)
    except ValueError as e:
        raise CacheError(f"cache file {path} is not valid JSON ({e}); remove it") from e


def _make_private_dirs(directory: Path) -> None:
    """Create missing levels 0700, like Go's MkdirAll (os.makedirs would give parents 0777)."""
    missing: list[Path] = []
    level = directory
    while not level.exists():
        missing.append(level)
        level = level.parent
    for level in reversed(missing):
        level.mkdir(mode=0o700, exist_ok=True)


def _replace_file(path: Path, data: bytes) -> None:
    # mkstemp creates the file 0600, which is the mode libcni gives cache files.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
