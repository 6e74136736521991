"""One validated plugin invocation, and the channel for what the runtime should read besides
the result (standard library only: the front builds these before any kernel code loads).

The verbs, IPAM and the agent take a Request; the process edge (cli, the agent, the
host-local plugin) passes the front a Handler that runs it.
"""

from __future__ import annotations

from cni_bridge_py.record import field, record

TYPE_CHECKING = False  # not typing's: importing typing costs every one-shot run ~10 ms
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any


@record(frozen=True)
class Request:
    command: str
    container_id: str
    netns: str
    ifname: str
    args: Mapping[str, str]
    path: tuple[str, ...]
    stdin: bytes
    # The decoded config object and its cniVersion.
    config: Mapping[str, Any]
    cni_version: str
    # Test hook: the name of an ADD/DEL step to fail at (see faults.py).
    fault: str = ""
    # The plugin's PATH: where iptables is looked up (the reference uses exec.LookPath).
    search_path: str = ""
    # The whole environment: a delegated IPAM plugin runs with it (CNI_COMMAND replaced).
    environ: Mapping[str, str] = field(default_factory=dict)


class Notes:
    """Diagnostics of one request for the runtime (its stderr): a rollback step that failed,
    what GC removed, a delegated IPAM plugin's stderr. Collected, never written directly: under
    the agent the process's stderr is the agent's journal, not the runtime's."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def add(self, text: str) -> None:
        self._lines.append(text if text.endswith("\n") else text + "\n")

    def text(self) -> str:
        return "".join(self._lines)


if TYPE_CHECKING:
    # Runs one validated request and returns its stdout (the result JSON, or "" for the verbs
    # that print nothing); raises CniError for the error JSON.
    Handler = Callable[[Request, Notes], str]


def __getattr__(name: str) -> object:
    """Handler at run time, built on first use: collections.abc is not on the error path."""
    if name == "Handler":
        from collections.abc import Callable  # noqa: PLC0415

        return Callable[[Request, Notes], str]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
