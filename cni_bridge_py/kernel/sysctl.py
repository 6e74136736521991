"""Writes to /proc/sys of the plugin's own network namespace."""

from __future__ import annotations

from cni_bridge_py.errors import IOFailure


class ProcSysctl:
    def __init__(self, root: str = "/proc/sys") -> None:
        self.root = root

    def read(self, key: str) -> str:
        with open(self._path(key)) as f:
            return f.read().strip()

    def write(self, key: str, value: str, *, required: bool = True) -> None:
        """key is a /proc/sys path, e.g. 'net/ipv4/ip_forward' (slashes, since interface
        names may hold dots). Skips the write when already set."""
        path = self._path(key)
        try:
            with open(path, "r+") as f:
                if f.read().strip() == value:
                    return
                f.seek(0)
                f.write(value)
        except OSError as exc:
            if required:
                raise IOFailure(f"cannot set {key}={value}", str(exc)) from exc

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"
