"""GC of host-local reservations (spec 1.1, plugins#1047's pitfalls) and STATUS."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

import pytest

from cni_bridge_py.errors import InvalidConfig, IOFailure, PluginUnavailable
from cni_bridge_py.fields import Fields
from cni_bridge_py.ipam import allocator
from cni_bridge_py.ipam.allocator import Attachment
from cni_bridge_py.ipam.config import invalid_config, parse_valid_attachments
from cni_bridge_py.ipam.disk import DiskStore
from cni_bridge_py.ipam.gc import gc
from cni_bridge_py.ipam.ranges import Range, RangeSet
from cni_bridge_py.ipam.status import status
from cni_bridge_py.ipam.store import Owner, Store, parse_owner
from tests.doubles.store import MemoryStore

ip = ipaddress.ip_address
net = ipaddress.ip_network
V4 = RangeSet.build([Range.build(net("10.0.0.0/29"))])  # .2-.6 usable
V6 = RangeSet.build([Range.build(net("fd00::/125"))])  # ::2-::7 usable


@pytest.fixture(params=["memory", "disk"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "memory":
        return MemoryStore()
    return DiskStore(str(tmp_path), "mynet", lock_timeout=1.0)


def add(store: Store, cid: str, ifname: str = "eth0") -> None:
    allocator.allocate(store, [V4], Attachment(cid, ifname))


def holders(store: Store) -> list[tuple[str, str | None]]:
    return sorted((o.container_id, o.ifname) for _, o in store.owners())


# ---- owners ----


@pytest.mark.parametrize(
    ("text", "owner"),
    [
        ("red\r\neth0", Owner("red", "eth0")),
        ("  red\r\neth0\n", Owner("red", "eth0")),
        ("red", Owner("red", None)),
        ("red\n", Owner("red", None)),
    ],
)
def test_parse_owner(text: str, owner: Owner) -> None:
    assert parse_owner(text) == owner


# ---- gc ----


def test_gc_removes_what_no_valid_attachment_owns(store: Store) -> None:
    for cid in ("a", "b", "c"):
        add(store, cid)
    add(store, "b", "net1")
    removed = gc(store, {("b", "eth0")})
    assert sorted(map(str, removed)) == ["10.0.0.2", "10.0.0.4", "10.0.0.5"]
    assert holders(store) == [("b", "eth0")]


def test_gc_with_nothing_valid_removes_everything(store: Store) -> None:
    add(store, "a")
    add(store, "b")
    assert len(gc(store, set())) == 2
    assert holders(store) == []


def test_gc_of_an_empty_network(store: Store) -> None:
    assert gc(store, {("a", "eth0")}) == []


def test_gc_leaves_lock_and_last_reserved_alone(tmp_path: Path) -> None:
    store = DiskStore(str(tmp_path), "mynet")
    add(store, "a")
    (tmp_path / "mynet" / "notes.txt").write_text("not ours")
    gc(store, set())
    assert sorted(os.listdir(tmp_path / "mynet")) == ["last_reserved_ip.0", "lock", "notes.txt"]


def test_gc_honours_legacy_id_only_files(tmp_path: Path) -> None:
    store = DiskStore(str(tmp_path), "mynet")
    directory = tmp_path / "mynet"
    (directory / "10.0.0.7").write_text("kept")
    (directory / "10.0.0.8").write_text("gone")
    (directory / "10.0.0.9").write_text("kept\r\neth1")  # a new-style file of the same container
    removed = gc(store, {("kept", "eth0")})
    assert sorted(map(str, removed)) == ["10.0.0.8", "10.0.0.9"]
    assert sorted(os.listdir(directory)) == ["10.0.0.7", "lock"]


def test_gc_does_not_touch_other_networks(tmp_path: Path) -> None:
    mine = DiskStore(str(tmp_path), "mynet")
    other = DiskStore(str(tmp_path), "othernet")
    add(mine, "a")
    add(other, "a")
    gc(mine, set())
    assert holders(other) == [("a", "eth0")]


# ---- the valid list ----


def valid_attachments(config: dict[str, Any]) -> frozenset[tuple[str, str]]:
    problems: list[str] = []
    found = parse_valid_attachments(Fields(config, "", problems))
    if problems:
        raise invalid_config(problems)
    return found


def test_valid_attachments() -> None:
    conf = {
        "cni.dev/valid-attachments": [
            {"containerID": "a", "ifname": "eth0"},
            {"containerID": " b ", "ifname": "net1", "extra": 1},
        ]
    }
    assert valid_attachments(conf) == {("a", "eth0"), ("b", "net1")}


def test_a_missing_list_means_nothing_is_valid() -> None:
    assert valid_attachments({"name": "mynet"}) == set()


def test_the_old_key_is_read_when_the_new_one_is_absent() -> None:
    old = {"cni.dev/attachments": [{"containerID": "a", "ifname": "eth0"}]}
    assert valid_attachments(old) == {("a", "eth0")}
    both = {**old, "cni.dev/valid-attachments": []}
    assert valid_attachments(both) == set()


@pytest.mark.parametrize(
    "value",
    [
        "a",
        {"containerID": "a"},
        ["a"],
        [{"containerID": "", "ifname": "eth0"}],
        [{"containerID": "a"}],
        [{"containerID": 5, "ifname": "eth0"}],
    ],
)
def test_a_bad_list_is_a_config_error(value: Any) -> None:
    with pytest.raises(InvalidConfig) as info:
        valid_attachments({"cni.dev/valid-attachments": value})
    assert "cni.dev/valid-attachments" in str(info.value)


# ---- status ----


def unavailable(store: Store, range_sets: list[RangeSet]) -> str | None:
    """STATUS's reason an ADD could not succeed now, or None when it could."""
    try:
        status(lambda _d, _n: store, "/data", "mynet", range_sets)
    except PluginUnavailable as exc:
        return exc.msg
    return None


def test_status_is_ok_while_every_set_has_a_free_address(store: Store) -> None:
    for i in range(4):  # all of V4 but 10.0.0.6; V6 untouched
        add(store, f"c{i}")
    held = holders(store)
    assert unavailable(store, [V4, V6]) is None
    assert holders(store) == held  # advisory: it reserves nothing
    add(store, "c4")
    assert unavailable(store, [V4, V6]) == (
        "no IP addresses available in range set 0: 10.0.0.1-10.0.0.6"
    )


def test_status_when_one_set_is_exhausted(store: Store) -> None:
    for i in range(5):
        add(store, f"c{i}")
    with pytest.raises(PluginUnavailable) as info:
        status(lambda _d, _n: store, "/data", "mynet", [V6, V4])
    assert info.value.code == 50
    assert info.value.msg == "no IP addresses available in range set 1: 10.0.0.1-10.0.0.6"
    assert "GC" in info.value.details


def test_status_when_the_data_dir_cannot_be_made(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    data_dir = str(tmp_path / "file")
    with pytest.raises(PluginUnavailable) as info:
        status(DiskStore, data_dir, "mynet", [V4])
    assert info.value.msg.startswith("host-local cannot record reservations: cannot create")
    assert "ipam.dataDir" in info.value.details


def test_status_when_the_store_cannot_be_written() -> None:
    class ReadOnly(MemoryStore):
        def check_writable(self) -> None:
            raise IOFailure(
                "the IPAM data dir /data/mynet is not writable", "Read-only file system"
            )

    with pytest.raises(PluginUnavailable) as info:
        status(lambda _d, _n: ReadOnly(), "/data", "mynet", [V4])
    assert "not writable" in info.value.msg
    assert "Read-only file system" in info.value.details


def test_disk_store_writability_probe_leaves_nothing(tmp_path: Path) -> None:
    store = DiskStore(str(tmp_path), "mynet")
    before = sorted(os.listdir(tmp_path / "mynet"))
    store.check_writable()
    assert sorted(os.listdir(tmp_path / "mynet")) == before


def test_remove(store: Store) -> None:
    add(store, "a")
    assert store.remove(ip("10.0.0.2"))
    assert not store.remove(ip("10.0.0.2"))
