"""The process edge: the only reader of os.environ, stdin and argv; the only writer of exit codes.

`cni-bridge-py` with CNI_COMMAND in the environment (or no arguments) is the CNI plugin;
`cni-bridge-py cnitool add|check|del|gc|status NETWORK NETNS` is the cnitool-compatible runner;
`cni-bridge-py agent [--socket PATH]` is the resident agent the plugin hands requests to;
`cni-bridge-py node --config FILE [--status]` is a cluster network's node service (cluster/);
`cni-bridge-py inspect [NETWORK...] [--json] [--graph FILE]` shows what networks hold (inspect/);
`cni-bridge-py doctor [NETWORK...] [--fix]` says what is broken and what to do (doctor/).

The plugin's path to an answer (VERSION, or the agent's reply) loads only this module, version
(or the agent's client and protocol) and _socket: the launcher runs without `site`, so even
os is not loaded yet, and the environment is read as posix.environ's bytes.
"""

import sys
from posix import (
    _exit,
    environ,  # the bytes the process got; os would cost ~1.5 ms (collections.abc)
    stat,
)

# Not typing.TYPE_CHECKING: importing typing costs every plugin run. mypy honours the name.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from cni_bridge_py.agent.protocol import Reply
    from cni_bridge_py.answer import Answer
    from cni_bridge_py.request import Notes, Request


# agent.protocol's SOCKET_ENV and DEFAULT_SOCKET: with the agent "off" (or empty), or no socket
# where it would listen, the one-shot path does not load the agent's client at all.
AGENT_ENV = b"CNI_BRIDGE_PY_AGENT"
DEFAULT_AGENT_SOCKET = b"/run/cni-bridge-py/agent.sock"


SUBCOMMANDS = ("cnitool", "agent", "node", "inspect", "doctor")


def launch(entry: "Callable[[], int] | None" = None) -> None:
    """The launcher's entry (install.py): `entry` (main), then, for a plugin call, the end of
    the process without the interpreter's finalization: freeing every object the call made,
    ~1 ms of each call that a runtime waits for and nothing uses. The answer is flushed
    first; the subcommands (the agent, the runner...) end as usual, their cleanup included."""
    if entry is None:
        if sys.argv[1:2] and sys.argv[1] in SUBCOMMANDS:
            sys.exit(main())
        entry = main
    code = entry()  # an exception leaves the usual way, its traceback printed
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)  # a profiler or coverage writes its report at the usual exit
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        code = code or 1  # the runtime stopped reading: the answer did not get through
    _exit(code)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in SUBCOMMANDS:
        return _subcommand(args[0], args[1:])
    if args and args[0] in ("-h", "--help"):
        sys.stdout.write(__doc__ or "")
        return 0
    return plugin_main()


def _subcommand(name: str, rest: list[str]) -> int:
    """Each subcommand's module, loaded only when it is asked for."""
    if name == "cnitool":
        import os  # noqa: PLC0415 - the plugin's path never loads it

        from cni_bridge_py.runner.cnitool import run_cnitool  # noqa: PLC0415 - only the runner

        return run_cnitool(rest, dict(os.environ))
    if name == "agent":
        from cni_bridge_py.agent.server import main as agent_main  # noqa: PLC0415

        return agent_main(rest)
    if name == "node":
        from cni_bridge_py.cluster.main import main as node_main  # noqa: PLC0415

        return node_main(rest)
    if name == "inspect":
        from cni_bridge_py.inspect.main import main as inspect_main  # noqa: PLC0415

        return inspect_main(rest)
    from cni_bridge_py.doctor.main import main as doctor_main  # noqa: PLC0415

    return doctor_main(rest)


def plugin_main() -> int:
    command = environ.get(b"CNI_COMMAND")
    if command == b"VERSION":
        # The most frequent call of all (runtimes ask before each config): nothing else loaded.
        from cni_bridge_py.version import version_json  # noqa: PLC0415

        sys.stdout.write(version_json())
        return 0
    stdin = _read_stdin() if command else b""
    if command and _agent_may_listen():
        reply = _ask_agent(stdin)
        if reply is not None:
            return _emit_bytes(reply)
    from cni_bridge_py.front import handle  # noqa: PLC0415

    return serve(lambda env, data: handle(env, data, run_verb), stdin)


def run_verb(request: "Request", notes: "Notes") -> str:
    """The verbs, loaded only once a request is valid: they pull in pyroute2, which VERSION
    and every argument or config error never need."""
    from cni_bridge_py.verbs.dispatch import dispatch  # noqa: PLC0415

    return dispatch(request, notes)


def _agent_may_listen() -> bool:
    """False when no agent can answer: switched off, or nothing at its socket's path."""
    configured = environ.get(AGENT_ENV)
    if configured in (b"off", b""):
        return False
    try:
        stat(DEFAULT_AGENT_SOCKET if configured is None else configured)
    except (OSError, ValueError):  # ValueError: a NUL in the name
        return False
    return True


def _ask_agent(stdin: bytes) -> "Reply | None":
    """With a resident agent listening, hand it the invocation untouched (see agent.client)."""
    from cni_bridge_py.agent.client import forward, listening_socket  # noqa: PLC0415
    from cni_bridge_py.agent.protocol import netns_identity  # noqa: PLC0415

    path = listening_socket(environ)
    return None if path is None else forward(path, environ, stdin, netns_identity())


def serve(
    handle: "Callable[[Mapping[str, str], bytes], Answer]", stdin: bytes | None = None
) -> int:
    """Environment and stdin in, the answer out, the exit code back: for each plugin."""
    env = _str_environ()
    if stdin is None:
        stdin = b"" if env.get("CNI_COMMAND") in (None, "", "VERSION") else _read_stdin()
    answer = handle(env, stdin)
    if answer.stdout:
        sys.stdout.write(answer.stdout)
        sys.stdout.flush()
    if answer.stderr:
        sys.stderr.write(answer.stderr)
    return answer.exit_code


def _str_environ() -> dict[str, str]:
    """What os.environ holds (names and values decoded as os decodes them), without loading
    os: an error answered here never needs it."""
    encoding, errors = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
    return {
        name.decode(encoding, errors): value.decode(encoding, errors)
        for name, value in environ.items()
    }


def _emit_bytes(reply: "Reply") -> int:
    exit_code, stdout, stderr = reply
    if stdout:
        sys.stdout.buffer.write(stdout)
        sys.stdout.buffer.flush()
    if stderr:
        sys.stderr.buffer.write(stderr)
        sys.stderr.buffer.flush()
    return exit_code


def _read_stdin() -> bytes:
    try:
        return sys.stdin.buffer.read()
    except (OSError, ValueError, AttributeError):
        return b""  # no stdin at all (closed, or None): decoding reports it as an empty config
