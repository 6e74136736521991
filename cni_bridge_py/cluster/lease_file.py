"""The node's local record of its lease: written by the node service, read by the plugin.

The plugin never talks to etcd: it allocates from the subnet this file names, so ADD works
while etcd is unreachable as long as the node holds a subnet. Stdlib only (the plugin's path).
"""

from __future__ import annotations

import ipaddress
import json
import os

from cni_bridge_py.record import record


@record(frozen=True)
class LocalLease:
    network: str
    subnet: ipaddress.IPv4Network
    node: str
    backend: str


class UnreadableLease(ValueError):
    """The file exists but does not hold a lease (truncated by hand, another format)."""


def read(path: str) -> LocalLease | None:
    """None when there is no file yet (the service has not leased a subnet)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw)
        return LocalLease(
            network=str(data["network"]),
            subnet=ipaddress.IPv4Network(data["subnet"]),
            node=str(data["node"]),
            backend=str(data["backend"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise UnreadableLease(f"{path}: {exc}") from exc


def write(path: str, lease: LocalLease) -> None:
    """Atomically (a new file renamed over the old): a plugin reads the old or the new one,
    never half of one."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    body = json.dumps(
        {
            "network": lease.network,
            "subnet": str(lease.subnet),
            "node": lease.node,
            "backend": lease.backend,
        },
        sort_keys=True,
    )
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as handle:
        handle.write(body + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
