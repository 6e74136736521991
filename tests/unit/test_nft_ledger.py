"""nft_ledger: what our own nf_tables commits wrote, known only while every commit since the
ledger's start of a chain was ours (generation G - 1, then G)."""

from __future__ import annotations

import fcntl
import ipaddress
import os

import pytest

from cni_bridge_py.firewall import nft_ledger
from cni_bridge_py.firewall.layout import MasqRequest
from cni_bridge_py.firewall.nft_ledger import ENTRY, HEADER, Ledger, SharedLedger, rules_key


def req(container: str, *addresses: str, network: str = "testnet") -> MasqRequest:
    return MasqRequest(network, container, tuple(ipaddress.ip_interface(a) for a in addresses))


RED = rules_key(req("red", "10.0.0.2/24"), 4)
BLUE = rules_key(req("blue", "10.0.0.3/24"), 4)
GREEN = rules_key(req("green", "10.0.0.4/24"), 4)


def holds(ledger: Ledger, generation: int, rules: bytes) -> bool:
    """What still_written asks of the ledger (nft_netlink): the ruleset at `generation` has
    `rules` as our transaction wrote them."""
    return ledger.knows(rules) and ledger.at(generation)


def test_our_commits_one_after_another_are_all_known_at_the_latest_generation() -> None:
    ledger = Ledger()
    assert len(ledger._buf) == HEADER.size  # a process's own grows with its entries
    ledger.committed(7, wrote=RED)
    ledger.committed(8, wrote=BLUE)
    assert ledger.knows(RED) and ledger.knows(BLUE) and not ledger.knows(GREEN)
    assert holds(ledger, 8, RED) and holds(ledger, 8, BLUE)
    assert ledger.at(8) and len(ledger._buf) == HEADER.size + 2 * ENTRY
    # Any other generation: someone committed since (or the kernel's is not the ledger's).
    assert not holds(ledger, 9, RED) and not holds(ledger, 7, RED)


def test_a_commit_of_someone_else_in_between_leaves_only_our_latest_known() -> None:
    ledger = Ledger()
    ledger.committed(7, wrote=RED)
    ledger.committed(9, wrote=BLUE)  # 8 was not ours: it may have removed RED's rules
    assert not ledger.knows(RED)
    assert holds(ledger, 9, BLUE)


def test_a_removal_forgets_that_chain_only() -> None:
    ledger = Ledger()
    ledger.committed(7, wrote=RED)
    ledger.committed(8, wrote=BLUE)
    ledger.committed(9, removed=req("red").chain)
    assert not ledger.knows(RED)
    assert holds(ledger, 9, BLUE)


def test_a_commit_whose_generation_is_unknown_forgets_everything() -> None:
    ledger = Ledger()
    ledger.committed(7, wrote=RED)
    ledger.committed(None, wrote=BLUE)
    assert not ledger.knows(RED) and not ledger.knows(BLUE)
    ledger.committed(8, wrote=GREEN)  # no chain from an unknown generation either
    assert holds(ledger, 8, GREEN) and not ledger.knows(BLUE)


def test_the_chain_continues_across_the_32_bit_wrap_which_skips_zero() -> None:
    ledger = Ledger()
    ledger.committed(0xFFFFFFFF, wrote=RED)
    ledger.committed(1, wrote=BLUE)
    assert holds(ledger, 1, RED) and holds(ledger, 1, BLUE)


def test_the_same_rules_written_again_are_one_entry() -> None:
    ledger = Ledger()
    ledger.committed(7, wrote=RED)
    ledger.committed(8, wrote=RED)
    assert holds(ledger, 8, RED)
    assert HEADER.unpack(bytes(ledger._buf[: HEADER.size]))[2] == 1


def test_a_full_ledger_forgets_all_but_the_newest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nft_ledger, "CAPACITY", 2)
    ledger = Ledger()
    ledger.committed(7, wrote=RED)
    ledger.committed(8, wrote=BLUE)
    ledger.committed(9, wrote=GREEN)
    assert [ledger.knows(k) for k in (RED, BLUE, GREEN)] == [False, False, True]


def test_rules_differ_by_family_chain_and_addresses() -> None:
    dual = req("red", "10.0.0.2/24", "fd00::2/64")
    keys = {
        rules_key(dual, 4),
        rules_key(dual, 6),
        rules_key(req("red", "10.0.0.2/24", network="othernet"), 4),
        rules_key(req("red", "10.0.0.9/24"), 4),
        rules_key(req("red", "10.0.0.2/25"), 4),  # another ACCEPT
    }
    assert len(keys) == 5 and all(len(k) == ENTRY for k in keys)
    assert rules_key(dual, 4) == RED  # the other family's addresses are not this one's rules


def test_an_entry_is_only_found_where_an_entry_starts() -> None:
    # Bytes that spell RED across two entries do not make RED an entry.
    straddling = BLUE[:5] + RED + BLUE[5:] + bytes(ENTRY - 5)
    assert nft_ledger._find(straddling, RED) == -1
    assert nft_ledger._find(BLUE + RED, RED) == 1


def test_a_shared_ledger_sees_what_a_forked_child_committed_and_excludes_it() -> None:
    ledger = SharedLedger()
    ledger.committed(7, wrote=RED)
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: commit, then hold the lock until told to go
        try:
            with ledger.locked():
                ledger.committed(8, wrote=BLUE)
                os.write(ready_w, b"x")
                os.read(go_r, 1)
        finally:
            os._exit(0)
    try:
        os.read(ready_r, 1)
        # The child holds the lock: this process cannot take it meanwhile.
        with pytest.raises(OSError):
            fcntl.lockf(ledger._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.write(go_w, b"x")
        os.waitpid(pid, 0)
        for fd in (ready_r, ready_w, go_r, go_w):
            os.close(fd)
    with ledger.locked():
        assert holds(ledger, 8, RED) and holds(ledger, 8, BLUE)
