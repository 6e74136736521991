"""Where the agent listens (os only: the front checks it before importing any socket code)."""

from __future__ import annotations

import os
from collections.abc import Mapping

DEFAULT_SOCKET = "/run/cni-bridge-py/agent.sock"
# Where the front looks for the agent; empty or "off" disables it.
SOCKET_ENV = "CNI_BRIDGE_PY_AGENT"


def listening_socket(env: Mapping[str, str]) -> str | None:
    """The agent's socket path when one is configured and present, else None."""
    path = env.get(SOCKET_ENV, DEFAULT_SOCKET)
    if path in ("", "off") or not os.path.exists(path):
        return None
    return path
