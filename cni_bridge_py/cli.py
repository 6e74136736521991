"""The process edge: the only reader of os.environ, stdin and argv; the only writer of exit codes.

`cni-bridge-py` with CNI_COMMAND in the environment (or no arguments) is the CNI plugin;
`cni-bridge-py cnitool add|check|del|gc|status NETWORK NETNS` is the cnitool-compatible runner;
`cni-bridge-py agent [--socket PATH]` is the resident agent the plugin hands requests to.
"""

from __future__ import annotations

import os
import sys

# Not typing.TYPE_CHECKING: importing typing costs VERSION ~20 ms. mypy honours the name.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from cni_bridge_py.front import Response


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "cnitool":
        from cni_bridge_py.runner import run_cnitool  # noqa: PLC0415 - only the runner needs it

        return run_cnitool(args[1:], dict(os.environ))
    if args and args[0] == "agent":
        from cni_bridge_py.agent import main as agent_main  # noqa: PLC0415

        return agent_main(args[1:])
    if args and args[0] in ("-h", "--help"):
        sys.stdout.write(__doc__ or "")
        return 0
    return plugin_main()


def plugin_main() -> int:
    command = os.environ.get("CNI_COMMAND")
    if command == "VERSION":
        # The most frequent call of all (runtimes ask before each config): nothing else loaded.
        from cni_bridge_py.version import version_json  # noqa: PLC0415

        sys.stdout.write(version_json())
        return 0
    stdin = _read_stdin() if command else b""
    if command:
        answer = _ask_agent(stdin)
        if answer is not None:
            return answer
    from cni_bridge_py.front import handle  # noqa: PLC0415

    return serve(handle, stdin)


def _ask_agent(stdin: bytes) -> int | None:
    """With a resident agent listening, hand it the invocation untouched (see agent_client)."""
    from cni_bridge_py.agent_path import listening_socket  # noqa: PLC0415

    if listening_socket(os.environ) is None:
        return None  # no socket code loaded at all
    from cni_bridge_py.agent_client import forward  # noqa: PLC0415

    answer = forward(os.environ, stdin)
    if answer is None:
        return None
    return _emit(answer.stdout, answer.stderr, answer.exit_code)


def serve(
    handle: Callable[[Mapping[str, str], bytes], Response], stdin: bytes | None = None
) -> int:
    """Environment and stdin in, the response out, the exit code back: for each plugin."""
    if stdin is None:
        stdin = b"" if os.environ.get("CNI_COMMAND") in (None, "", "VERSION") else _read_stdin()
    response = handle(os.environ, stdin)
    return _emit(response.stdout, response.stderr, response.exit_code)


def _emit(stdout: str, stderr: str, exit_code: int) -> int:
    if stdout:
        sys.stdout.write(stdout)
        sys.stdout.flush()
    if stderr:
        sys.stderr.write(stderr)
    return exit_code


def _read_stdin() -> bytes:
    try:
        return sys.stdin.buffer.read()
    except (OSError, ValueError):
        return b""  # no stdin at all: decoding reports it as an empty config
