"""Backend selection from the host's binaries, lazy imports, and the iptables GC batch (pure)."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cni_bridge_py.firewall import layout
from cni_bridge_py.firewall.backend import all_backends, default_backend, iptables_variant
from cni_bridge_py.firewall.layout import NatTable, chain_name, owned_chains, render_gc
from cni_bridge_py.lookup_memo import KeptLookups
from cni_bridge_py.lookups import DIRECT, Lookups
from cni_bridge_py.which import link_target

# --- selection


def make_path(tmp_path: Path, iptables: str | None, nft: bool) -> str:
    """A PATH dir with `iptables` pointing at a binary named like Debian's nft or legacy
    multi-call binary, and optionally an `nft`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tools = ["iptables", "iptables-save", "iptables-restore"] if iptables else []
    if iptables:
        target = bin_dir / f"xtables-{iptables}-multi"
        target.write_text("#!/bin/sh\nexit 1\n")
        target.chmod(0o755)
        for tool in tools:
            (bin_dir / tool).symlink_to(target.name)
    if nft:
        (bin_dir / "nft").write_text("#!/bin/sh\nexit 1\n")
        (bin_dir / "nft").chmod(0o755)
    return str(bin_dir)


@pytest.fixture(params=["direct", "kept"])
def lookups(request: pytest.FixtureRequest) -> Lookups:
    """Looked up on each call (one-shot), or kept as an agent keeps them."""
    return KeptLookups() if request.param == "kept" else DIRECT


@pytest.mark.parametrize(
    ("tools", "preference", "expected"),
    [
        (("nft", True), "", "iptables"),
        (("legacy", True), "", "iptables-legacy"),
        ((None, True), "", "nftables"),
        ((None, False), "", None),
        (("nft", True), "nftables", "nftables"),
        (("legacy", True), "nftables", "nftables"),
        (("nft", False), "nftables", None),
        (("nft", True), "iptables", "iptables"),
        (("legacy", False), "iptables", "iptables-legacy"),
        ((None, True), "iptables", None),
    ],
)
def test_default_backend(
    tmp_path: Path,
    tools: tuple[str | None, bool],
    preference: str,
    expected: str | None,
    lookups: Lookups,
) -> None:
    path = make_path(tmp_path, *tools)
    for _ in range(2):  # the second from what an agent keeps
        backend = default_backend(path, preference, lookups)
        assert (backend.name if backend else None) == expected


def test_an_agent_picks_again_once_the_tools_change(tmp_path: Path) -> None:
    path, lookups = make_path(tmp_path, "legacy", False), KeptLookups()
    assert [b.name for b in all_backends(path, lookups)] == ["iptables-legacy"]
    bin_dir = Path(path)
    (bin_dir / "xtables-nft-multi").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "xtables-nft-multi").chmod(0o755)
    (bin_dir / "iptables").unlink()
    (bin_dir / "iptables").symlink_to("xtables-nft-multi")
    assert [b.name for b in all_backends(path, lookups)] == ["iptables"]
    (bin_dir / "nft").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "nft").chmod(0o755)
    assert [b.name for b in all_backends(path, lookups)] == ["iptables", "nftables"]


@pytest.mark.parametrize(
    ("iptables", "nft", "expected"),
    [
        ("nft", True, ["iptables", "nftables"]),
        ("legacy", True, ["iptables-legacy", "nftables"]),
        ("nft", False, ["iptables"]),
        (None, True, ["nftables"]),
        (None, False, []),
    ],
)
def test_all_backends(
    tmp_path: Path, iptables: str | None, nft: bool, expected: list[str], lookups: Lookups
) -> None:
    path = make_path(tmp_path, iptables, nft)
    for _ in range(2):
        assert [b.name for b in all_backends(path, lookups)] == expected


def test_variant_follows_symlinks(tmp_path: Path) -> None:
    assert iptables_variant(make_path(tmp_path, "legacy", False)) == "legacy"
    assert iptables_variant(str(tmp_path / "nothing-here")) is None


CHOOSE = """
import sys
from cni_bridge_py.firewall.backend import default_backend, spoof_checker
backend = default_backend(sys.argv[1], sys.argv[2])
spoof_checker(sys.argv[1])
print(backend.name, sorted(m for m in sys.modules if m in ("iptc", "pyroute2")))
"""


@pytest.mark.parametrize(
    ("iptables", "preference", "expected"),
    [
        ("nft", "", "iptables []"),
        ("legacy", "nftables", "nftables []"),
        ("legacy", "", "iptables-legacy ['iptc']"),
    ],
)
def test_python_iptables_loads_only_when_chosen(
    tmp_path: Path, iptables: str, preference: str, expected: str
) -> None:
    path = make_path(tmp_path, iptables, True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
    proc = subprocess.run(
        [sys.executable, "-c", CHOOSE, path, preference],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected


LOADS = """
import sys
from cni_bridge_py.firewall.backend import default_backend, spoof_checker
backend = default_backend(sys.argv[1], sys.argv[2])
if sys.argv[3] == "spoof":
    spoof_checker(sys.argv[1])
watched = ("ctypes", "subprocess", "iptc", "cni_bridge_py.firewall.nft_lib")
print(backend.name, sorted(m for m in sys.modules if m in watched))
"""
LIB = "cni_bridge_py.firewall.nft_lib"


@pytest.mark.skipif(
    not Path("/usr/lib/x86_64-linux-gnu/libnftables.so.1").exists()
    and ctypes.util.find_library("nftables") is None,
    reason="libnftables (Debian's libnftables1) is not installed",
)
@pytest.mark.parametrize(
    ("preference", "spoof", "expected"),
    [
        # iptables-nft's ADD drives a binary; DEL and CHECK load libnftables when they run.
        ("iptables", "", "iptables ['subprocess']"),
        # nftables in process: ctypes and the library, no process module for it.
        ("nftables", "", f"nftables ['{LIB}', 'ctypes']"),
        ("iptables", "spoof", f"iptables ['{LIB}', 'ctypes', 'subprocess']"),
    ],
)
def test_libnftables_loads_only_for_nftables_or_the_spoof_checker(
    tmp_path: Path, preference: str, spoof: str, expected: str
) -> None:
    path = make_path(tmp_path, "nft", True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
    proc = subprocess.run(
        [sys.executable, "-c", LOADS, path, preference, spoof],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected


PURE = (
    "cni_bridge_py.firewall.backend",
    "cni_bridge_py.firewall.layout",
    "cni_bridge_py.firewall.nft_json",
    "cni_bridge_py.firewall.nft_layout",
    "cni_bridge_py.firewall.nft_text",
    "cni_bridge_py.firewall.nft_transport",
    "cni_bridge_py.firewall.spoof_layout",
)


def test_renderers_and_selection_import_no_io_library() -> None:
    code = "import sys\n" + "".join(f"import {m}\n" for m in PURE)
    code += "print(sorted(m for m in sys.modules if m.split('.')[0] in"
    code += " ('subprocess', 'iptc', 'pyroute2', 'ctypes', 'socket', 'fcntl')))"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# --- iptables GC (pure part)


def comment(network: str, cid: str) -> str:
    return f'"name: \\"{network}\\" id: \\"{cid}\\""'


def chain_lines(network: str, cid: str, source: str, subnet: str) -> list[str]:
    chain, c = chain_name(network, cid), comment(network, cid)
    return [
        f"-A POSTROUTING -s {source}/32 -m comment --comment {c} -j {chain}",
        f"-A {chain} -d {subnet} -m comment --comment {c} -j ACCEPT",
        f"-A {chain} ! -d 224.0.0.0/4 -m comment --comment {c} -j MASQUERADE",
    ]


ATTACHMENTS = [
    ("testnet", "red1", "192.168.15.2", "192.168.15.0/24"),
    ("testnet", "blue1", "192.168.15.3", "192.168.15.0/24"),
    ("othernet", "red1", "10.9.0.2", "10.9.0.0/16"),
]
SAVE = "\n".join(
    [
        "# Generated by iptables-save v1.8.9 (nf_tables)",
        "*nat",
        ":PREROUTING ACCEPT [0:0]",
        ":POSTROUTING ACCEPT [0:0]",
        *(f":{chain_name(net, cid)} - [0:0]" for net, cid, _, _ in ATTACHMENTS),
        ":CNI-DN-unrelated - [0:0]",
        "-A POSTROUTING -s 10.0.0.0/8 -j CNI-DN-unrelated",
        *(line for a in ATTACHMENTS for line in chain_lines(*a)),
        "COMMIT",
    ]
)
NAT = NatTable.parse(SAVE)


def test_comment_parsing() -> None:
    assert layout.parse_comment('name: "testnet" id: "red1"') == ("testnet", "red1")
    assert layout.parse_comment("name: testnet id: red1") is None
    assert layout.parse_comment('name: "a\\qb" id: "c"') is None  # not JSON-decodable


def test_owned_chains_only_of_the_network() -> None:
    assert owned_chains(NAT, "testnet") == {
        chain_name("testnet", "red1"): "red1",
        chain_name("testnet", "blue1"): "blue1",
    }
    assert owned_chains(NAT, "othernet") == {chain_name("othernet", "red1"): "red1"}
    assert owned_chains(NAT, "nonet") == {}


def test_gc_batch_removes_only_stale_chains() -> None:
    batch, stale = render_gc(NAT, "testnet", {"blue1"})
    red = chain_name("testnet", "red1")
    assert stale == {red: "red1"}
    assert (
        batch
        == "\n".join(
            [
                "*nat",
                "-D POSTROUTING -s 192.168.15.2/32 -m comment --comment"
                f" {comment('testnet', 'red1')} -j {red}",
                f"-F {red}",
                f"-X {red}",
                "COMMIT",
            ]
        )
        + "\n"
    )


def test_gc_with_nothing_valid_takes_every_chain_of_the_network_in_one_batch() -> None:
    batch, stale = render_gc(NAT, "testnet", set())
    assert set(stale.values()) == {"red1", "blue1"}
    assert batch is not None
    assert batch.count("-X ") == 2 and batch.count("COMMIT") == 1
    assert chain_name("othernet", "red1") not in batch
    assert "CNI-DN-unrelated" not in batch


def test_gc_with_everything_valid_writes_nothing() -> None:
    assert render_gc(NAT, "testnet", {"red1", "blue1"}) == (None, {})


def test_link_target_ends_where_realpath_does(tmp_path: Path) -> None:
    """Debian's chain (iptables -> /etc/alternatives/iptables -> a multi-call binary),
    relative and absolute links, a directory link on the way, a loop and a plain file."""
    alternatives, sbin = tmp_path / "alternatives", tmp_path / "real" / "sbin"
    alternatives.mkdir()
    sbin.mkdir(parents=True)
    (sbin / "xtables-legacy-multi").write_text("")
    (tmp_path / "sbin").symlink_to("real/sbin")  # as /sbin -> usr/sbin
    (alternatives / "iptables").symlink_to(sbin / "xtables-legacy-multi")
    (sbin / "iptables").symlink_to("../../alternatives/iptables")
    (sbin / "loop-a").symlink_to("loop-b")
    (sbin / "loop-b").symlink_to("loop-a")
    for start in ("sbin/iptables", "real/sbin/iptables", "real/sbin/xtables-legacy-multi"):
        path = str(tmp_path / start)
        assert os.path.basename(link_target(path)) == "xtables-legacy-multi"
        assert os.path.samefile(link_target(path), os.path.realpath(path))
    loop = str(sbin / "loop-a")
    assert os.path.basename(link_target(loop)) in ("loop-a", "loop-b")
