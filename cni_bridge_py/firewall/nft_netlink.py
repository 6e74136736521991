"""iptables-nft's nat rules read from nf_tables over netlink: POSTROUTING's jumps to one
container's chain, and that chain's own rules.

DEL and CHECK need only the rules of iptables-nft's POSTROUTING that jump to the container's
chain (its handle for DEL, its source address for CHECK), and the chain itself. libnftables
cannot list fewer than the whole chain, one jump per container, and decodes every rule to
JSON for us to decode again: 5.3 ms with 250 containers here, growing with each one. The
kernel's rule dump, filtered to the table and chain by the kernel itself, costs a fraction of
that, and the bytes of a rule that does not name our chain are skipped without being parsed
(a chain name is unique and appears in a jump's verdict as a NUL-terminated string).

A rule becomes the words iptables_nft_view reads from libnftables' JSON (`ip saddr 10.0.0.2
counter jump CNI-x`), so both readers feed one matching; tests/integration compares them on
the same kernel state. A CHECK first reads again, by handle, the jumps the process's last
dump of POSTROUTING showed (known_jumps), and dumps only when they are not all there; before
that, when our own transaction wrote the rules and nobody has committed since (nft_ledger,
confirmed by the kernel's generation), it reads nothing else.

Anything unusual (an error other than "no such table or chain", a dump the kernel marks
interrupted twice) raises CannotRead, and the caller falls back to reading the chain through
libnftables or iptables-save.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

from cni_bridge_py.firewall.layout import MasqRequest
from cni_bridge_py.firewall.nft_ledger import Ledger, SharedLedger, rules_key
from cni_bridge_py.firewall.nft_transport import in_process_netns
from cni_bridge_py.firewall.nft_uapi import (
    AF_UNSPEC,
    BE32,
    BE32_SIGNED,
    BE64,
    NETLINK_NETFILTER,
    NFGENMSG,
    NFNETLINK_V0,
    NFNL_SUBSYS_NFTABLES,
    NFPROTO,
    NFT_CMP_EQ,
    NFT_CMP_NEQ,
    NFT_GOTO,
    NFT_JUMP,
    NFT_MSG_GETCHAIN,
    NFT_MSG_GETGEN,
    NFT_MSG_GETRULE,
    NFT_MSG_NEWGEN,
    NFT_MSG_NEWRULE,
    NFT_PAYLOAD_NETWORK_HEADER,
    NFTA_BITWISE_MASK,
    NFTA_CHAIN_NAME,
    NFTA_CHAIN_TABLE,
    NFTA_CMP_DATA,
    NFTA_CMP_OP,
    NFTA_DATA_VALUE,
    NFTA_DATA_VERDICT,
    NFTA_EXPR_DATA,
    NFTA_EXPR_NAME,
    NFTA_GEN_ID,
    NFTA_IMMEDIATE_DATA,
    NFTA_PAYLOAD_BASE,
    NFTA_PAYLOAD_LEN,
    NFTA_PAYLOAD_OFFSET,
    NFTA_RULE_CHAIN,
    NFTA_RULE_EXPRESSIONS,
    NFTA_RULE_HANDLE,
    NFTA_VERDICT_CHAIN,
    NFTA_VERDICT_CODE,
    NFTA_XT_NAME,
    NLM_F_DUMP,
    NLM_F_DUMP_INTR,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSGERR,
    NLMSGHDR,
    RECV_BYTES,
)
from cni_bridge_py.kernel.rtmsg import attr, attributes, each_attribute, first_attribute

FAMILY_WORDS = {4: "ip", 6: "ip6"}
# The other verdict codes, as nft names them (NF_DROP, NF_ACCEPT, NFT_RETURN, NFT_CONTINUE).
VERDICTS = {0: "drop", 1: "accept", -5: "return", -1: "continue"}

# (offset, length) of an address field in the network header, per family.
ADDRESS_FIELDS = {4: {(12, 4): "saddr", (16, 4): "daddr"}, 6: {(8, 16): "saddr", (24, 16): "daddr"}}

_ATTEMPTS = 2

# A rule of a listing: its handle and its words (iptables_nft_view.NftRule).
NftRule = tuple[int, tuple[str, ...]]
# (payload start, payload end) of an attribute in the message it was read from.
Span = tuple[int, int]


class CannotRead(Exception):
    """The kernel's rules could not be read here (no nf_tables, a refused dump)."""


def jumps_to(family: int, chain: str, target: str, table: str = "nat") -> list[NftRule] | None:
    """The rules of `table` `chain` (in the calling thread's network namespace) whose verdict
    jumps to `target`, in order; None when the table or the chain does not exist."""
    messages = _dump_whole(family, table, chain)
    _record_dump((family, table, chain), messages)
    return None if messages is None else parse_jumps(messages, family, target)


def known_jumps(family: int, chain: str, target: str, table: str = "nat") -> list[NftRule]:
    """The rules of `table` `chain` that jumped to `target` when this process last dumped
    the chain (jumps_to) and still do, each read again from the kernel by its handle: maybe
    fewer than there are (rules made since that dump, or any at all when none was made), so
    only for a caller that wants some rules found and dumps when they are not (CHECK).

    A CHECK at 50 containers thus reads one rule, not POSTROUTING's 50 (~0.15 ms here,
    ~0.8 ms at 250). A handle is never given to another rule while its table exists, and the
    rule read again must still jump to `target`: the dump only says where to look."""
    messages = _LAST_DUMPS.get((family, table, chain))
    if not messages:
        return []
    needle = target.encode() + b"\0"
    handles = [h for m in messages if needle in m and (h := _handle(m)) is not None]
    fresh = [m for h in handles if (m := _rule_by_handle(family, table, chain, h)) is not None]
    return parse_jumps(fresh, family, target)


# This process's last dump of each (family, table, chain) that jumps_to read, kept whole (a
# few hundred bytes per rule) for known_jumps: where to look, never what is there.
_LAST_DUMPS: dict[tuple[int, str, str], list[bytes]] = {}


def _record_dump(where: tuple[int, str, str], messages: list[bytes] | None) -> None:
    if messages:
        _LAST_DUMPS[where] = messages  # one assignment: threads see the old list or this one
    else:
        _LAST_DUMPS.pop(where, None)


def _handle(message: bytes) -> int | None:
    top = (NFGENMSG.size, len(message))
    return _be64(message, first_attribute(message, top, NFTA_RULE_HANDLE))


def _rule_by_handle(family: int, table: str, chain: str, handle: int) -> bytes | None:
    """The rule's NFT_MSG_NEWRULE body as the kernel has it now; None when it is gone (the
    rule, its chain or its table)."""
    kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETRULE
    request = message(kind, NLM_F_REQUEST, 1, rule_body(NFPROTO[family], table, chain, handle))
    data = _ask(request, "rule lookup")
    if data is None:
        return None
    length, answer, _flags, _seq, _pid = NLMSGHDR.unpack_from(data)
    if answer != (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE:
        raise CannotRead(f"an unexpected answer to a rule lookup (type {answer:#x})")
    return data[NLMSGHDR.size : length]


def _ask(request: bytes, what: str) -> bytes | None:
    """The kernel's one answer to a get `request` (not a dump) on the kept socket; None when
    it answers ENOENT."""
    with kept_socket() as sock:
        try:
            sock.send(request)
            data = sock.recv(RECV_BYTES)
        except OSError as exc:
            raise CannotRead(f"the {what} failed: {exc}") from exc
    _length, answer, _flags, _seq, _pid = NLMSGHDR.unpack_from(data)
    if answer != NLMSG_ERROR:
        return data
    code = -NLMSGERR.unpack_from(data, NLMSGHDR.size)[0]
    if code == errno.ENOENT:
        return None
    raise CannotRead(f"the kernel refused the {what}: {os.strerror(code)}")


def rules_of(family: int, chain: str, table: str = "nat") -> list[NftRule] | None:
    """Every rule of `table` `chain`, in order (a container's own chain: a few rules); None
    when the table or the chain does not exist."""
    messages = _dump_whole(family, table, chain)
    if messages is None:
        return None
    if not messages and not _chain_exists(family, table, chain):
        return None  # a dump filtered to a missing table lists nothing, with no error
    return parse_rules(messages, family)


def chain_body(proto: int, table: str, kind: int, name: str) -> bytes:
    """The body of an nf_tables message about one chain of `table`: the nfgenmsg, the table
    (NFTA_CHAIN_TABLE and NFTA_RULE_TABLE are both 1), and the chain's name as attribute
    `kind` (NFTA_CHAIN_NAME in a chain's messages, NFTA_RULE_CHAIN in a rule's)."""
    header = NFGENMSG.pack(proto, NFNETLINK_V0, 0)
    return (
        header + attr(NFTA_CHAIN_TABLE, table.encode() + b"\0") + attr(kind, name.encode() + b"\0")
    )


def rule_body(proto: int, table: str, chain: str, handle: int | None = None) -> bytes:
    """The body of an nf_tables message about the rule of `table` `chain` with `handle`
    (without one: the chain's rules, for a dump, a flush or a new rule's expressions)."""
    body = chain_body(proto, table, NFTA_RULE_CHAIN, chain)
    return body if handle is None else body + attr(NFTA_RULE_HANDLE, BE64.pack(handle))


def message(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    """One netlink message: its header, then `body`."""
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), kind, flags, seq, 0) + body


def _chain_exists(family: int, table: str, chain: str) -> bool:
    kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETCHAIN
    request = message(
        kind, NLM_F_REQUEST, 1, chain_body(NFPROTO[family], table, NFTA_CHAIN_NAME, chain)
    )
    return _ask(request, "chain lookup") is not None  # the chain itself, or ENOENT


def _dump_whole(family: int, table: str, chain: str) -> list[bytes] | None:
    for _ in range(_ATTEMPTS):
        dump = _dump_rules(family, table, chain)
        if dump is None:
            return None
        messages, interrupted = dump
        if not interrupted:
            return messages
    raise CannotRead(f"the {table} {chain} dump was interrupted by changes {_ATTEMPTS} times")


def _dump_rules(family: int, table: str, chain: str) -> tuple[list[bytes], bool] | None:
    kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETRULE
    with kept_socket() as sock:
        return _exchange(sock, kind, rule_body(NFPROTO[family], table, chain))


@contextlib.contextmanager
def kept_socket() -> Iterator[socket.socket]:
    """An nfnetlink socket in the calling thread's network namespace, for one exchange: the
    process's kept one (held alone meanwhile), or, in a thread that entered another
    namespace, one of its own. Raises CannotRead when none can be opened."""
    if not in_process_netns():
        with _open() as sock:
            yield sock
        return
    with _KEPT_GUARD:
        sock = _kept_socket()
        try:
            yield sock
        except BaseException:
            _KEPT.clear()  # what is left unread on it would answer the next exchange
            sock.close()
            raise


def _open() -> socket.socket:
    try:
        return socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_NETFILTER
        )
    except OSError as exc:
        raise CannotRead(f"no nf_tables netlink socket: {exc}") from exc


# The process's own namespace's socket, (pid, socket), kept: closing an nfnetlink socket waits
# for the kernel to free what the last nf_tables transactions removed (an RCU grace period,
# ~6 ms after a DEL's deletions here), as nft_lib's kept context avoids too. A forked child
# makes its own.
_KEPT: list[tuple[int, socket.socket]] = []
_KEPT_GUARD = threading.Lock()


def _kept_socket() -> socket.socket:
    if _KEPT and _KEPT[0][0] != os.getpid():
        _KEPT.clear()  # the parent's, copied by fork: never read from it here
    if not _KEPT:
        _KEPT.append((os.getpid(), _open()))
    return _KEPT[0][1]


def kept_ledger(sock: socket.socket) -> Ledger | None:
    """The ledger of the transactions on `sock` when it is the process's kept socket (the
    caller is in its kept_socket context); None for a socket of another namespace."""
    kept = _KEPT[0] if _KEPT else None
    return _ledger() if kept is not None and kept[1] is sock else None


def share_ledger() -> None:
    """One ledger for this process and the processes it forks from now on (the agent's
    workers, which write the same namespace's rules); without shared memory, each keeps
    its own."""
    with contextlib.suppress(OSError):
        _SHARED[:] = [SharedLedger()]


# The ledger of the process's own namespace (nft_ledger), (pid, ledger): a forked child
# starts an empty one, so what its parent wrote is read, not assumed; unless a shared one
# was made before the fork (share_ledger).
_LEDGER: list[tuple[int, Ledger]] = []
_SHARED: list[Ledger] = []


def _ledger() -> Ledger:
    if _SHARED:
        return _SHARED[0]
    if not _LEDGER or _LEDGER[0][0] != os.getpid():
        _LEDGER[:] = [(os.getpid(), Ledger())]
    return _LEDGER[0][1]


def still_written(request: MasqRequest, family: int) -> bool:
    """Whether the kernel holds `request`'s rules of `family` as our own transaction wrote
    them, nobody having committed since (nft_ledger): then CHECK need not read them. False
    whenever that cannot be told, and the caller reads. Under the kept socket and the
    ledger's lock, as a commit and its entry are (iptables_nft_write)."""
    rules = rules_key(request, family)
    try:
        with kept_socket() as sock:
            ledger = kept_ledger(sock)
            if ledger is None:
                return False  # another namespace's socket: the ledger is of our own
            with ledger.locked():
                # The generation is asked only for rules the ledger holds.
                return ledger.knows(rules) and ledger.at(_generation(sock))
    except (CannotRead, OSError):
        return False


def _generation(sock: socket.socket) -> int:
    """The ruleset's generation in the socket's namespace (NFT_MSG_GETGEN)."""
    kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN
    sock.send(message(kind, NLM_F_REQUEST, 1, NFGENMSG.pack(AF_UNSPEC, NFNETLINK_V0, 0)))
    data = sock.recv(RECV_BYTES)
    _length, answer, _flags, _seq, _pid = NLMSGHDR.unpack_from(data)
    found = generation_of(data, 0) if answer == NEWGEN else None
    if found is None:
        raise CannotRead(f"an unexpected answer to a generation lookup (type {answer:#x})")
    return found


# The message that says a generation: the answer to NFT_MSG_GETGEN, and a commit's echo.
NEWGEN = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN


def generation_of(data: bytes, offset: int) -> int | None:
    """The generation ID of the NFT_MSG_NEWGEN message at `offset` of `data`."""
    length = NLMSGHDR.unpack_from(data, offset)[0]
    top = (offset + NLMSGHDR.size + NFGENMSG.size, offset + length)
    return _be32(data, first_attribute(data, top, NFTA_GEN_ID))


def _exchange(sock: socket.socket, kind: int, body: bytes) -> tuple[list[bytes], bool] | None:
    try:
        sock.send(message(kind, NLM_F_REQUEST | NLM_F_DUMP, 1, body))
        return _receive(sock)
    except OSError as exc:
        raise CannotRead(f"the rule dump failed: {exc}") from exc


def _receive(sock: socket.socket) -> tuple[list[bytes], bool] | None:
    """The dump's rule messages (each without its netlink header) and whether the kernel
    flagged it interrupted; None on ENOENT (no such table or chain)."""
    messages: list[bytes] = []
    interrupted = False
    while True:
        data = sock.recv(RECV_BYTES)
        if not data:
            raise CannotRead("the rule dump ended without NLMSG_DONE")
        offset = 0
        while offset + NLMSGHDR.size <= len(data):
            length, kind, flags, _seq, _pid = NLMSGHDR.unpack_from(data, offset)
            if length < NLMSGHDR.size:
                raise CannotRead("a malformed netlink message")
            interrupted = interrupted or bool(flags & NLM_F_DUMP_INTR)
            if kind == NLMSG_DONE:
                return messages, interrupted
            if kind == NLMSG_ERROR:
                code = -NLMSGERR.unpack_from(data, offset + NLMSGHDR.size)[0]
                if code == errno.ENOENT:
                    return None
                raise CannotRead(f"the kernel refused the rule dump: {os.strerror(code)}")
            if kind & 0xFF == NFT_MSG_NEWRULE:
                messages.append(data[offset + NLMSGHDR.size : offset + length])
            offset += (length + 3) & ~3


def parse_jumps(messages: list[bytes], family: int, target: str) -> list[NftRule]:
    """The rules among `messages` (NFT_MSG_NEWRULE bodies) that jump to `target` (pure)."""
    needle = target.encode() + b"\0"
    # A rule whose bytes cannot name our chain is not worth parsing.
    named = [message for message in messages if needle in message]
    return [rule for rule in parse_rules(named, family) if _verdict_target(rule[1]) == target]


def parse_rules(messages: list[bytes], family: int) -> list[NftRule]:
    """(handle, words) of each NFT_MSG_NEWRULE body in `messages`, in order (pure)."""
    rules: list[NftRule] = []
    for message in messages:
        top = attributes(message, NFGENMSG.size, len(message))
        handle = _be64(message, top.get(NFTA_RULE_HANDLE))
        exprs = top.get(NFTA_RULE_EXPRESSIONS)
        if handle is None or exprs is None:
            continue
        rules.append((handle, tuple(_words(message, exprs, family))))
    return rules


def _verdict_target(words: tuple[str, ...]) -> str | None:
    for i, word in enumerate(words[:-1]):
        if word == "jump":
            return words[i + 1]
    return None


def rule_words(exprs: bytes, family: int) -> list[str]:
    """A rule's expressions (NFTA_RULE_EXPRESSIONS' payload) as nft's text would say them
    (only what our rules use): a payload load, an optional mask and a compare make one
    match `ip saddr 10.0.0.2`; an unknown expression is its name, so it never matches by
    accident."""
    return _words(exprs, (0, len(exprs)), family)


# The expressions whose data the words need; any other is said by its name (a counter).
_READ_DATA = frozenset({"payload", "bitwise", "cmp", "immediate", "match", "target"})

# What one expression says, once read: ("payload", field), ("bitwise", prefix), ("cmp", op,
# value), or ("words", words) said as they are.
Token = tuple[Any, ...]

# Expressions already read, by their bytes, per family. The rules of one network share most
# of theirs (the subnet's ACCEPT, the MASQUERADE, every load of an address field): reading
# one costs ~3 us here, and a CHECK or DEL reads ~15. A counter's bytes change with its
# counts, so counters are not kept; the rest is bounded by clearing.
_READ: dict[int, dict[bytes, Token]] = {4: {}, 6: {}}
_READ_LIMIT = 4096


def _words(data: bytes, exprs: Span, family: int) -> list[str]:
    read = _READ[family]
    words: list[str] = []
    field: tuple[str, int, int] | None = None
    prefix: int | None = None
    for _, start, end in each_attribute(data, *exprs):
        element = data[start:end]
        token = read.get(element)
        if token is None:
            token, keep = _token(data, start, end, family)
            if keep:
                if len(read) >= _READ_LIMIT:
                    read.clear()
                read[element] = token
        kind = token[0]
        if kind == "payload":
            field = token[1]
            prefix = None if field is None or field[1] == field[2] else field[2] * 8
        elif kind == "bitwise" and field is not None:
            prefix = token[1]
        elif kind == "cmp" and field is not None:
            words += _match_words(family, field, prefix, token[1], token[2])
            field = None
        elif kind == "words":
            words += token[1]
        else:
            words.append(kind)  # a mask or a compare of no address field
    return words


def _token(data: bytes, start: int, end: int, family: int) -> tuple[Token, bool]:
    """What the expression at data[start:end] says, and whether it may be kept."""
    expr = attributes(data, start, end)
    name = _text(data, expr.get(NFTA_EXPR_NAME))
    if name not in _READ_DATA:
        return ("words", (name,)), name != "counter"
    body = expr.get(NFTA_EXPR_DATA)
    if name in ("match", "target"):
        xt = _text(data, first_attribute(data, body, NFTA_XT_NAME))
        # An xtables match (iptables-nft's `-m comment`) is named as libnftables' JSON
        # names it; a target (`-j MASQUERADE`) reads like nft's native verdict, as there.
        return ("words", ("xt-" + xt if name == "match" else xt.lower(),)), True
    args = attributes(data, *body) if body else {}
    if name == "payload":
        return ("payload", _payload_field(data, args, family)), True
    if name == "bitwise":
        return ("bitwise", _prefix_length(data, args)), True
    if name == "cmp":
        op = _be32(data, args.get(NFTA_CMP_OP))
        return ("cmp", op, _value(data, args.get(NFTA_CMP_DATA), NFTA_DATA_VALUE)), True
    return ("words", tuple(_verdict_words(data, args))), True


def _text(data: bytes, span: Span | None) -> str:
    if span is None:
        return ""
    return data[span[0] : span[1]].rstrip(b"\0").decode(errors="replace")


def _be32(data: bytes, span: Span | None) -> int | None:
    if span is None or span[1] - span[0] != BE32.size:
        return None
    return int(BE32.unpack_from(data, span[0])[0])


def _be64(data: bytes, span: Span | None) -> int | None:
    if span is None or span[1] - span[0] != BE64.size:
        return None
    return int(BE64.unpack_from(data, span[0])[0])


def _value(data: bytes, nest: Span | None, kind: int) -> bytes | None:
    """The bytes of an nft_data nest's attribute `kind` (NFTA_DATA_VALUE, a verdict)."""
    found = first_attribute(data, nest, kind)
    return None if found is None else data[found[0] : found[1]]


def _payload_field(data: bytes, args: dict[int, Span], family: int) -> tuple[str, int, int] | None:
    """(field, its length, bytes loaded) of a load of an address field: iptables-nft loads
    only the whole bytes of a prefix (`-s 10.0.0.0/24` loads three)."""
    base = _be32(data, args.get(NFTA_PAYLOAD_BASE))
    offset = _be32(data, args.get(NFTA_PAYLOAD_OFFSET))
    loaded = _be32(data, args.get(NFTA_PAYLOAD_LEN))
    if base != NFT_PAYLOAD_NETWORK_HEADER or offset is None or loaded is None:
        return None
    for (start, size), field in ADDRESS_FIELDS[family].items():
        if start == offset and 0 < loaded <= size:
            return field, size, loaded
    return None


def _prefix_length(data: bytes, args: dict[int, Span]) -> int | None:
    mask = _value(data, args.get(NFTA_BITWISE_MASK), NFTA_DATA_VALUE)
    if mask is None:
        return None
    bits = int.from_bytes(mask, "big")
    length = bin(bits).count("1")
    # Only a prefix mask (ones, then zeros) is an address/len; anything else is no match.
    return length if bits == ((1 << length) - 1) << (len(mask) * 8 - length) else -1


def _match_words(
    family: int,
    field: tuple[str, int, int],
    prefix: int | None,
    op: int | None,
    value: bytes | None,
) -> list[str]:
    """`ip saddr [!=] 10.0.0.2` or `... 10.0.0.0/24`; a compare of anything else is "cmp"."""
    name, size, _ = field
    if value is None or len(value) > size or op not in (NFT_CMP_EQ, NFT_CMP_NEQ) or prefix == -1:
        return ["cmp"]
    address = ipaddress.ip_address(value.ljust(size, b"\0"))
    text = str(address) if prefix is None else f"{address}/{prefix}"
    negation = ["!="] if op == NFT_CMP_NEQ else []
    return [FAMILY_WORDS[family], name, *negation, text]


def _verdict_words(data: bytes, args: dict[int, Span]) -> list[str]:
    verdict = first_attribute(data, args.get(NFTA_IMMEDIATE_DATA), NFTA_DATA_VERDICT)
    if verdict is None:
        return ["immediate"]
    parts = attributes(data, *verdict)
    code_at = parts.get(NFTA_VERDICT_CODE)
    if code_at is None or code_at[1] - code_at[0] != BE32_SIGNED.size:
        return ["immediate"]
    code = BE32_SIGNED.unpack_from(data, code_at[0])[0]
    chain = _text(data, parts.get(NFTA_VERDICT_CHAIN))
    if code == NFT_JUMP:
        return ["jump", chain]
    if code == NFT_GOTO:
        return ["goto", chain]
    return [VERDICTS.get(code, "verdict")]
