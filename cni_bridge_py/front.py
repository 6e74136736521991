"""The request edge: (environment, stdin bytes) -> (stdout, stderr, exit code).

Standard library only. VERSION, the about text and every argument, decoding or config error
are answered here without loading a kernel library; valid requests go to the verbs.
"""

from __future__ import annotations

from cni_bridge_py import __version__, cjson
from cni_bridge_py import version as versions
from cni_bridge_py.answer import Answer
from cni_bridge_py.errors import (
    CniError,
    DecodingFailure,
    InternalError,
    InvalidConfig,
    InvalidEnvironment,
)
from cni_bridge_py.faults import FAULT_ENV
from cni_bridge_py.request import Notes, Request
from cni_bridge_py.validate import id_problem, ifname_problem

TYPE_CHECKING = False  # not typing's: importing typing costs every one-shot run ~10 ms
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from cni_bridge_py.request import Handler

VERBS = ("ADD", "DEL", "CHECK", "VERSION", "GC", "STATUS")
# Which variables each verb needs (the Go skeleton's table; GC and STATUS only CNI_PATH).
REQUIRED_ENV: dict[str, tuple[str, ...]] = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"),
    "GC": ("CNI_PATH",),
    "STATUS": ("CNI_PATH",),
}
# CNI_ARGS keys this plugin understands; others need IgnoreUnknown.
KNOWN_ARGS = frozenset({"IgnoreUnknown", "IP", "MAC"})


def about() -> str:
    supported = ", ".join(versions.SUPPORTED_VERSIONS)
    return (
        f"CNI bridge plugin (cni-bridge-py) v{__version__}\n"
        f"CNI protocol versions supported: {supported}\n"
    )


def handle(env: Mapping[str, str], stdin: bytes, dispatch: Handler) -> Answer:
    """Answer one plugin invocation; `dispatch` runs the validated request (the process edge
    passes the verbs, so this module never imports them)."""
    command = env.get("CNI_COMMAND", "")
    if not command:
        return Answer(stderr=about())
    if command == "VERSION":
        return Answer(stdout=versions.version_json())
    notes = Notes()
    try:
        request = parse_request(env, stdin)
        return Answer(stdout=dispatch(request, notes), stderr=notes.text())
    except CniError as exc:
        # Errors only: a successful request decodes stdin once, in parse_request.
        error = exc.to_json(error_version(stdin)) + "\n"
        return Answer(stdout=error, stderr=notes.text(), exit_code=1)
    except Exception as exc:
        import traceback  # noqa: PLC0415 - only a bug pays for it

        internal = InternalError(
            f"internal error: {type(exc).__name__}: {exc}", "see the plugin's stderr"
        )
        return Answer(
            stdout=internal.to_json(error_version(stdin)) + "\n",
            stderr=notes.text() + traceback.format_exc(),
            exit_code=1,
        )


def error_version(stdin: bytes) -> str:
    """Errors are printed in the config's version when it is one we speak."""
    try:
        found = cjson.loads(stdin).get("cniVersion")
    except (ValueError, AttributeError, RecursionError):
        return versions.CURRENT_VERSION
    return found if found in versions.SUPPORTED_VERSIONS else versions.CURRENT_VERSION


def parse_request(env: Mapping[str, str], stdin: bytes) -> Request:
    command = env.get("CNI_COMMAND", "")
    if command not in VERBS:
        raise InvalidEnvironment(
            f"unknown CNI_COMMAND {command!r}", "expected one of " + ", ".join(VERBS)
        )
    missing = [name for name in REQUIRED_ENV[command] if not env.get(name)]
    if missing:
        raise InvalidEnvironment(f"required env variables [{','.join(missing)}] missing")
    container_id = env.get("CNI_CONTAINERID", "")
    ifname = env.get("CNI_IFNAME", "")
    if "CNI_CONTAINERID" in REQUIRED_ENV[command] and (why := id_problem(container_id)):
        raise InvalidEnvironment(f"invalid CNI_CONTAINERID {container_id!r}: {why}")
    if "CNI_IFNAME" in REQUIRED_ENV[command] and (why := ifname_problem(ifname)):
        raise InvalidEnvironment(f"invalid CNI_IFNAME {ifname!r}: {why}")
    config = decode_config(stdin)
    cni_version = str(config.get("cniVersion") or versions.IMPLICIT_VERSION)
    versions.require_supported(cni_version)
    versions.require_verb_allowed(command, cni_version)
    return Request(
        command=command,
        container_id=container_id,
        netns=env.get("CNI_NETNS", ""),
        ifname=ifname,
        args=parse_cni_args(env.get("CNI_ARGS", "")),
        path=tuple(p for p in env.get("CNI_PATH", "").split(":") if p),
        stdin=stdin,
        config=config,
        cni_version=cni_version,
        fault=env.get(FAULT_ENV, ""),
        search_path=env.get("PATH", ""),
        environ=dict(env),
    )


def decode_config(stdin: bytes) -> dict[str, Any]:
    try:
        # NaN and Infinity are Python's extensions, not JSON (Go rejects them too).
        config = cjson.loads(stdin, parse_constant=_not_json)
        # A "\ud800" escape decodes to a lone surrogate, which no path, interface name or
        # output can encode: refuse it here rather than fail deep inside a verb. Only a \u
        # escape or non-ASCII bytes (decoded with surrogatepass) can make one: the common
        # config, plain ASCII, skips the walk.
        if b"\\u" in stdin or not stdin.isascii():
            cjson.check_encodable(config)
    except UnicodeEncodeError as exc:
        raise DecodingFailure(
            "error decoding the network config on stdin",
            f"a string holds an unpaired UTF-16 surrogate: {exc.reason}",
        ) from exc
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise DecodingFailure(
            "error decoding the network config on stdin", f"not valid JSON: {exc}"
        ) from exc
    if not isinstance(config, dict):
        raise DecodingFailure(
            "error decoding the network config on stdin",
            f"expected a JSON object, got {type(config).__name__}",
        )
    name = config.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidConfig('invalid network config: "name" is missing or empty')
    if why := id_problem(name):
        raise InvalidConfig(f'invalid network config: "name" {name!r} is not valid: {why}')
    cni_version = config.get("cniVersion", versions.IMPLICIT_VERSION)
    if not isinstance(cni_version, str):
        raise InvalidConfig('invalid network config: "cniVersion" must be a string')
    return config


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value")


def parse_cni_args(text: str) -> dict[str, str]:
    """'K=V;K2=V2' -> dict; unknown keys are an error unless IgnoreUnknown=1|true."""
    pairs: dict[str, str] = {}
    for item in filter(None, text.split(";")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidEnvironment(f"invalid CNI_ARGS pair {item!r}", "expected K=V;K2=V2")
        pairs[key] = value
    ignore_unknown = pairs.get("IgnoreUnknown", "").lower() in ("1", "true")
    unknown = sorted(k for k in pairs if k not in KNOWN_ARGS)
    if unknown and not ignore_unknown:
        raise InvalidEnvironment(
            f"ARGS: unknown args {unknown}", "add IgnoreUnknown=1 to CNI_ARGS to ignore them"
        )
    return pairs
