"""What our own nf_tables transactions wrote, known for as long as nobody else has committed
since.

nf_tables numbers the rulesets of a network namespace: every committed transaction, anyone's,
makes the next generation (its ID one more; a refused transaction changes nothing), and a
transaction whose first message asks for an echo is answered with the generation it made. So
when our transaction made generation G and the ledger was at G - 1, the ruleset at G is what
the ledger knew plus what we wrote: nobody committed in between. Any other commit breaks the
chain, and then the ledger knows only what our latest transaction wrote.

A CHECK asks the kernel for its generation (one small message) and, when the ledger is at it
and holds the container's rules as CHECK expects them, need not read them: reading the chain
and its jump cost a first CHECK ~0.2 ms here, the generation ~0.03 ms.

The agent's worker processes write the same namespace's rules, so they share one ledger
(SharedLedger): in memory shared across their fork, each commit and its entry made under a
lock that orders them as the kernel ordered the commits. Rules are entered by digest, so the
ledger is a fixed block of bytes either way; one that fills up forgets everything.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
from collections.abc import Iterator
from typing import Protocol

from cni_bridge_py.firewall.layout import MasqRequest

# generation, whether the ledger knows the ruleset at it (0 while an entry is being written:
# a process that dies halfway leaves a ledger that knows nothing), number of entries.
HEADER = struct.Struct("=III")
# An entry: a digest of the chain (what a removal matches), then one of the rules.
CHAIN_DIGEST = 8
RULES_DIGEST = 16
ENTRY = CHAIN_DIGEST + RULES_DIGEST
CAPACITY = 4096
SIZE = HEADER.size + CAPACITY * ENTRY


class Buffer(Protocol):
    """A bytearray, or an mmap shared with other processes."""

    def __getitem__(self, index: slice) -> bytes | bytearray: ...

    def __setitem__(self, index: slice, value: bytes) -> None: ...

    def find(self, sub: bytes, start: int, end: int) -> int: ...

    def __len__(self) -> int: ...


def rules_key(request: MasqRequest, family: int) -> bytes:
    """One family's rules of a container as a fresh setup writes them and CHECK expects
    them: the chain, its ACCEPTs and POSTROUTING's jumps follow from the chain's name and
    that family's addresses."""
    addresses = " ".join(str(a) for a in request.addresses if a.version == family)
    return _chain_digest(request.chain) + _digest(
        f"{family} {request.chain} {addresses}", RULES_DIGEST
    )


class Ledger:
    """Callers serialise its use with their transactions (each process's threads by the
    kept netlink socket's lock, processes by `locked`), so the ledger sees the commits in
    the order the kernel made them."""

    __slots__ = ("_buf",)

    def __init__(self, buffer: Buffer | None = None) -> None:
        # A process's own grows with its entries (slice assignment past its end extends a
        # bytearray): a one-shot run, whose ledger stays empty, allocates no block.
        self._buf: Buffer = buffer if buffer is not None else bytearray(HEADER.size)

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Held around a commit and its entry, and around a lookup (one process: nothing)."""
        return contextlib.nullcontext()

    def committed(self, generation: int | None, *, wrote: bytes = b"", removed: str = "") -> None:
        """Our transaction committed and made `generation` (None: the kernel did not say
        which): it wrote the rules `wrote` (a rules_key) whole, or removed rules of the chain
        `removed`."""
        last, known, count = HEADER.unpack(bytes(self._buf[: HEADER.size]))
        if generation is None or not known or generation != _after(last):
            count = 0  # someone else committed in between: what they did is unknown
        self._buf[: HEADER.size] = HEADER.pack(last, 0, count)
        if generation is None:
            return
        entries = bytes(self._buf[HEADER.size : HEADER.size + count * ENTRY])
        if removed:
            gone = _chain_digest(removed)
            kept = [entries[i : i + ENTRY] for i in range(0, len(entries), ENTRY)]
            entries = b"".join(e for e in kept if e[:CHAIN_DIGEST] != gone)
        if wrote and _find(entries, wrote) < 0:
            entries = entries + wrote if len(entries) < CAPACITY * ENTRY else wrote
        self._buf[HEADER.size : HEADER.size + len(entries)] = entries
        self._buf[: HEADER.size] = HEADER.pack(generation, 1, len(entries) // ENTRY)

    def knows(self, rules: bytes) -> bool:
        """Whether the ledger holds `rules` as our transaction wrote them: only then can the
        kernel's generation confirm them (at), and asking it is useless otherwise."""
        _last, known, count = HEADER.unpack(bytes(self._buf[: HEADER.size]))
        return bool(known) and _find(self._buf, rules, count) >= 0

    def at(self, generation: int) -> bool:
        """Whether the ledger knows the ruleset at `generation`."""
        last, known, _count = HEADER.unpack(bytes(self._buf[: HEADER.size]))
        return bool(known) and generation == last


class SharedLedger(Ledger):
    """One ledger for a process and the children it forks: anonymous memory they all map,
    locked with a POSIX record lock on its file (a lock owned by the process, so forked
    children exclude each other through the descriptor they inherit)."""

    __slots__ = ("_fd",)

    def __init__(self) -> None:
        import mmap  # noqa: PLC0415 - only the agent shares a ledger

        fd = os.memfd_create("cni-bridge-py-nft-ledger", os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, SIZE)
            super().__init__(mmap.mmap(fd, SIZE))
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        import fcntl  # noqa: PLC0415

        fcntl.lockf(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)

    def locked(self) -> contextlib.AbstractContextManager[None]:
        return self._exclusive()


def _find(entries: Buffer | bytes, rules: bytes, count: int | None = None) -> int:
    """The index of the entry `rules` among the first `count` (all of `entries` when None),
    or -1; a match across two entries' bytes is no match."""
    start = HEADER.size if count is not None else 0
    end = start + (count * ENTRY if count is not None else len(entries))
    at = entries.find(rules, start, end)
    while at >= 0 and (at - start) % ENTRY:
        at = entries.find(rules, at + 1, end)
    return -1 if at < 0 else (at - start) // ENTRY


def _chain_digest(chain: str) -> bytes:
    return _digest(chain, CHAIN_DIGEST)


def _digest(text: str, size: int) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=size).digest()


def _after(generation: int) -> int:
    """The generation that follows: the kernel's 32-bit ID skips 0 when it wraps."""
    return (generation + 1) & 0xFFFFFFFF or 1
