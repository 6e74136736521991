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
the same kernel state. Anything unusual (an error other than "no such table or chain", a dump
the kernel marks interrupted twice) raises CannotRead, and the caller falls back to reading
the chain through libnftables or iptables-save.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import struct
import threading
from collections.abc import Iterator

from cni_bridge_py.firewall.nft_transport import in_process_netns
from cni_bridge_py.firewall.nft_uapi import (
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
    NFT_MSG_GETRULE,
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
    NLMSGHDR,
)
from cni_bridge_py.kernel.rtmsg import attr, each_attribute

FAMILY_WORDS = {4: "ip", 6: "ip6"}
# The other verdict codes, as nft names them (NF_DROP, NF_ACCEPT, NFT_RETURN, NFT_CONTINUE).
VERDICTS = {0: "drop", 1: "accept", -5: "return", -1: "continue"}

# (offset, length) of an address field in the network header, per family.
ADDRESS_FIELDS = {4: {(12, 4): "saddr", (16, 4): "daddr"}, 6: {(8, 16): "saddr", (24, 16): "daddr"}}

_BE32 = struct.Struct(">I")
_BE32_SIGNED = struct.Struct(">i")
_BE64 = struct.Struct(">Q")
_RECV_BYTES = 1 << 16
_ATTEMPTS = 2

# A rule of a listing: its handle and its words (iptables_nft_view.NftRule).
NftRule = tuple[int, tuple[str, ...]]


class CannotRead(Exception):
    """The kernel's rules could not be read here (no nf_tables, a refused dump)."""


def jumps_to(family: int, chain: str, target: str, table: str = "nat") -> list[NftRule] | None:
    """The rules of `table` `chain` (in the calling thread's network namespace) whose verdict
    jumps to `target`, in order; None when the table or the chain does not exist."""
    messages = _dump_whole(family, table, chain)
    return None if messages is None else parse_jumps(messages, family, target)


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


def message(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    """One netlink message: its header, then `body`."""
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), kind, flags, seq, 0) + body


def _chain_exists(family: int, table: str, chain: str) -> bool:
    kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETCHAIN
    request = message(
        kind, NLM_F_REQUEST, 1, chain_body(NFPROTO[family], table, NFTA_CHAIN_NAME, chain)
    )
    with kept_socket() as sock:
        try:
            sock.send(request)
            data = sock.recv(_RECV_BYTES)
        except OSError as exc:
            raise CannotRead(f"the chain lookup failed: {exc}") from exc
    _length, answer, _flags, _seq, _pid = NLMSGHDR.unpack_from(data)
    if answer != NLMSG_ERROR:
        return True  # the chain itself
    code = -struct.unpack_from("=i", data, NLMSGHDR.size)[0]
    if code == errno.ENOENT:
        return False
    raise CannotRead(f"the kernel refused the chain lookup: {os.strerror(code)}")


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
    body = chain_body(NFPROTO[family], table, NFTA_RULE_CHAIN, chain)
    with kept_socket() as sock:
        return _exchange(sock, kind, body)


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
        data = sock.recv(_RECV_BYTES)
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
                code = -struct.unpack_from("=i", data, offset + NLMSGHDR.size)[0]
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
        attrs = dict(_attributes(message, NFGENMSG.size))
        handle, exprs = attrs.get(NFTA_RULE_HANDLE), attrs.get(NFTA_RULE_EXPRESSIONS)
        if handle is None or exprs is None:
            continue
        rules.append((_BE64.unpack(handle)[0], tuple(rule_words(exprs, family))))
    return rules


def _verdict_target(words: tuple[str, ...]) -> str | None:
    for i, word in enumerate(words[:-1]):
        if word == "jump":
            return words[i + 1]
    return None


def rule_words(exprs: bytes, family: int) -> list[str]:
    """A rule's expressions as nft's text would say them (only what our rules use): a
    payload load, an optional mask and a compare make one match `ip saddr 10.0.0.2`; an
    unknown expression is its name, so it never matches by accident."""
    words: list[str] = []
    field: tuple[str, int, int] | None = None
    prefix: int | None = None
    for _, elem in _attributes(exprs):
        expr = dict(_attributes(elem))
        name = expr.get(NFTA_EXPR_NAME, b"").rstrip(b"\0").decode(errors="replace")
        data = dict(_attributes(expr.get(NFTA_EXPR_DATA, b"")))
        if name == "payload":
            field = _payload_field(data, family)
            prefix = None if field is None or field[1] == field[2] else field[2] * 8
        elif name == "bitwise" and field is not None:
            prefix = _prefix_length(data)
        elif name == "cmp" and field is not None:
            words += _match_words(data, family, field, prefix)
            field = None
        elif name == "immediate":
            words += _verdict_words(data)
        elif name == "match":
            # An xtables match (iptables-nft's `-m comment`), named as libnftables' JSON does.
            words.append("xt-" + _xt_name(data))
        elif name == "target":
            # An xtables target (`-j MASQUERADE`) reads like nft's native verdict, as there.
            words.append(_xt_name(data).lower())
        else:
            words.append(name)
    return words


def _xt_name(data: dict[int, bytes]) -> str:
    return data.get(NFTA_XT_NAME, b"").rstrip(b"\0").decode(errors="replace")


def _payload_field(data: dict[int, bytes], family: int) -> tuple[str, int, int] | None:
    """(field, its length, bytes loaded) of a load of an address field: iptables-nft loads
    only the whole bytes of a prefix (`-s 10.0.0.0/24` loads three)."""
    try:
        base = _BE32.unpack(data[NFTA_PAYLOAD_BASE])[0]
        offset = _BE32.unpack(data[NFTA_PAYLOAD_OFFSET])[0]
        loaded = _BE32.unpack(data[NFTA_PAYLOAD_LEN])[0]
    except (KeyError, struct.error):
        return None
    if base != NFT_PAYLOAD_NETWORK_HEADER:
        return None
    for (start, size), field in ADDRESS_FIELDS[family].items():
        if start == offset and 0 < loaded <= size:
            return field, size, loaded
    return None


def _prefix_length(data: dict[int, bytes]) -> int | None:
    mask = dict(_attributes(data.get(NFTA_BITWISE_MASK, b""))).get(NFTA_DATA_VALUE)
    if mask is None:
        return None
    bits = int.from_bytes(mask, "big")
    length = bin(bits).count("1")
    # Only a prefix mask (ones, then zeros) is an address/len; anything else is no match.
    return length if bits == ((1 << length) - 1) << (len(mask) * 8 - length) else -1


def _match_words(
    data: dict[int, bytes], family: int, field: tuple[str, int, int], prefix: int | None
) -> list[str]:
    """`ip saddr [!=] 10.0.0.2` or `... 10.0.0.0/24`; a compare of anything else is "cmp"."""
    name, size, _ = field
    value = dict(_attributes(data.get(NFTA_CMP_DATA, b""))).get(NFTA_DATA_VALUE)
    try:
        op = _BE32.unpack(data[NFTA_CMP_OP])[0]
    except (KeyError, struct.error):
        return ["cmp"]
    if value is None or len(value) > size or op not in (NFT_CMP_EQ, NFT_CMP_NEQ) or prefix == -1:
        return ["cmp"]
    address = ipaddress.ip_address(value.ljust(size, b"\0"))
    text = str(address) if prefix is None else f"{address}/{prefix}"
    negation = ["!="] if op == NFT_CMP_NEQ else []
    return [FAMILY_WORDS[family], name, *negation, text]


def _verdict_words(data: dict[int, bytes]) -> list[str]:
    verdict = dict(_attributes(data.get(NFTA_IMMEDIATE_DATA, b""))).get(NFTA_DATA_VERDICT)
    if verdict is None:
        return ["immediate"]
    parts = dict(_attributes(verdict))
    try:
        code = _BE32_SIGNED.unpack(parts[NFTA_VERDICT_CODE])[0]
    except (KeyError, struct.error):
        return ["immediate"]
    chain = parts.get(NFTA_VERDICT_CHAIN, b"").rstrip(b"\0").decode(errors="replace")
    if code == NFT_JUMP:
        return ["jump", chain]
    if code == NFT_GOTO:
        return ["goto", chain]
    return [VERDICTS.get(code, "verdict")]


def _attributes(data: bytes, offset: int = 0) -> Iterator[tuple[int, bytes]]:
    """(type, payload) of the netlink attributes in data[offset:]."""
    for kind, start, end in each_attribute(data, offset, len(data)):
        yield kind, data[start:end]
