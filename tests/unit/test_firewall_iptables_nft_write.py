"""iptables_nft_write (pure parts): the nf_tables messages of an ADD's rules, read back with
nft_netlink's parser, and the batch's exchange over a scripted socket. tests/integration
compares what it writes with what iptables-restore writes on a real kernel."""

from __future__ import annotations

import errno
import ipaddress
import struct

import pytest

from cni_bridge_py.firewall import iptables_nft_view as view
from cni_bridge_py.firewall import iptables_nft_write as w
from cni_bridge_py.firewall import nft_uapi as uapi
from cni_bridge_py.firewall.layout import MasqRequest, chain_name
from cni_bridge_py.firewall.nft_netlink import rule_words
from cni_bridge_py.kernel.rtmsg import NLA_TYPE_MASK, attributes

CHAIN = chain_name("testnet", "red1")
HEADER = struct.Struct("=IHHII")


def req(*addresses: str) -> MasqRequest:
    return MasqRequest("testnet", "red1", tuple(ipaddress.ip_interface(a) for a in addresses))


def _attrs(body: bytes) -> dict[int, bytes]:
    found = attributes(body, 4, len(body))  # after the nfgenmsg
    return {kind & NLA_TYPE_MASK: body[start:end] for kind, (start, end) in found.items()}


def _rules(request: MasqRequest, family: int) -> list[tuple[str, int, tuple[str, ...]]]:
    """(chain, flags, words) of each rule message of the batch."""
    out = []
    for kind, flags, body in w.fresh_setup_messages(request, family):
        if kind != uapi.NFT_MSG_NEWRULE:
            continue
        attrs = _attrs(body)
        chain = attrs[uapi.NFTA_RULE_CHAIN].rstrip(b"\0").decode()
        words = rule_words(attrs[uapi.NFTA_RULE_EXPRESSIONS], family)
        out.append((chain, flags, tuple(words)))
    return out


def test_the_batch_makes_the_chain_only_where_none_is() -> None:
    kind, flags, body = w.fresh_setup_messages(req("192.168.15.2/24"), 4)[0]
    assert kind == uapi.NFT_MSG_NEWCHAIN
    assert flags & uapi.NLM_F_EXCL and flags & uapi.NLM_F_CREATE
    assert _attrs(body)[uapi.NFTA_CHAIN_NAME] == CHAIN.encode() + b"\0"
    assert body[0] == 2  # NFPROTO_IPV4


def test_the_rules_are_the_reference_layout_in_iptables_restores_order() -> None:
    """Each ACCEPT at the chain's head (as `-I chain 1`), the MASQUERADE and the jumps
    appended: the order iptables-restore gives render_fresh_setup's batch."""
    rules = _rules(req("192.168.15.2/24", "10.2.16.7/20"), 4)
    tail = ("xt-comment", "counter")
    appended = uapi.NLM_F_CREATE | uapi.NLM_F_APPEND
    assert rules == [
        (CHAIN, uapi.NLM_F_CREATE, ("ip", "daddr", "192.168.15.0/24", *tail, "accept")),
        (CHAIN, uapi.NLM_F_CREATE, ("ip", "daddr", "10.2.16.0/20", *tail, "accept")),
        (CHAIN, appended, ("ip", "daddr", "!=", "224.0.0.0/4", *tail, "masquerade")),
        ("POSTROUTING", appended, ("ip", "saddr", "192.168.15.2", *tail, "jump", CHAIN)),
        ("POSTROUTING", appended, ("ip", "saddr", "10.2.16.7", *tail, "jump", CHAIN)),
    ]  # fmt: skip


def test_what_it_writes_is_what_check_expects() -> None:
    """CHECK's reader finds nothing missing in exactly these rules, for either family."""
    dual = req("192.168.15.2/24", "fd00::2/64")
    for family in (4, 6):
        rules = _rules(dual, family)
        own = [(i, words) for i, (chain, _, words) in enumerate(rules) if chain == CHAIN]
        jumps = [(i, words) for i, (chain, _, words) in enumerate(rules) if chain != CHAIN]
        assert view.missing(dual, family, own, jumps) == []
        assert len(jumps) == 1


def test_a_prefix_on_a_byte_loads_only_its_bytes_and_others_are_masked() -> None:
    """iptables-nft's encoding: /24 loads 3 bytes and compares them; /20 loads 4 and masks."""
    on_byte = w._address(16, ipaddress.ip_network("192.168.15.0/24"), uapi.NFT_CMP_EQ)
    masked = w._address(16, ipaddress.ip_network("10.2.16.0/20"), uapi.NFT_CMP_EQ)
    assert b"bitwise" not in on_byte and b"bitwise" in masked
    assert struct.pack(">I", 3) in on_byte
    assert b"\xff\xff\xf0\x00" in masked


def test_the_comment_and_the_targets_carry_iptables_info_structs() -> None:
    messages = w.fresh_setup_messages(req("192.168.15.2/24"), 4)
    comment = b'name: "testnet" id: "red1"'
    masquerade = messages[2][2]
    assert comment + bytes(w.XT_MAX_COMMENT_LEN - len(comment)) in masquerade
    assert b"MASQUERADE\0" in masquerade
    assert len(w.MASQUERADE_INFO[4]) == 24 and w.MASQUERADE_INFO[4][:4] == struct.pack("=I", 1)
    assert len(w.MASQUERADE_INFO[6]) == 40


def test_a_comment_iptables_cannot_hold_is_left_to_iptables_restore() -> None:
    long_id = MasqRequest("n" * 250, "red1", (ipaddress.ip_interface("10.0.0.2/24"),))
    assert w.write_fresh_setup(long_id, 4) is False


class ScriptedSocket:
    """A netlink socket whose answers are queued once a batch is sent: as the kernel does, a
    commit (no refusal) asked for an echo answers first with the echoed message and the
    generation it made."""

    def __init__(self, codes: dict[int, int] | None = None, generation: int = 0) -> None:
        self.codes = codes or {}
        self.generation = generation
        self.sent: list[bytes] = []
        self.queued: list[bytes] = []

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        offset = 0
        while offset < len(data):
            length, _kind, flags, seq, _ = HEADER.unpack_from(data, offset)
            if flags & uapi.NLM_F_ECHO and not self.codes and self.generation:
                self.queued.append(data[offset : offset + length])
                gen = struct.pack("=HH", 8, uapi.NFTA_GEN_ID) + struct.pack(">I", self.generation)
                body = uapi.NFGENMSG.pack(0, 0, 0) + gen
                newgen = (uapi.NFNL_SUBSYS_NFTABLES << 8) | uapi.NFT_MSG_NEWGEN
                self.queued.append(HEADER.pack(16 + len(body), newgen, 0, seq, 0) + body)
            if flags & uapi.NLM_F_ACK:
                error = struct.pack("=i", -self.codes.get(seq, 0)) + data[offset : offset + 16]
                self.queued.append(
                    HEADER.pack(16 + len(error), uapi.NLMSG_ERROR, 0, seq, 0) + error
                )
            offset += length
        return len(data)

    def recv(self, size: int, flags: int = 0) -> bytes:
        if not self.queued:
            raise BlockingIOError(errno.EAGAIN, "nothing queued")
        return self.queued.pop(0)


def _kinds(data: bytes) -> list[int]:
    kinds, offset = [], 0
    while offset < len(data):
        length, kind, *_ = HEADER.unpack_from(data, offset)
        kinds.append(kind)
        offset += length
    return kinds


def test_a_batch_is_one_send_between_begin_and_end_and_waits_for_every_ack() -> None:
    sock = ScriptedSocket()
    messages = w.fresh_setup_messages(req("192.168.15.2/24"), 4)
    w.commit(sock, messages)  # type: ignore[arg-type]
    assert len(sock.sent) == 1
    kinds = _kinds(sock.sent[0])
    assert kinds[0] == uapi.NFNL_MSG_BATCH_BEGIN and kinds[-1] == uapi.NFNL_MSG_BATCH_END
    assert [k & 0xFF for k in kinds[1:-1]] == [kind for kind, _, _ in messages]
    assert sock.queued == []  # every answer read: the kept socket is left clean


def test_a_commit_asks_for_its_generation_on_the_first_message_and_returns_it() -> None:
    sock = ScriptedSocket(generation=42)
    assert w.commit(sock, w.fresh_setup_messages(req("192.168.15.2/24"), 4)) == 42  # type: ignore[arg-type]
    echoed, offset = [], 0
    while offset < len(sock.sent[0]):
        length, _kind, flags, _seq, _ = HEADER.unpack_from(sock.sent[0], offset)
        echoed.append(bool(flags & uapi.NLM_F_ECHO))
        offset += length
    assert echoed == [False, True, False, False, False, False]  # begin, chain, 3 rules, end
    assert sock.queued == []  # the echo read past too
    assert w.commit(ScriptedSocket(), w.teardown_messages(4, CHAIN, [25], True)) is None  # type: ignore[arg-type]


def test_a_refused_batch_raises_with_the_first_refusal_and_reads_every_answer() -> None:
    sock = ScriptedSocket({1: errno.EEXIST, 3: errno.ENOENT})
    with pytest.raises(w.Refused) as refused:
        w.commit(sock, w.fresh_setup_messages(req("192.168.15.2/24"), 4))  # type: ignore[arg-type]
    assert refused.value.code == errno.EEXIST
    assert sock.queued == []


def test_teardown_deletes_the_jumps_by_handle_then_flushes_and_deletes_the_chain() -> None:
    messages = w.teardown_messages(4, CHAIN, [25, 31], whole=True)
    kinds = [kind for kind, _, _ in messages]
    assert kinds == [uapi.NFT_MSG_DELRULE] * 3 + [uapi.NFT_MSG_DELCHAIN]
    handles = [_attrs(body).get(uapi.NFTA_RULE_HANDLE) for _, _, body in messages[:3]]
    assert handles == [struct.pack(">Q", 25), struct.pack(">Q", 31), None]  # None: the flush
    chains = [_attrs(body)[uapi.NFTA_RULE_CHAIN] for _, _, body in messages[:3]]
    assert chains == [b"POSTROUTING\0", b"POSTROUTING\0", CHAIN.encode() + b"\0"]
    assert _attrs(messages[3][2])[uapi.NFTA_CHAIN_NAME] == CHAIN.encode() + b"\0"
    assert w.teardown_messages(4, CHAIN, [25], whole=False) == messages[:1]
    assert w.teardown_messages(6, CHAIN, [], whole=False) == []
