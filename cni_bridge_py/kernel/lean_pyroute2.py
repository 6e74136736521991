"""pyroute2's IPRoute without running pyroute2/__init__.py.

That __init__ eagerly imports NDB, IPDB, conntrack, sqlite3 and ~160 modules a plugin never
uses (about half of pyroute2's import time, measured in docs/benchmarks.md). Registering a
bare package object first lets Python import only the submodules IPRoute needs. If the
installed pyroute2 is laid out differently, the ordinary import is used instead.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any


def _lean_import() -> tuple[Any, Any, Any]:
    if "pyroute2" not in sys.modules:
        spec = importlib.util.find_spec("pyroute2")
        if spec is None or spec.submodule_search_locations is None:
            raise ImportError("pyroute2 is not installed")
        package = types.ModuleType("pyroute2")
        package.__path__ = list(spec.submodule_search_locations)
        package.__spec__ = spec
        package.__file__ = spec.origin
        sys.modules["pyroute2"] = package
    linux = importlib.import_module("pyroute2.iproute.linux")
    exceptions = importlib.import_module("pyroute2.netlink.exceptions")
    return linux.IPRoute, exceptions.NetlinkError, exceptions.NetlinkDumpInterrupted


def _full_import() -> tuple[Any, Any, Any]:
    for name in [m for m in sys.modules if m == "pyroute2" or m.startswith("pyroute2.")]:
        del sys.modules[name]
    import pyroute2  # noqa: PLC0415
    from pyroute2.netlink import exceptions  # noqa: PLC0415

    return pyroute2.IPRoute, exceptions.NetlinkError, exceptions.NetlinkDumpInterrupted


try:
    IPRoute, NetlinkError, NetlinkDumpInterrupted = _lean_import()
except (ImportError, AttributeError):
    IPRoute, NetlinkError, NetlinkDumpInterrupted = _full_import()

__all__ = ["IPRoute", "NetlinkDumpInterrupted", "NetlinkError"]
