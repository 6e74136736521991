"""libcni's result cache as runtimes leave it, and a DEL sent the way libcni sends it.

`ctr run -d --cni` adds a container to the network and never removes it (ctr only tears down
what it ran in the foreground). A runtime built on libcni would call DelNetworkList with the
cached config and result: for every plugin of the list, in reverse order, the plugin's config
with the list's name and cniVersion and the cached result as prevResult, CNI_COMMAND=DEL, the
cached container ID and ifname, and the netns the runtime knows; then it drops the cache file.
"""

from __future__ import annotations

import base64
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.runtimes.mountns import MountNamespace
from tests.support.plugin import MINIMAL_PATH


@dataclass(frozen=True)
class CacheEntry:
    path: Path
    body: dict[str, Any]

    @classmethod
    def read(cls, path: Path) -> CacheEntry:
        body = json.loads(path.read_text())
        assert isinstance(body, dict) and body.get("kind") == "cniCacheV1", body
        return cls(path, body)

    @property
    def config_bytes(self) -> bytes:
        return base64.b64decode(self.body["config"])

    @property
    def config(self) -> dict[str, Any]:
        value = json.loads(self.config_bytes)
        assert isinstance(value, dict)
        return value

    @property
    def result(self) -> dict[str, Any]:
        value = self.body["result"]
        assert isinstance(value, dict)
        return value

    @property
    def container_id(self) -> str:
        return str(self.body["containerId"])


def cache_entries(cache_dir: Path, network: str) -> list[CacheEntry]:
    results = cache_dir / "results"
    return [CacheEntry.read(p) for p in sorted(results.glob(f"{network}-*"))]


def find_plugin(plugin_type: str, cni_path: str) -> Path:
    for directory in cni_path.split(":"):
        candidate = Path(directory) / plugin_type
        if candidate.is_file():
            return candidate
    raise AssertionError(f"plugin {plugin_type!r} not in CNI_PATH {cni_path}")


def delete_like_libcni(
    entry: CacheEntry, netns: str, cni_path: str, inside: MountNamespace | None = None
) -> None:
    """DEL every plugin of the cached list (reverse order), then remove the cache file.
    `inside`: the runtime's namespaces, where the plugins run (found from here in cni_path)."""
    conflist = entry.config
    cni_args = ";".join(f"{k}={v}" for k, v in entry.body.get("cniArgs") or [])
    capability_args: dict[str, Any] = entry.body.get("capabilityArgs") or {}
    for plugin in reversed(conflist["plugins"]):
        config = {
            **plugin,
            "name": conflist["name"],
            "cniVersion": conflist["cniVersion"],
            "prevResult": entry.result,
        }
        wanted = {k for k, on in plugin.get("capabilities", {}).items() if on}
        runtime_config = {k: v for k, v in capability_args.items() if k in wanted}
        if runtime_config:
            config["runtimeConfig"] = runtime_config
        env = {
            "PATH": MINIMAL_PATH,
            "CNI_COMMAND": "DEL",
            "CNI_CONTAINERID": entry.container_id,
            "CNI_NETNS": netns,
            "CNI_IFNAME": str(entry.body["ifName"]),
            "CNI_ARGS": cni_args,
            "CNI_PATH": cni_path,
        }
        argv = [str(find_plugin(plugin["type"], cni_path))]
        proc = subprocess.run(
            inside.argv(*argv) if inside is not None else argv,
            input=json.dumps(config).encode(),
            env=env,
            capture_output=True,
            check=False,
            timeout=60,
        )
        assert proc.returncode == 0, f"DEL failed: {proc.stdout!r} {proc.stderr!r}"
    entry.path.unlink()
