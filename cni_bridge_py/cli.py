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

    from cni_bridge_py.answer import Answer
    from cni_bridge_py.request import Notes, Request


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "cnitool":
        from cni_bridge_py.runner.cnitool import run_cnitool  # noqa: PLC0415 - only the runner needs it

        return run_cnitool(args[1:], dict(os.environ))
    if args and args[0] == "agent":
        from cni_bridge_py.agent.server import main as agent_main  # noqa: PLC0415

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
            return _emit(answer)
    from cni_bridge_py.front import handle  # noqa: PLC0415

    return serve(lambda env, data: handle(env, data, run_verb), stdin)


def run_verb(request: Request, notes: Notes) -> str:
    """The verbs, loaded only once a request is valid: they pull in pyroute2, which VERSION
    and every argument or config error never need."""
    from cni_bridge_py.verbs.dispatch import dispatch  # noqa: PLC0415

    return dispatch(request, notes)


def _ask_agent(stdin: bytes) -> Answer | None:
    """With a resident agent listening, hand it the invocation untouched (see agent.client)."""
    from cni_bridge_py.agent.path import listening_socket  # noqa: PLC0415

    if listening_socket(os.environ) is None:
        return None  # no socket code loaded at all
    from cni_bridge_py.agent.client import forward  # noqa: PLC0415

    return forward(os.environ, stdin)


def serve(handle: Callable[[Mapping[str, str], bytes], Answer], stdin: bytes | None = None) -> int:
    """Environment and stdin in, the answer out, the exit code back: for each plugin."""
    if stdin is None:
        stdin = b"" if os.environ.get("CNI_COMMAND") in (None, "", "VERSION") else _read_stdin()
    return _emit(handle(os.environ, stdin))


def _emit(answer: Answer) -> int:
    if answer.stdout:
        sys.stdout.write(answer.stdout)
        sys.stdout.flush()
    if answer.stderr:
        sys.stderr.write(answer.stderr)
    return answer.exit_code


def _read_stdin() -> bytes:
    try:
        return sys.stdin.buffer.read()
    except (OSError, ValueError):
        return b""  # no stdin at all: decoding reports it as an empty config
