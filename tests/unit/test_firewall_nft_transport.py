"""How nft commands are run: libnftables' contexts (over a fake library), the `nft` executable
where the library cannot load (faked with pytest-subprocess), and which of the two is used."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from pytest_subprocess import FakeProcess

from cni_bridge_py.firewall import nft_lib, nft_run
from cni_bridge_py.firewall.nft_binary import NftBinary
from cni_bridge_py.firewall.nft_transport import Outcome


class Entry:
    """One C function of the fake library: ctypes' restype and argtypes land here too."""

    def __init__(self, body: Callable[..., Any]) -> None:
        self.body = body
        self.restype: Any = None
        self.argtypes: Any = None

    def __call__(self, *args: Any) -> Any:
        return self.body(*args)


@dataclass
class FakeLibrary:
    """libnftables' entry points over contexts numbered from 1."""

    with_input_flags: bool = True
    contexts: list[int] = field(default_factory=list)
    freed: list[int] = field(default_factory=list)
    flags: list[tuple[str, int, int]] = field(default_factory=list)
    ran: list[tuple[int, bytes]] = field(default_factory=list)

    def __getattr__(self, name: str) -> Entry:
        if name == "nft_ctx_input_set_flags" and not self.with_input_flags:
            raise AttributeError(name)
        bodies: dict[str, Callable[..., Any]] = {
            "nft_ctx_new": self._new,
            "nft_ctx_free": self.freed.append,
            "nft_ctx_output_set_flags": lambda ctx, f: self.flags.append(("output", ctx, f)),
            "nft_ctx_input_set_flags": lambda ctx, f: self.flags.append(("input", ctx, f)),
            "nft_ctx_buffer_output": lambda ctx: 0,
            "nft_ctx_buffer_error": lambda ctx: 0,
            "nft_run_cmd_from_buffer": self._run,
            "nft_ctx_get_output_buffer": lambda ctx: b"out",
            "nft_ctx_get_error_buffer": lambda ctx: b"",
        }
        entry = Entry(bodies[name])
        object.__setattr__(self, name, entry)  # typed once, as on a CDLL
        return entry

    def _new(self, flags: int) -> int:
        assert flags == nft_lib.CTX_DEFAULT
        self.contexts.append(len(self.contexts) + 1)
        return self.contexts[-1]

    def _run(self, ctx: int, commands: bytes) -> int:
        self.ran.append((ctx, commands))
        return 0 if b"fail" not in commands else -1


def library(fake: FakeLibrary) -> nft_lib.Libnftables:
    return nft_lib.Libnftables(cast("ctypes.CDLL", fake))  # what ctypes.CDLL offers


def test_one_context_serves_the_process_namespace() -> None:
    fake = FakeLibrary()
    lib = library(fake)
    assert lib.run("list tables") == Outcome(True, "out", "")
    assert lib.run("add table inet x").ok
    assert not lib.run("fail").ok
    assert fake.contexts == [1]
    assert [ctx for ctx, _ in fake.ran] == [1, 1, 1]
    assert fake.freed == []  # closing its socket would wait out the kernel's grace period


def test_a_thread_in_another_namespace_gets_a_context_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeLibrary()
    lib = library(fake)
    lib.run("list tables")
    monkeypatch.setattr(nft_lib, "in_process_netns", lambda: False)
    lib.run("list tables")
    lib.run("list tables")
    assert fake.contexts == [1, 2, 3]
    assert fake.freed == [2, 3]  # no socket keeps the container's namespace alive
    monkeypatch.undo()
    lib.run("list tables")
    assert fake.ran[-1][0] == 1


def test_a_forked_child_does_not_use_its_parents_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeLibrary()
    lib = library(fake)
    lib.run("list tables")
    parent = os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: parent + 1)
    lib.run("list tables")
    lib.run("list tables")
    assert [ctx for ctx, _ in fake.ran] == [1, 2, 2]
    assert fake.freed == []


def test_flags_per_command() -> None:
    fake = FakeLibrary()
    lib = library(fake)
    lib.run('{"nftables": []}', json=True)
    lib.run("list chain inet t c", handles=True)
    handles = nft_lib.OUTPUT_HANDLE | nft_lib.OUTPUT_NUMERIC_PRIO
    assert fake.flags == [
        ("output", 1, nft_lib.OUTPUT_JSON),
        ("input", 1, nft_lib.INPUT_JSON),
        ("output", 1, handles),
        ("input", 1, 0),  # a kept context must not keep parsing JSON
    ]


def test_libnftables_without_input_flags_reads_json_from_the_output_flag() -> None:
    fake = FakeLibrary(with_input_flags=False)
    library(fake).run('{"nftables": []}', json=True)
    assert fake.flags == [("output", 1, nft_lib.OUTPUT_JSON)]


def test_the_executable_where_the_library_does_not_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(nft_lib, "load", lambda: None)
    nft = nft_run.open_nft("/usr/sbin/nft")
    assert isinstance(nft.transport, NftBinary)
    fake = FakeLibrary()
    monkeypatch.setattr(nft_lib, "load", lambda: library(fake))
    assert isinstance(nft_run.open_nft("/usr/sbin/nft").transport, nft_lib.Libnftables)


def test_the_executable_gets_what_the_library_would(fp: FakeProcess, tmp_path: Path) -> None:
    nft = tmp_path / "nft"
    stdins: list[bytes | str] = []
    text = fp.register([str(nft), "-f", "-"], stdin_callable=stdins.append)
    fp.register([str(nft), "-j", "-f", "-"], stdin_callable=stdins.append)
    fp.register([str(nft), "-a", "-y", "-f", "-"], stdout="listing")
    fp.register(
        [str(nft), "-j", "list", "table", "inet", "t"], returncode=1, stderr="Error: No such"
    )
    binary = NftBinary(str(nft))
    assert binary.run("add table inet t\n") == Outcome(True, "", "")
    assert binary.run('{"nftables": []}', json=True).ok
    assert binary.run("list chain inet t c", handles=True).output == "listing"
    # `nft -j -f -` prints nothing for a text command: a listing goes on the command line.
    assert binary.run("list table inet t", json=True) == Outcome(False, "", "Error: No such")
    assert [s.decode() if isinstance(s, bytes) else s for s in stdins] == [
        "add table inet t\n",
        '{"nftables": []}',
    ]
    # nft's messages come from strerror: "No such file or directory" only in the C locale.
    assert (text.calls[0].kwargs or {})["env"] == {"LC_ALL": "C"}
