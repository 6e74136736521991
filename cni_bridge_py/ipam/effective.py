"""The range sets and requested addresses of one host-local request (pure).

host-local reads more than its "ipam" section: a runtime's runtimeConfig.ipRanges go in front
of the configured range sets (reference order: ipRanges, legacy top-level range, ranges), and
addresses can be requested through CNI_ARGS IP=, args.cni.ips and runtimeConfig.ips.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cni_bridge_py import version as versions
from cni_bridge_py.errors import IncompatibleVersion
from cni_bridge_py.fields import Fields
from cni_bridge_py.ipam.config import (
    NO_RANGES,
    HostLocalConf,
    invalid_config,
    parse_range_sets,
    requested_ip,
)
from cni_bridge_py.ipam.ranges import RangeError, RangeSet, check_no_overlap
from cni_bridge_py.netaddr import IPAddress

# 0.1.0/0.2.0 results have one "ip4" and one "ip6" block.
LEGACY_BEFORE = "0.3.0"


@dataclass(frozen=True)
class Allocation:
    range_sets: tuple[RangeSet, ...]
    requested: tuple[IPAddress, ...] = ()


def effective(
    settings: HostLocalConf,
    config: Mapping[str, Any],
    cni_version: str,
    cni_args_ips: Sequence[IPAddress] = (),
) -> Allocation:
    """What ADD allocates from; InvalidConfig (7) or IncompatibleVersion (1) when it cannot."""
    problems: list[str] = []
    top = Fields(config, "", problems)
    runtime = top.obj("runtimeConfig")
    extra = parse_range_sets(runtime, "ipRanges") if runtime is not None else []
    range_sets = (*extra, *settings.range_sets)
    if not range_sets and not problems:
        # The config may leave the ranges to the runtime (parse_host_local); then it must.
        problems.append(f'"ranges": {NO_RANGES}')
    if extra:
        try:
            check_no_overlap(range_sets)
        except RangeError as exc:
            problems.append(f'"runtimeConfig.ipRanges": {exc}')
    requested = [
        *cni_args_ips,
        *_requested(_cni_args_object(top), "ips"),
        *_requested(runtime, "ips"),
    ]
    if problems:
        raise invalid_config(problems)
    _check_one_per_family(range_sets, cni_version)
    # The reference keys requests by address, so a repeated one is one request.
    return Allocation(range_sets, tuple(dict.fromkeys(requested)))


def known_range_sets(settings: HostLocalConf, config: Mapping[str, Any]) -> tuple[RangeSet, ...]:
    """Best effort for DEL, GC and STATUS: the ipRanges that parse, then the configured sets.

    A runtime may send a damaged capability on DEL; that must not stop the release."""
    runtime = config.get("runtimeConfig")
    if not isinstance(runtime, dict):
        return settings.range_sets
    extra = parse_range_sets(Fields(runtime, "runtimeConfig", []), "ipRanges")
    try:
        check_no_overlap((*extra, *settings.range_sets))
    except RangeError:
        return settings.range_sets
    return (*extra, *settings.range_sets)


def _cni_args_object(top: Fields) -> Fields | None:
    args = top.obj("args")
    return args.obj("cni") if args is not None else None


def _requested(fields: Fields | None, key: str) -> list[IPAddress]:
    if fields is None:
        return []
    out: list[IPAddress] = []
    for index, value in enumerate(fields.get(key, list, [])):
        where = f'"{fields.path(key)}[{index}]"'
        if not isinstance(value, str):
            fields.problems.append(f"{where}: expected a string, got {value!r}")
            continue
        ip = requested_ip(value, where, fields.problems)
        if ip is not None:
            out.append(ip)
    return out


def _check_one_per_family(range_sets: Sequence[RangeSet], cni_version: str) -> None:
    if versions.at_least(cni_version, LEGACY_BEFORE):
        return
    for family in (4, 6):
        if sum(1 for s in range_sets if s.version == family) > 1:
            raise IncompatibleVersion(
                f"CNI version {cni_version} does not support more than 1 address per family",
                f"use cniVersion {LEGACY_BEFORE} or later, or one range set per family",
            )
