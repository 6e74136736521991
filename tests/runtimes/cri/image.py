"""The sandbox ("pause") image, built offline: busybox-static and a /pause script that sleeps
until it is signalled, as one uncompressed layer in an OCI image layout, packed as the tar
archive `ctr images import` reads. Nothing is pulled from a registry: containerd's CRI plugin
finds the image by the name in `sandbox_image` among the images of its `k8s.io` namespace."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

from tests.runtimes.support import BUSYBOX, is_static_elf, unavailable

# PID 1 of the pod ignores every signal it has no handler for: the trap is what lets a
# StopPodSandbox's SIGTERM end it at once. `wait` returns when a signal arrives.
PAUSE = b"""#!/bin/sh
trap 'exit 0' TERM INT
while :; do sleep 3600 & wait; done
"""
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def _add(
    tar: tarfile.TarFile,
    name: str,
    *,
    data: bytes = b"",
    mode: int = 0o755,
    kind: bytes = tarfile.REGTYPE,
    target: str = "",
) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname, info.size = kind, mode, target, len(data)
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def layer() -> bytes:
    """The root filesystem: /bin/busybox with sh and sleep, /pause, the usual mount points."""
    if not BUSYBOX.is_file() or not is_static_elf(BUSYBOX):
        unavailable(f"{BUSYBOX} is not a static busybox: apt-get install busybox-static")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ("bin", "dev", "proc", "sys", "etc", "tmp"):
            _add(tar, directory, kind=tarfile.DIRTYPE)
        _add(tar, "bin/busybox", data=BUSYBOX.read_bytes())
        for applet in ("sh", "sleep"):
            _add(tar, f"bin/{applet}", kind=tarfile.SYMTYPE, target="busybox", mode=0o777)
        _add(tar, "pause", data=PAUSE)
    return buffer.getvalue()


def _blob(blobs: dict[str, bytes], media_type: str, data: bytes) -> dict[str, Any]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def _json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def pause_archive(path: Path, name: str) -> Path:
    """Write the image `name` (e.g. localhost/cbpt-pause:cri) as an OCI archive at `path`."""
    blobs: dict[str, bytes] = {}
    rootfs = layer()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": ["/pause"], "Env": ["PATH=/bin"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(rootfs).hexdigest()]},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": _blob(blobs, CONFIG_TYPE, _json(config)),
        "layers": [_blob(blobs, LAYER_TYPE, rootfs)],
    }
    target = _blob(blobs, MANIFEST_TYPE, _json(manifest))
    # containerd names an imported image by this annotation (else by ref.name and a prefix).
    target["annotations"] = {
        "io.containerd.image.name": name,
        "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1],
    }
    files = {
        "oci-layout": _json({"imageLayoutVersion": "1.0.0"}),
        "index.json": _json({"schemaVersion": 2, "manifests": [target]}),
        **{f"blobs/sha256/{d.removeprefix('sha256:')}": data for d, data in blobs.items()},
    }
    with tarfile.open(path, "w") as archive:
        _add(archive, "blobs", kind=tarfile.DIRTYPE)
        _add(archive, "blobs/sha256", kind=tarfile.DIRTYPE)
        for member, data in files.items():
            _add(archive, member, data=data, mode=0o644)
    return path
