"""Typed CNI errors: one class per code of the CNI spec, rendered as the spec's error JSON.

Standard library only: the front answers every error without loading a kernel library.
"""

from __future__ import annotations

# Messages name what was wrong, which may be megabytes of input (a 4 MB network name is a
# valid name): the JSON keeps the first MAX_TEXT characters of msg and of details.
MAX_TEXT = 4096


def _capped(text: str) -> str:
    if len(text) <= MAX_TEXT:
        return text
    return f"{text[:MAX_TEXT]}... ({len(text) - MAX_TEXT} more characters)"


class CniError(Exception):
    """An error a runtime can act on: a CNI code, a message and optional details."""

    # A class attribute; not ClassVar-annotated so that VERSION never imports typing.
    code: int = 999

    def __init__(self, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details

    def to_dict(self, cni_version: str) -> dict[str, object]:
        out: dict[str, object] = {
            "cniVersion": cni_version,
            "code": self.code,
            "msg": _capped(self.msg),
        }
        if self.details:
            out["details"] = _capped(self.details)
        return out

    def to_json(self, cni_version: str) -> str:
        from cni_bridge_py import cjson  # noqa: PLC0415 - only errors need it, not VERSION

        return cjson.dumps(self.to_dict(cni_version), indent=4)

    def __str__(self) -> str:
        return f"{self.msg}: {self.details}" if self.details else self.msg


class IncompatibleVersion(CniError):
    code = 1


class UnsupportedField(CniError):
    code = 2


class UnknownContainer(CniError):
    code = 3


class InvalidEnvironment(CniError):
    code = 4


class IOFailure(CniError):
    code = 5


class DecodingFailure(CniError):
    code = 6


class InvalidConfig(CniError):
    code = 7


class InvalidNetns(CniError):
    """Code 8 is not in the spec's table but is what the Go skeleton uses for netns errors."""

    code = 8


class TryAgainLater(CniError):
    code = 11


class PluginUnavailable(CniError):
    """STATUS: the plugin cannot serve ADD right now."""

    code = 50


class InternalError(CniError):
    code = 999


class PassthroughError(CniError):
    """An error object returned by a delegated plugin, kept exactly as it sent it."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg, details)
        self.passthrough_code = code

    def to_dict(self, cni_version: str) -> dict[str, object]:
        out = super().to_dict(cni_version)
        out["code"] = self.passthrough_code
        return out
