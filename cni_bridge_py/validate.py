"""Name rules shared by the environment and the config (the Go skeleton's rules)."""

from __future__ import annotations

# Container IDs and network names (cni pkg/utils): ^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$ in Go's
# regexp, checked with str methods (re costs every one-shot run ~6 ms).
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_ID_CHARS = _ALNUM + "_.-"
MAX_IFNAME_LEN = 15  # IFNAMSIZ - 1


def id_problem(value: str) -> str | None:
    """Why `value` is not a valid container ID or network name, or None."""
    if not value:
        return "it is empty"
    if value[0] not in _ALNUM or value.strip(_ID_CHARS):
        return (
            "it must start with a letter or digit"
            " and contain only letters, digits, '_', '.' and '-'"
        )
    return None


def ifname_problem(value: str) -> str | None:
    """Why `value` is not a valid Linux interface name, or None."""
    if not value:
        return "it is empty"
    if any("\ud800" <= char <= "\udfff" for char in value):
        # Bytes os.environ could not decode (surrogateescape) or a lone JSON surrogate.
        return "it is not valid UTF-8"
    # The kernel (and Go's len) count bytes, not characters.
    if len(value.encode()) > MAX_IFNAME_LEN:
        return f"it is longer than {MAX_IFNAME_LEN} bytes"
    if value in (".", ".."):
        return "it is '.' or '..'"
    for char in value:
        # NUL ends a name in the kernel: "br\0x" would act on a link named "br".
        if char in "/:\0" or char.isspace():
            return f"it contains {char!r}"
    return None
