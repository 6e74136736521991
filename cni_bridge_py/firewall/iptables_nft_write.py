"""One container's iptables-nft rules written as one nf_tables transaction, in process.

An ADD's masquerade rules are known from the network, the container and its addresses
(layout.render_fresh_setup). Writing them through `iptables-restore` costs a process: ~3 ms
of an ADD's critical path here, and more under concurrency, where every ADD forks one. The
same rules are a handful of nf_tables messages, sent here in one batch on the kept netlink
socket (nft_netlink), encoded as iptables-nft 1.8 encodes them: a payload load and compare
per address (the mask only where a prefix does not end on a byte), the `comment` match and
the MASQUERADE target through nft_compat, a counter, a verdict. So `iptables -t nat -S`,
iptables-save and our own readers see exactly what iptables-restore would have written;
tests/integration compares the two writers' kernel state expression by expression.

The batch makes the chain with NLM_F_EXCL, so it commits only into the state render_fresh_setup
expects (no chain yet; the nat table and POSTROUTING there). Anything else (the chain exists,
no nat table yet on a fresh host, no nf_tables at all) aborts the whole transaction, nothing
of it applied, and `write_fresh_setup` answers False: the caller then runs iptables-restore,
which makes the table or reads the state.

The batch asks for the generation its commit made, so the ledger (nft_ledger) knows what we
wrote for as long as nobody else commits: a CHECK of those rules then reads nothing but the
kernel's generation.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Collection

from cni_bridge_py.firewall.layout import MULTICAST, MasqRequest
from cni_bridge_py.firewall.nft_ledger import rules_key
from cni_bridge_py.firewall.nft_netlink import (
    NEWGEN,
    CannotRead,
    chain_body,
    generation_of,
    jumps_to,
    kept_ledger,
    kept_socket,
    known_jumps,
    message,
    rule_body,
    rules_of,
    still_written,
)
from cni_bridge_py.firewall.nft_uapi import (
    AF_UNSPEC,
    BE32,
    BE32_SIGNED,
    NF_ACCEPT,
    NFGENMSG,
    NFNETLINK_V0,
    NFNL_MSG_BATCH_BEGIN,
    NFNL_MSG_BATCH_END,
    NFNL_SUBSYS_NFTABLES,
    NFPROTO,
    NFT_CMP_EQ,
    NFT_CMP_NEQ,
    NFT_JUMP,
    NFT_MSG_DELCHAIN,
    NFT_MSG_DELRULE,
    NFT_MSG_NEWCHAIN,
    NFT_MSG_NEWRULE,
    NFT_PAYLOAD_NETWORK_HEADER,
    NFT_REG_1,
    NFT_REG_VERDICT,
    NFTA_BITWISE_DREG,
    NFTA_BITWISE_LEN,
    NFTA_BITWISE_MASK,
    NFTA_BITWISE_SREG,
    NFTA_BITWISE_XOR,
    NFTA_CHAIN_NAME,
    NFTA_CMP_DATA,
    NFTA_CMP_OP,
    NFTA_CMP_SREG,
    NFTA_COUNTER_BYTES,
    NFTA_COUNTER_PACKETS,
    NFTA_DATA_VALUE,
    NFTA_DATA_VERDICT,
    NFTA_EXPR_DATA,
    NFTA_EXPR_NAME,
    NFTA_IMMEDIATE_DATA,
    NFTA_IMMEDIATE_DREG,
    NFTA_LIST_ELEM,
    NFTA_PAYLOAD_BASE,
    NFTA_PAYLOAD_DREG,
    NFTA_PAYLOAD_LEN,
    NFTA_PAYLOAD_OFFSET,
    NFTA_RULE_EXPRESSIONS,
    NFTA_VERDICT_CHAIN,
    NFTA_VERDICT_CODE,
    NFTA_XT_INFO,
    NFTA_XT_NAME,
    NFTA_XT_REV,
    NLA_F_NESTED,
    NLM_F_ACK,
    NLM_F_APPEND,
    NLM_F_CREATE,
    NLM_F_ECHO,
    NLM_F_EXCL,
    NLM_F_REQUEST,
    NLMSG_ERROR,
    NLMSGERR,
    NLMSGHDR,
    RECV_BYTES,
)
from cni_bridge_py.kernel.rtmsg import attr
from cni_bridge_py.netaddr import IPNetwork

# struct xt_comment_info: char comment[XT_MAX_COMMENT_LEN]
XT_MAX_COMMENT_LEN = 256
# MASQUERADE's info, zeroed but for rangesize = 1 where IPv4's target requires it:
# struct nf_nat_ipv4_multi_range_compat (20 bytes) and struct nf_nat_range (40), each
# padded to XT_ALIGN (8) as the kernel stores them.
MASQUERADE_INFO = {4: struct.pack("=I20x", 1), 6: bytes(40)}
# Offsets of the source and destination addresses in the network header.
SOURCE = {4: 12, 6: 8}
DESTINATION = {4: 16, 6: 24}
TABLE = "nat"
POSTROUTING = "POSTROUTING"


class Refused(Exception):
    """The kernel refused the transaction: `code` is the errno of its first refusal."""

    def __init__(self, code: int) -> None:
        super().__init__(os.strerror(code))
        self.code = code


def write_fresh_setup(request: MasqRequest, family: int) -> bool:
    """The rules render_fresh_setup(request, family) writes, in one transaction in the
    calling thread's network namespace: True when it committed, False when it did not (the
    state was not the fresh one, or nf_tables cannot be reached here)."""
    if len(request.comment.encode()) >= XT_MAX_COMMENT_LEN:
        return False  # iptables-restore says why it cannot be written
    return _committed(fresh_setup_messages(request, family), wrote=rules_key(request, family))


def write_teardown(family: int, chain: str, jumps: Collection[int], whole: bool) -> bool:
    """Delete POSTROUTING's rules with the handles `jumps` and, with `whole`, flush and
    delete `chain`, in one transaction: True when it committed. The kernel refuses it if a
    rule went away since it was read, or (for the chain) while another rule still jumps to
    it: then nothing of it is applied and the caller reads again."""
    messages = teardown_messages(family, chain, jumps, whole)
    return not messages or _committed(messages, removed=chain)


def _committed(
    messages: list[tuple[int, int, bytes]], *, wrote: bytes = b"", removed: str = ""
) -> bool:
    """Whether the batch committed; on the kept socket, its ledger enters what it did (the
    commit and its entry under the ledger's lock, so the ledger sees commits in the kernel's
    order). A refusal leaves the kept socket as it found it (every answer read), so only a
    failed exchange gives it up (kept_socket)."""
    try:
        with kept_socket() as sock:
            ledger = kept_ledger(sock)
            with ledger.locked() if ledger is not None else contextlib.nullcontext():
                try:
                    generation = commit(sock, messages)
                except Refused:
                    return False
                if ledger is not None:
                    ledger.committed(generation, wrote=wrote, removed=removed)
    except (CannotRead, OSError):
        return False
    return True


def teardown_messages(
    family: int, chain: str, jumps: Collection[int], whole: bool
) -> list[tuple[int, int, bytes]]:
    """write_teardown's batch, without its begin and end (pure)."""
    proto = NFPROTO[family]
    messages = [_delete_rule(proto, POSTROUTING, handle) for handle in jumps]
    if whole:
        flush = _delete_rule(proto, chain, None)
        messages += [flush, (NFT_MSG_DELCHAIN, 0, chain_body(proto, TABLE, NFTA_CHAIN_NAME, chain))]
    return messages


def fresh_setup_messages(request: MasqRequest, family: int) -> list[tuple[int, int, bytes]]:
    """(message type, flags, body) of the batch, without its begin and end (pure). The
    order is iptables-restore's for the same batch: each ACCEPT inserted at the chain's
    head, the MASQUERADE appended, then one jump per address appended to POSTROUTING."""
    chain, comment = request.chain, request.comment
    proto = NFPROTO[family]
    mine = [a for a in request.addresses if a.version == family]
    messages = [_chain(proto, chain)]
    for addr in mine:
        accept = _address(DESTINATION[family], addr.network, NFT_CMP_EQ)
        messages.append(_rule(proto, chain, accept + _tail(comment, _verdict(NF_ACCEPT)), 0))
    multicast = ipaddress.ip_network(MULTICAST[family])
    masquerade = _address(DESTINATION[family], multicast, NFT_CMP_NEQ)
    target = _expr("target", _xt("MASQUERADE", MASQUERADE_INFO[family]))
    messages.append(_rule(proto, chain, masquerade + _tail(comment, target), NLM_F_APPEND))
    for addr in mine:
        source = _address(SOURCE[family], ipaddress.ip_network(addr.ip), NFT_CMP_EQ)
        jump = _verdict(NFT_JUMP, chain)
        messages.append(_rule(proto, POSTROUTING, source + _tail(comment, jump), NLM_F_APPEND))
    return messages


def commit(sock: socket.socket, messages: list[tuple[int, int, bytes]]) -> int | None:
    """Send `messages` as one batch, read every answer, and return the generation the commit
    made (its echo; None if the kernel did not say). nfnetlink runs the whole batch inside
    the send, so every answer is queued by the time send returns, and the socket is read
    until it is empty. Raises Refused (the transaction was aborted, nothing of it applied,
    every answer read), or OSError when the exchange itself failed (what is left on the
    socket is then unknown)."""
    subsystem = NFGENMSG.pack(AF_UNSPEC, NFNETLINK_V0, socket.htons(NFNL_SUBSYS_NFTABLES))
    parts = [message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, subsystem)]
    for seq, (kind, flags, body) in enumerate(messages, start=1):
        nft_kind = (NFNL_SUBSYS_NFTABLES << 8) | kind
        # A commit echoes the generation it made when the batch's first message asks for an
        # echo (that message's own notification comes back too, and is read past).
        echo = NLM_F_ECHO if seq == 1 else 0
        parts.append(message(nft_kind, NLM_F_REQUEST | NLM_F_ACK | flags | echo, seq, body))
    parts.append(message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, len(messages) + 1, subsystem))
    sock.send(b"".join(parts))
    waiting = set(range(1, len(messages) + 1))
    refusal = 0
    generation = None
    while True:
        try:
            data = sock.recv(RECV_BYTES, socket.MSG_DONTWAIT)
        except BlockingIOError:
            if waiting:
                raise
            break
        offset = 0
        while offset + NLMSGHDR.size <= len(data):
            length, kind, _flags, seq, _pid = NLMSGHDR.unpack_from(data, offset)
            if length < NLMSGHDR.size:
                raise OSError(errno.EPROTO, "a malformed netlink answer")
            if kind == NLMSG_ERROR:
                code = -NLMSGERR.unpack_from(data, offset + NLMSGHDR.size)[0]
                refusal = refusal or code
                waiting.discard(seq)
            elif kind == NEWGEN:
                generation = generation_of(data, offset)
            offset += (length + 3) & ~3
    if refusal:
        raise Refused(refusal)
    return generation


def _chain(proto: int, name: str) -> tuple[int, int, bytes]:
    return (
        NFT_MSG_NEWCHAIN,
        NLM_F_CREATE | NLM_F_EXCL,
        chain_body(proto, TABLE, NFTA_CHAIN_NAME, name),
    )


def _delete_rule(proto: int, chain: str, handle: int | None) -> tuple[int, int, bytes]:
    """One rule by its handle; without a handle, every rule of the chain (a flush)."""
    return NFT_MSG_DELRULE, 0, rule_body(proto, TABLE, chain, handle)


def _rule(proto: int, chain: str, exprs: bytes, flags: int) -> tuple[int, int, bytes]:
    body = rule_body(proto, TABLE, chain) + _nest(NFTA_RULE_EXPRESSIONS, exprs)
    # Without NLM_F_APPEND (and no position) the kernel puts the rule at the chain's head.
    return NFT_MSG_NEWRULE, NLM_F_CREATE | flags, body


def _address(offset: int, network: IPNetwork, op: int) -> bytes:
    """iptables-nft's match of an address field against a network: load only the prefix's
    whole bytes when it ends on a byte, else the whole field under a mask."""
    size = network.max_prefixlen // 8
    value = network.network_address.packed
    mask = network.netmask.packed
    if network.prefixlen % 8 == 0:
        size = network.prefixlen // 8
        return _payload(offset, size) + _cmp(op, value[:size])
    return _payload(offset, size) + _bitwise(mask) + _cmp(op, value)


def _tail(comment: str, verdict: bytes) -> bytes:
    """What follows the address in each of our rules: `-m comment`, a counter, the verdict."""
    info = comment.encode().ljust(XT_MAX_COMMENT_LEN, b"\0")
    zero = bytes(8)
    counter = _expr("counter", attr(NFTA_COUNTER_BYTES, zero) + attr(NFTA_COUNTER_PACKETS, zero))
    return _expr("match", _xt("comment", info)) + counter + verdict


def _payload(offset: int, size: int) -> bytes:
    data = (
        attr(NFTA_PAYLOAD_DREG, BE32.pack(NFT_REG_1))
        + attr(NFTA_PAYLOAD_BASE, BE32.pack(NFT_PAYLOAD_NETWORK_HEADER))
        + attr(NFTA_PAYLOAD_OFFSET, BE32.pack(offset))
        + attr(NFTA_PAYLOAD_LEN, BE32.pack(size))
    )
    return _expr("payload", data)


def _bitwise(mask: bytes) -> bytes:
    data = (
        attr(NFTA_BITWISE_SREG, BE32.pack(NFT_REG_1))
        + attr(NFTA_BITWISE_DREG, BE32.pack(NFT_REG_1))
        + attr(NFTA_BITWISE_LEN, BE32.pack(len(mask)))
        + _nest(NFTA_BITWISE_MASK, attr(NFTA_DATA_VALUE, mask))
        + _nest(NFTA_BITWISE_XOR, attr(NFTA_DATA_VALUE, bytes(len(mask))))
    )
    return _expr("bitwise", data)


def _cmp(op: int, value: bytes) -> bytes:
    data = (
        attr(NFTA_CMP_SREG, BE32.pack(NFT_REG_1))
        + attr(NFTA_CMP_OP, BE32.pack(op))
        + _nest(NFTA_CMP_DATA, attr(NFTA_DATA_VALUE, value))
    )
    return _expr("cmp", data)


def _xt(name: str, info: bytes) -> bytes:
    return (
        attr(NFTA_XT_NAME, _text(name)) + attr(NFTA_XT_REV, BE32.pack(0)) + attr(NFTA_XT_INFO, info)
    )


def _verdict(code: int, chain: str = "") -> bytes:
    verdict = attr(NFTA_VERDICT_CODE, BE32_SIGNED.pack(code))
    if chain:
        verdict += attr(NFTA_VERDICT_CHAIN, _text(chain))
    data = attr(NFTA_IMMEDIATE_DREG, BE32.pack(NFT_REG_VERDICT)) + _nest(
        NFTA_IMMEDIATE_DATA, _nest(NFTA_DATA_VERDICT, verdict)
    )
    return _expr("immediate", data)


def _expr(name: str, data: bytes) -> bytes:
    body = attr(NFTA_EXPR_NAME, _text(name))
    if data:
        body += _nest(NFTA_EXPR_DATA, data)
    return _nest(NFTA_LIST_ELEM, body)


def _nest(kind: int, payload: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, payload)


def _text(text: str) -> bytes:
    return text.encode() + b"\0"


class NetlinkNat:
    """iptables_restore.NatNetlink: the reads of nft_netlink and the writes here."""

    rules = staticmethod(rules_of)
    jumps = staticmethod(jumps_to)
    known_jumps = staticmethod(known_jumps)
    unchanged = staticmethod(still_written)
    write_fresh_setup = staticmethod(write_fresh_setup)
    write_teardown = staticmethod(write_teardown)
