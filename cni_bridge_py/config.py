"""Network config JSON -> a frozen, typed NetConf.

Parse, then validate: every field problem is collected and reported in one InvalidConfig
(code 7) that names the fields, so a user fixes a config in one round. Unknown keys are
ignored, as runtimes add their own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cni_bridge_py import result as results
from cni_bridge_py.errors import CniError, InvalidConfig
from cni_bridge_py.ipam.disk import DEFAULT_DATA_DIR
from cni_bridge_py.ipam.ranges import Range, RangeError, RangeSet, check_no_overlap
from cni_bridge_py.netaddr import IPAddress, parse_address, parse_network
from cni_bridge_py.result import DNS, Result, Route
from cni_bridge_py.validate import ifname_problem

HOST_LOCAL = "host-local"
DEFAULT_BRIDGE = "cni0"
T = TypeVar("T")


@dataclass(frozen=True)
class HostLocalConf:
    range_sets: tuple[RangeSet, ...]
    routes: tuple[Route, ...] = ()
    data_dir: str = DEFAULT_DATA_DIR


@dataclass(frozen=True)
class IpamConf:
    type: str
    host_local: HostLocalConf | None = None


@dataclass(frozen=True)
class NetConf:
    cni_version: str
    name: str
    type: str = ""
    bridge: str = DEFAULT_BRIDGE
    is_gateway: bool = False
    is_default_gateway: bool = False
    force_address: bool = False
    ip_masq: bool = False
    mtu: int = 0
    hairpin_mode: bool = False
    promisc_mode: bool = False
    dns: DNS = field(default_factory=DNS)
    # None: L2 mode, the container interface gets no address.
    ipam: IpamConf | None = None
    prev_result: Result | None = None
    runtime_mac: str = ""
    requested_ips: tuple[IPAddress, ...] = ()


class _Fields:
    """Typed reads from one JSON object; problems are collected, not raised."""

    def __init__(self, data: Mapping[str, Any], where: str, problems: list[str]) -> None:
        self.data = data
        self.where = where
        self.problems = problems

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def problem(self, key: str, text: str) -> None:
        self.problems.append(f'"{self.path(key)}": {text}')

    def get(self, key: str, kind: type[T], default: T) -> T:
        value = self.data.get(key)
        if value is None:
            return default
        # bool is a subclass of int in Python, but not in JSON.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.problem(key, f"expected {_kind_name(kind)}, got {_json_kind(value)} {value!r}")
            return default
        return value

    def obj(self, key: str) -> _Fields | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problem(key, f"expected an object, got {_json_kind(value)}")
            return None
        return _Fields(value, self.path(key), self.problems)

    def objects(self, key: str) -> list[_Fields]:
        values = self.get(key, list, [])
        out = []
        for index, value in enumerate(values):
            if isinstance(value, dict):
                out.append(_Fields(value, f"{self.path(key)}[{index}]", self.problems))
            else:
                self.problem(f"{key}[{index}]", f"expected an object, got {_json_kind(value)}")
        return out

    def strings(self, key: str) -> tuple[str, ...]:
        values = self.get(key, list, [])
        if not all(isinstance(v, str) for v in values):
            self.problem(key, "expected a list of strings")
            return ()
        return tuple(values)

    def address(self, key: str) -> IPAddress | None:
        text = self.get(key, str, "")
        if not text:
            return None
        try:
            return parse_address(text)
        except ValueError:
            self.problem(key, f"{text!r} is not an IP address")
            return None


def _kind_name(kind: type) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        str: "a string",
        list: "a list",
        dict: "an object",
    }[kind]


def _json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return _kind_name(type(value)) if type(value) in (str, list, dict) else "null"


def parse(
    data: Mapping[str, Any], cni_version: str, cni_args: Mapping[str, str] | None = None
) -> NetConf:
    """Build a NetConf from an already-decoded JSON object whose version was checked.

    `cni_args` are the parsed CNI_ARGS (IP= and MAC= requests)."""
    problems: list[str] = []
    top = _Fields(data, "", problems)
    args = cni_args or {}
    bridge = top.get("bridge", str, DEFAULT_BRIDGE) or DEFAULT_BRIDGE
    if (why := ifname_problem(bridge)) is not None:
        top.problem("bridge", f"{bridge!r} is not a valid interface name: {why}")
    mtu = top.get("mtu", int, 0)
    if mtu and not 68 <= mtu <= 65535:
        top.problem("mtu", f"{mtu} is outside 68..65535")
    is_default_gateway = top.get("isDefaultGateway", bool, False)
    hairpin = top.get("hairpinMode", bool, False)
    promisc = top.get("promiscMode", bool, False)
    if hairpin and promisc:
        problems.append('"hairpinMode" and "promiscMode" cannot both be true')
    dns_fields = top.obj("dns")
    conf = NetConf(
        cni_version=cni_version,
        name=top.get("name", str, ""),
        type=top.get("type", str, ""),
        bridge=bridge,
        is_gateway=top.get("isGateway", bool, False) or is_default_gateway,
        is_default_gateway=is_default_gateway,
        force_address=top.get("forceAddress", bool, False),
        ip_masq=top.get("ipMasq", bool, False),
        mtu=mtu,
        hairpin_mode=hairpin,
        promisc_mode=promisc,
        dns=_dns(dns_fields) if dns_fields else DNS(),
        ipam=_ipam(top.obj("ipam")),
        prev_result=_prev_result(data.get("prevResult"), cni_version, problems),
        runtime_mac=_mac(args.get("MAC", ""), problems),
        requested_ips=_requested_ips(args.get("IP", ""), problems),
    )
    if problems:
        raise InvalidConfig(
            f"invalid network config: {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
            # The full list only when the message could not hold it.
            "; ".join(problems) if len(problems) > 1 else "",
        )
    return conf


def _mac(text: str, problems: list[str]) -> str:
    if not text:
        return ""
    parts = text.split(":")
    if len(parts) != 6 or not all(
        len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts
    ):
        problems.append(f"CNI_ARGS MAC={text!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
        return ""
    return text.lower()


def _requested_ips(text: str, problems: list[str]) -> tuple[IPAddress, ...]:
    """CNI_ARGS IP=a[,b...], each optionally with a prefix length, as host-local reads it."""
    out: list[IPAddress] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            out.append(parse_address(item.split("/", 1)[0]))
        except ValueError:
            problems.append(f"CNI_ARGS IP={item!r} is not an IP address")
    return tuple(out)


def _dns(fields: _Fields) -> DNS:
    return DNS(
        nameservers=fields.strings("nameservers"),
        domain=fields.get("domain", str, ""),
        search=fields.strings("search"),
        options=fields.strings("options"),
    )


def _prev_result(value: object, cni_version: str, problems: list[str]) -> Result | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.append('"prevResult": expected an object')
        return None
    try:
        # A prevResult without cniVersion has the config's version (libcni's ParsePrevResult).
        return results.from_dict(value, default_version=cni_version)
    except CniError as exc:
        problems.append(f'"prevResult": {exc}')
        return None


def _ipam(fields: _Fields | None) -> IpamConf | None:
    if fields is None or not fields.data:
        return None
    ipam_type = fields.get("type", str, "")
    if not ipam_type:
        fields.problem(
            "type", 'missing: name an IPAM plugin (e.g. "host-local"), or drop "ipam" for L2 mode'
        )
        return None
    if ipam_type != HOST_LOCAL:
        fields.problem("type", f'{ipam_type!r} is not supported yet; use "host-local"')
        return None
    return IpamConf(ipam_type, _host_local(fields))


def _host_local(fields: _Fields) -> HostLocalConf | None:
    range_sets: list[RangeSet] = []
    # Problems found before the ranges are unrelated: they must not hide "no IP ranges".
    problems_before = len(fields.problems)
    if fields.data.get("subnet") is not None:
        legacy = _range(fields)
        if legacy is not None:
            range_sets.append(RangeSet((legacy,)))
    for index, raw_set in enumerate(fields.get("ranges", list, [])):
        key = f"ranges[{index}]"
        if not isinstance(raw_set, list) or not raw_set:
            fields.problem(key, "expected a non-empty list of ranges")
            continue
        members = []
        for sub_index, raw in enumerate(raw_set):
            if not isinstance(raw, dict):
                fields.problem(f"{key}[{sub_index}]", "expected an object")
                continue
            built = _range(_Fields(raw, f"{fields.path(key)}[{sub_index}]", fields.problems))
            if built is not None:
                members.append(built)
        if len(members) == len(raw_set):
            try:
                range_sets.append(RangeSet.build(members))
            except RangeError as exc:
                fields.problem(key, str(exc))
    if not range_sets and len(fields.problems) == problems_before:
        fields.problem("ranges", 'no IP ranges specified: give "ranges" or "subnet"')
    try:
        check_no_overlap(range_sets)
    except RangeError as exc:
        fields.problem("ranges", str(exc))
    data_dir = fields.get("dataDir", str, DEFAULT_DATA_DIR) or DEFAULT_DATA_DIR
    if not os.path.isabs(data_dir):
        fields.problem("dataDir", f"{data_dir!r} must be an absolute path")
    routes = tuple(r for r in (_route(f) for f in fields.objects("routes")) if r is not None)
    return HostLocalConf(tuple(range_sets), routes, data_dir)


def _range(fields: _Fields) -> Range | None:
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


def _route(fields: _Fields) -> Route | None:
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
