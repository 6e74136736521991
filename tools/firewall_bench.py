"""Times one ADD's and one DEL's firewall work, the way the verbs call the backends, with N
other attachments' rules already present; inside a throwaway network namespace.

    python -m tools.firewall_bench --backend iptables --attachments 0,250 --rounds 30

The outer run makes namespace fwb-<pid>, reruns itself inside it (`ip netns exec`) once per
backend and level, and deletes the namespace; the host's own rules are never read or written.
ADD is the chosen backend's setup (and the spoof checker's with --spoof); DEL is what
verbs/delete.py does: the spoof checker's teardown, then every available backend's teardown.
Figures are medians in milliseconds over --rounds fresh containers, each added then deleted.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cni_bridge_py.firewall.backend import (
    MasqBackend,
    SpoofChecker,
    all_backends,
    default_backend,
    spoof_checker,
)
from cni_bridge_py.firewall.layout import MasqRequest
from cni_bridge_py.firewall.spoof_layout import SpoofCheck

NETWORK = "fwbench"
SUBNET = ipaddress.ip_network("10.200.0.0/16")
LEGACY_TOOLS = {
    "iptables": "iptables-legacy",
    "ip6tables": "ip6tables-legacy",
    "iptables-save": "iptables-legacy-save",
    "iptables-restore": "iptables-legacy-restore",
    "ip6tables-save": "ip6tables-legacy-save",
    "ip6tables-restore": "ip6tables-legacy-restore",
}
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def _request(index: int) -> MasqRequest:
    address = ipaddress.ip_interface(f"{SUBNET[index + 2]}/{SUBNET.prefixlen}")
    return MasqRequest(NETWORK, f"bench{index:05d}", (address,), "eth0")


def _spoof(index: int) -> SpoofCheck:
    mac = f"02:00:00:00:{index >> 8 & 0xFF:02x}:{index & 0xFF:02x}"
    return SpoofCheck(f"bench{index:05d}", "eth0", f"vethb{index:05d}", mac)


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


def _timed(call: Callable[[], None]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def inner(preference: str, path_env: str, attachments: int, rounds: int, spoof: bool) -> str:
    """In the namespace: populate, then time `rounds` ADD/DEL pairs of fresh containers."""
    backend: MasqBackend | None = default_backend(path_env, preference)
    checker: SpoofChecker | None = spoof_checker(path_env)
    assert backend is not None and checker is not None, "backend or nft missing"
    everyone = all_backends(path_env)
    for index in range(attachments):
        backend.setup(_request(index))
        if spoof:
            checker.setup(_spoof(index))
    adds: list[float] = []
    dels: list[float] = []
    for index in range(attachments, attachments + rounds):
        request, spec = _request(index), _spoof(index)

        def add(request: MasqRequest = request, spec: SpoofCheck = spec) -> None:
            if spoof:
                checker.setup(spec)
            backend.setup(request)

        def delete(request: MasqRequest = request, spec: SpoofCheck = spec) -> None:
            checker.teardown(SpoofCheck(spec.container_id, spec.ifname))
            for each in everyone:
                each.teardown(request)

        adds.append(_timed(add))
        dels.append(_timed(delete))
    what = f"{backend.name}{' +spoof' if spoof else ''} @{attachments}"
    return f"{what}: ADD {_median_ms(adds)} ms, DEL {_median_ms(dels)} ms"


def outer(args: argparse.Namespace) -> None:
    netns = f"fwb-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        with tempfile.TemporaryDirectory() as shim:
            path_env = SYSTEM_PATH
            if args.backend == "iptables-legacy":
                for name, target in LEGACY_TOOLS.items():
                    Path(shim, name).symlink_to(f"/usr/sbin/{target}")
                path_env = f"{shim}:{SYSTEM_PATH}"
            preference = "nftables" if args.backend == "nftables" else "iptables"
            for level in args.attachments:
                # A fresh namespace per level, so each starts from empty tables.
                subprocess.run(["ip", "netns", "del", netns], check=True)
                subprocess.run(["ip", "netns", "add", netns], check=True)
                command = [sys.executable, "-m", "tools.firewall_bench", "--inner"]
                command += [preference, path_env, str(level), str(args.rounds)]
                command += ["--spoof"] if args.spoof else []
                subprocess.run(["ip", "netns", "exec", netns, *command], check=True)
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument(
        "--backend", choices=("iptables", "iptables-legacy", "nftables"), default="iptables"
    )
    parser.add_argument(
        "--attachments", type=lambda s: [int(x) for x in s.split(",")], default=[0, 250]
    )
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--spoof", action="store_true", help="macspoofchk on every attachment")
    parser.add_argument("--inner", nargs=4, metavar=("PREF", "PATH", "N", "ROUNDS"))
    args = parser.parse_args()
    if args.inner:
        preference, path_env, level, rounds = args.inner
        print(inner(preference, path_env, int(level), int(rounds), args.spoof), flush=True)
        return
    outer(args)


if __name__ == "__main__":
    main()
