"""The "ipam" section: which IPAM plugin, and host-local's settings (pure).

"host-local" runs in process; any other type names a plugin executable on CNI_PATH, whose
settings are its own business (it receives the whole config on stdin).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cni_bridge_py.errors import InvalidConfig
from cni_bridge_py.fields import Fields
from cni_bridge_py.ipam.ranges import Range, RangeError, RangeSet, check_no_overlap
from cni_bridge_py.netaddr import IPAddress, parse_address, parse_network
from cni_bridge_py.result import Route

HOST_LOCAL = "host-local"
DEFAULT_DATA_DIR = "/var/lib/cni/networks"
NO_RANGES = 'no IP ranges specified: give "ranges" or "subnet"'


@dataclass(frozen=True)
class HostLocalConf:
    range_sets: tuple[RangeSet, ...]
    routes: tuple[Route, ...] = ()
    data_dir: str = DEFAULT_DATA_DIR
    # A resolv.conf-format file whose contents become the result's "dns" ("" = none).
    resolv_conf: str = ""


@dataclass(frozen=True)
class IpamConf:
    type: str
    # None: `type` is a plugin executable found on CNI_PATH (delegation).
    host_local: HostLocalConf | None = None


def parse_ipam(fields: Fields | None, runtime_ranges: bool = False) -> IpamConf | None:
    """`runtime_ranges`: the runtime supplies runtimeConfig.ipRanges (see parse_host_local)."""
    if fields is None or not fields.data:
        return None
    ipam_type = fields.get("type", str, "")
    if not ipam_type:
        fields.problem(
            "type", 'missing: name an IPAM plugin (e.g. "host-local"), or drop "ipam" for L2 mode'
        )
        return None
    if ipam_type != HOST_LOCAL:
        if "/" in ipam_type or "\0" in ipam_type or ipam_type in (".", ".."):
            # It is looked up by name in the CNI_PATH dirs; a path would escape them.
            fields.problem(
                "type", f"{ipam_type!r} is not a plugin name (no '/' or NUL, not '.' or '..')"
            )
            return None
        return IpamConf(ipam_type)
    return IpamConf(ipam_type, parse_host_local(fields, runtime_ranges))


def has_runtime_ranges(config: Mapping[str, Any]) -> bool:
    """The runtime sends a non-empty runtimeConfig.ipRanges (whether it parses is checked
    where it is used: effective.py)."""
    runtime = config.get("runtimeConfig")
    return isinstance(runtime, dict) and bool(runtime.get("ipRanges"))


def parse_host_local(fields: Fields, runtime_ranges: bool = False) -> HostLocalConf:
    """host-local's keys of one "ipam" object; problems are collected in `fields`.

    No configured range is fine when `runtime_ranges` (as in the reference, a network whose
    only range comes from the runtime's ipRanges); otherwise it is "no IP ranges specified"."""
    range_sets: list[RangeSet] = []
    # Problems found before the ranges are unrelated: they must not hide "no IP ranges".
    problems_before = len(fields.problems)
    if fields.data.get("subnet") is not None:
        legacy = _range(fields)
        if legacy is not None:
            range_sets.append(RangeSet((legacy,)))
    range_sets.extend(parse_range_sets(fields, "ranges"))
    if not range_sets and not runtime_ranges and len(fields.problems) == problems_before:
        fields.problem("ranges", NO_RANGES)
    try:
        check_no_overlap(range_sets)
    except RangeError as exc:
        fields.problem("ranges", str(exc))
    data_dir = fields.get("dataDir", str, DEFAULT_DATA_DIR) or DEFAULT_DATA_DIR
    if why := _data_dir_problem(data_dir):
        fields.problem("dataDir", f"{data_dir!r} {why}")
    resolv_conf = fields.get("resolvConf", str, "")
    if "\0" in resolv_conf:
        fields.problem("resolvConf", f"{resolv_conf!r} holds a NUL byte")
    routes = tuple(r for r in (_route(f) for f in fields.objects("routes")) if r is not None)
    return HostLocalConf(tuple(range_sets), routes, data_dir, resolv_conf)


def _data_dir_problem(path: str) -> str | None:
    """The store lives in <dataDir>/<network>: an absolute path without ".." (which would
    leave the directory the config names) and without NUL (which no path can hold)."""
    if not os.path.isabs(path):
        return "must be an absolute path"
    if "\0" in path:
        return "holds a NUL byte"
    if ".." in path.split("/"):
        return 'must not contain ".."'
    return None


def parse_range_sets(fields: Fields, key: str) -> list[RangeSet]:
    """A list of range sets ("ranges", or runtimeConfig's "ipRanges"); bad ones are skipped."""
    out: list[RangeSet] = []
    for index, raw_set in enumerate(fields.get(key, list, [])):
        where = f"{key}[{index}]"
        if not isinstance(raw_set, list) or not raw_set:
            fields.problem(where, "expected a non-empty list of ranges")
            continue
        members = []
        for sub_index, raw in enumerate(raw_set):
            if not isinstance(raw, dict):
                fields.problem(f"{where}[{sub_index}]", "expected an object")
                continue
            built = _range(Fields(raw, f"{fields.path(where)}[{sub_index}]", fields.problems))
            if built is not None:
                members.append(built)
        if len(members) == len(raw_set):
            try:
                out.append(RangeSet.build(members))
            except RangeError as exc:
                fields.problem(where, str(exc))
    return out


def _range(fields: Fields) -> Range | None:
    subnet_text = fields.get("subnet", str, "")
    if not subnet_text:
        fields.problem("subnet", "missing")
        return None
    try:
        subnet = parse_network(subnet_text)
    except ValueError as exc:
        fields.problem(
            "subnet",
            f"{exc}" if "host bits" not in str(exc) else f"{subnet_text} has host bits set",
        )
        return None
    start, end, gateway = (
        fields.address("rangeStart"),
        fields.address("rangeEnd"),
        fields.address("gateway"),
    )
    try:
        return Range.build(subnet, start, end, gateway)
    except RangeError as exc:
        fields.problem("subnet", str(exc))
        return None


def _route(fields: Fields) -> Route | None:
    dst_text = fields.get("dst", str, "")
    try:
        dst = parse_network(dst_text, strict=False)
    except ValueError:
        fields.problem("dst", f"{dst_text!r} is not a CIDR")
        return None
    gw = fields.address("gw")
    if gw is not None and gw.version != dst.version:
        fields.problem("gw", f"{gw} is not of the same family as {dst}")
        return None
    return Route(dst=dst, gw=gw)


def requested_ips(text: str, problems: list[str]) -> tuple[IPAddress, ...]:
    """CNI_ARGS IP=a[,b...], each optionally with a prefix length, as host-local reads it."""
    return tuple(
        ip
        for ip in (
            requested_ip(item, "CNI_ARGS IP=", problems)
            for item in filter(None, (part.strip() for part in text.split(",")))
        )
        if ip is not None
    )


def requested_ip(text: str, source: str, problems: list[str]) -> IPAddress | None:
    """One requested address, "a.b.c.d" or "a.b.c.d/nn" (the prefix is ignored, as in Go)."""
    try:
        return parse_address(text.split("/", 1)[0])
    except ValueError:
        problems.append(f"{source} {text!r} is not an IP address")
        return None


def invalid_config(problems: Sequence[str]) -> InvalidConfig:
    """One code-7 error for every problem found: the first in the message, all in details."""
    return InvalidConfig(
        f"invalid network config: {problems[0]}"
        + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
        "; ".join(problems) if len(problems) > 1 else "",
    )
