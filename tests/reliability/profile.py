"""How hard the reliability suite pushes: the CI profile (the default, a few minutes) or the
full one (`make reliability`, RELIABILITY_PROFILE=full)."""

from __future__ import annotations

import os
from dataclasses import dataclass

PROFILE_ENV = "RELIABILITY_PROFILE"
ONE_SHOT, AGENT, MIXED = "one-shot", "agent", "mixed"
IPTABLES, NFTABLES = "iptables", "nftables"


@dataclass(frozen=True)
class Profile:
    name: str
    # Examples per hypothesis property (front.handle, no kernel).
    examples: int
    # How the fixed corpus reaches the plugin: each mode runs every case.
    corpus_modes: tuple[str, ...]
    # Crash matrix: (mode, masquerade backend) pairs, each killed at every ADD and DEL step.
    crash_matrix: tuple[tuple[str, str], ...]
    # Load: rounds of `width` concurrent ADDs then DELs, per mode.
    load_rounds: int
    load_width: int
    load_modes: tuple[str, ...]


CI = Profile(
    name="ci",
    examples=300,
    corpus_modes=(ONE_SHOT,),
    crash_matrix=((ONE_SHOT, IPTABLES), (AGENT, NFTABLES)),
    load_rounds=1,
    load_width=32,
    load_modes=(ONE_SHOT, AGENT),
)
FULL = Profile(
    name="full",
    examples=3000,
    corpus_modes=(ONE_SHOT, AGENT),
    crash_matrix=(
        (ONE_SHOT, IPTABLES),
        (ONE_SHOT, NFTABLES),
        (AGENT, IPTABLES),
        (AGENT, NFTABLES),
    ),
    load_rounds=3,
    load_width=64,
    load_modes=(ONE_SHOT, AGENT, MIXED),
)
PROFILES = {p.name: p for p in (CI, FULL)}


def current() -> Profile:
    name = os.environ.get(PROFILE_ENV, CI.name)
    if name not in PROFILES:
        raise SystemExit(f"{PROFILE_ENV}={name!r}: expected one of {sorted(PROFILES)}")
    return PROFILES[name]
