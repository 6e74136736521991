"""libnftables in process, through ctypes: what `nft` does, without a process per command.

The library is Debian's libnftables1, which the nftables package depends on. One context, for
the process's own network namespace, lives as long as the process. Closing a context's netlink
socket waits for the kernel to free what earlier transactions replaced or deleted (an RCU grace
period, ~10 ms here), so a context per command would pay that on most writes; and libnftables'
own cache is revalidated against the ruleset's generation on every command, so a kept context
never works from stale state. The socket belongs to the namespace the context was made in, so
the kept context serves the process's own namespace only; a thread that entered another
namespace gets a context of its own for that one command, so it sees that namespace's rules, as
a spawned `nft` would, and no socket keeps a container's namespace alive after the container is
gone.
"""

from __future__ import annotations

import ctypes
import os
import threading
from typing import Any

from cni_bridge_py.firewall.nft_transport import Outcome, in_process_netns

SONAME = "libnftables.so.1"
CTX_DEFAULT = 0
OUTPUT_HANDLE = 1 << 3
OUTPUT_JSON = 1 << 4
OUTPUT_NUMERIC_PRIO = 1 << 8
# nft_ctx_input_set_flags exists from libnftables 1.0.7; 1.0.6 (Debian 12) already tries
# JSON first whenever JSON output is on, so there the output flag is enough.
INPUT_JSON = 1 << 1

# libnftables documents no thread safety (its one-time global init and xtables state are
# process-wide, and a context is not to be shared): one command at a time per process. Our
# commands take well under a millisecond, except listings of many rules.
_CALLS = threading.Lock()


def _typed(lib: ctypes.CDLL, name: str, restype: Any, *argtypes: Any) -> Any:
    func = getattr(lib, name)
    func.restype, func.argtypes = restype, list(argtypes)
    return func


class Libnftables:
    """The entry points a command needs, typed once, and the context kept for the process's
    namespace."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        ctx = ctypes.c_void_p
        self._new = _typed(lib, "nft_ctx_new", ctx, ctypes.c_uint32)
        self._output_flags = _typed(lib, "nft_ctx_output_set_flags", None, ctx, ctypes.c_uint)
        self._buffer_output = _typed(lib, "nft_ctx_buffer_output", ctypes.c_int, ctx)
        self._buffer_error = _typed(lib, "nft_ctx_buffer_error", ctypes.c_int, ctx)
        self._run = _typed(lib, "nft_run_cmd_from_buffer", ctypes.c_int, ctx, ctypes.c_char_p)
        self._output = _typed(lib, "nft_ctx_get_output_buffer", ctypes.c_char_p, ctx)
        self._error = _typed(lib, "nft_ctx_get_error_buffer", ctypes.c_char_p, ctx)
        self._input_flags = None
        if hasattr(lib, "nft_ctx_input_set_flags"):
            self._input_flags = _typed(
                lib, "nft_ctx_input_set_flags", ctypes.c_uint, ctx, ctypes.c_uint
            )
        self._free = _typed(lib, "nft_ctx_free", None, ctx)
        # (pid, context): a forked child must not talk over its parent's socket.
        self._kept: tuple[int, int] | None = None

    def run(self, commands: str, *, json: bool = False, handles: bool = False) -> Outcome:
        """One nft_run_cmd_from_buffer: a batch of writes is one kernel transaction. `json`
        takes JSON in and gives JSON out; `handles` prints `# handle N` after each rule (and
        chain priorities as numbers)."""
        flags = OUTPUT_JSON if json else 0
        flags |= (OUTPUT_HANDLE | OUTPUT_NUMERIC_PRIO) if handles else 0
        with _CALLS:
            kept = in_process_netns()
            pid = os.getpid()
            ctx = self._kept[1] if kept and self._kept and self._kept[0] == pid else None
            if ctx is None:
                ctx = self._new(CTX_DEFAULT)
                if not ctx:
                    return Outcome(False, "", "libnftables: nft_ctx_new failed")
            try:
                return self._command(ctx, commands, json, flags)
            finally:
                if kept:
                    self._kept = (pid, ctx)
                else:
                    self._free(ctx)

    def _command(self, ctx: int, commands: str, json: bool, flags: int) -> Outcome:
        if self._buffer_output(ctx) != 0 or self._buffer_error(ctx) != 0:
            return Outcome(False, "", "libnftables: cannot buffer its output")
        self._output_flags(ctx, flags)
        if self._input_flags is not None:
            self._input_flags(ctx, INPUT_JSON if json else 0)
        rc = self._run(ctx, commands.encode(errors="surrogateescape"))
        # Reading a buffer also empties it for the next command.
        output, error = _text(self._output(ctx)), _text(self._error(ctx))
        return Outcome(rc == 0, output, error)


def _text(raw: bytes | None) -> str:
    return (raw or b"").decode(errors="surrogateescape")


_LOADED: list[Libnftables | None] = []
_LOADING = threading.Lock()


def load() -> Libnftables | None:
    """The library, loaded once per process; None where it cannot be (then `nft` runs)."""
    with _LOADING:
        if not _LOADED:
            try:
                _LOADED.append(Libnftables(ctypes.CDLL(SONAME)))
            except (OSError, AttributeError):
                _LOADED.append(None)
        return _LOADED[0]
