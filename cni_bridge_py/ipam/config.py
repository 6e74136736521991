"""The "ipam" section: which IPAM plugin, and host-local's settings (pure).

"host-local" runs in process; any other type names a plugin executable on CNI_PATH, whose
settings are its own business (it receives the whole config on stdin).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from cni_bridge_py import version as versions
from cni_bridge_py.errors import IncompatibleVersion, InvalidConfig
from cni_bridge_py.fields import Fields
from cni_bridge_py.ipam.ranges import Range, RangeError, RangeSet, check_no_overlap
from cni_bridge_py.netaddr import IPAddress, parse_address, parse_network
from cni_bridge_py.record import record
from cni_bridge_py.result import Route

HOST_LOCAL = "host-local"
DEFAULT_DATA_DIR = "/var/lib/cni/networks"
NO_RANGES = 'no IP ranges specified: give "ranges" or "subnet"'
# GC's list of the attachments the runtime still has; the key's name before cni#1101 second
# (libcni sends both).
VALID_ATTACHMENTS = "cni.dev/valid-attachments"
OLD_VALID_ATTACHMENTS = "cni.dev/attachments"
# 0.1.0/0.2.0 results have one "ip4" and one "ip6" block.
LEGACY_BEFORE = "0.3.0"


@record(frozen=True)
class HostLocalConf:
    # What ADD allocates from, one address per set: the runtime's runtimeConfig.ipRanges in
    # front of the configured sets (the reference's order: ipRanges, legacy "subnet", "ranges").
    range_sets: tuple[RangeSet, ...]
    routes: tuple[Route, ...] = ()
    data_dir: str = DEFAULT_DATA_DIR
    # A resolv.conf-format file whose contents become the result's "dns" ("" = none).
    resolv_conf: str = ""
    # Addresses asked for: CNI_ARGS IP=, then (ADD only) args.cni.ips and runtimeConfig.ips.
    requested: tuple[IPAddress, ...] = ()


@record(frozen=True)
class IpamConf:
    """What IPAM needs of a request's config, read once before anything runs. The main
    plugin's NetConf holds one; the standalone host-local plugin builds only this."""

    network: str  # the network's name: host-local's directory under data_dir
    type: str
    # None: `type` is a plugin executable found on CNI_PATH (delegation).
    host_local: HostLocalConf | None = None


def parse_ipam(
    top: Fields, network: str, command: str, cni_args_ip: str = "", *, leased: bool = False
) -> IpamConf | None:
    """The "ipam" section of the config object `top`, with what host-local also reads outside
    it (runtimeConfig.ipRanges, args.cni.ips, runtimeConfig.ips, CNI_ARGS IP=).

    ADD reads all of it strictly. DEL, CHECK, GC and STATUS take the runtime's ipRanges only
    when they parse and ignore requested addresses: a runtime may send a damaged capability on
    DEL, and that must not stop the release. None when there is no "ipam" (L2 mode).
    `leased`: a cluster network, whose range is the node's lease (cluster/leased.py): the
    config names none."""
    fields = top.obj("ipam")
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
        if ipam_type == top.get("type", str, ""):
            # The plugin would run itself with the same config, again and again.
            fields.problem(
                "type",
                f'{ipam_type!r} is the plugin itself: name an IPAM plugin, e.g. "host-local"',
            )
            return None
        return IpamConf(network, ipam_type)
    settings = parse_host_local(
        fields, top, adding=command == "ADD", cni_args_ip=cni_args_ip, leased=leased
    )
    return IpamConf(network, ipam_type, settings)


def parse_host_local(
    fields: Fields, top: Fields, *, adding: bool, cni_args_ip: str = "", leased: bool = False
) -> HostLocalConf:
    """host-local's keys of one "ipam" object `fields` and the runtime's additions from the
    whole config `top`; problems are collected in `fields`."""
    # Problems found before the ranges are unrelated: they must not hide "no IP ranges".
    problems_before = len(fields.problems)
    configured: list[RangeSet] = []
    if fields.data.get("subnet") is not None:
        legacy = _range(fields)
        if legacy is not None:
            configured.append(RangeSet((legacy,)))
    configured.extend(parse_range_sets(fields, "ranges"))
    try:
        check_no_overlap(configured)
    except RangeError as exc:
        fields.problem("ranges", str(exc))
    runtime = top.obj("runtimeConfig")
    extra = _runtime_ranges(runtime, configured, strict=adding)
    # Ranges may come from the runtime alone; on a release a damaged ipRanges is no reason to
    # refuse (nothing is allocated from it).
    runtime_sent_ranges = runtime is not None and bool(runtime.data.get("ipRanges"))
    unrelated_problems = len(fields.problems) != problems_before
    nothing = not configured and not extra and not unrelated_problems
    if leased and (configured or extra):
        fields.problem("ranges", 'a "cluster" network allocates from the node\'s lease: drop them')
    elif nothing and not leased and (adding or not runtime_sent_ranges):
        fields.problem("ranges", NO_RANGES)
    requested = list(requested_ips(cni_args_ip, fields.problems))
    if adding:
        cni = top.obj("args")
        requested += _requested(cni.obj("cni") if cni is not None else None, "ips")
        requested += _requested(runtime, "ips")
    data_dir = fields.get("dataDir", str, DEFAULT_DATA_DIR) or DEFAULT_DATA_DIR
    if why := _data_dir_problem(data_dir):
        fields.problem("dataDir", f"{data_dir!r} {why}")
    resolv_conf = fields.get("resolvConf", str, "")
    if "\0" in resolv_conf:
        fields.problem("resolvConf", f"{resolv_conf!r} holds a NUL byte")
    routes = tuple(r for r in (_route(f) for f in fields.objects("routes")) if r is not None)
    return HostLocalConf(
        (*extra, *configured),
        routes,
        data_dir,
        resolv_conf,
        # The reference keys requests by address, so a repeated one is one request.
        tuple(dict.fromkeys(requested)),
    )


def _runtime_ranges(
    runtime: Fields | None, configured: Sequence[RangeSet], *, strict: bool
) -> list[RangeSet]:
    """runtimeConfig.ipRanges. Strict (ADD): every problem is the config's. Otherwise the
    ranges that parse and do not overlap the configured ones, or none."""
    if runtime is None:
        return []
    problems = runtime.problems if strict else []
    before = len(problems)
    extra = parse_range_sets(Fields(runtime.data, runtime.where, problems), "ipRanges")
    if not extra:
        return []
    try:
        check_no_overlap((*extra, *configured))
    except RangeError as exc:
        problems.append(f'"runtimeConfig.ipRanges": {exc}')
    return extra if len(problems) == before else []


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


def require_one_per_family(ipam: IpamConf | None, cni_version: str) -> None:
    """Results before 0.3.0 hold one "ip4" and one "ip6": an ADD cannot return more."""
    if ipam is None or ipam.host_local is None or versions.at_least(cni_version, LEGACY_BEFORE):
        return
    for family in (4, 6):
        if sum(1 for s in ipam.host_local.range_sets if s.version == family) > 1:
            raise IncompatibleVersion(
                f"CNI version {cni_version} does not support more than 1 address per family",
                f"use cniVersion {LEGACY_BEFORE} or later, or one range set per family",
            )


def parse_valid_attachments(top: Fields) -> frozenset[tuple[str, str]]:
    """The (containerID, ifname) pairs a GC request keeps; problems are collected in `top`.
    A missing list means none is valid: cnitool sends none after it has DELeted every
    attachment it knew."""
    key = VALID_ATTACHMENTS if VALID_ATTACHMENTS in top.data else OLD_VALID_ATTACHMENTS
    value = top.data.get(key)
    if value is None:
        return frozenset()
    if not isinstance(value, list):
        top.problem(key, 'must be a list: [{"containerID": "...", "ifname": "..."}, ...]')
        return frozenset()
    out: set[tuple[str, str]] = set()
    for index, entry in enumerate(value):
        cid = entry.get("containerID") if isinstance(entry, dict) else None
        ifname = entry.get("ifname") if isinstance(entry, dict) else None
        if not isinstance(cid, str) or not cid or not isinstance(ifname, str):
            top.problem(f"{key}[{index}]", 'expected {"containerID": ..., "ifname": ...}')
            continue
        out.add((cid.strip(), ifname))
    return frozenset(out)


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
