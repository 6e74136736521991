"""The join (pure): store, kernel, NAT and cache records of one network -> one row per
attachment, each with what is missing or extra, and the network's summary.

An attachment is (container ID, ifname). Each source names it its own way: a reservation and
a cache entry say both; our host veth's alias says both (plan.port_alias); the reference's
veth says neither, so it is matched by its container side's addresses (against reservations
and NAT sources) or by the host interface a cached result names; an iptables chain names the
container only (it serves all its interfaces), nftables rules name both.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from cni_bridge_py import plan
from cni_bridge_py.inspect.model import (
    UNKNOWN,
    CacheEntry,
    HostVeth,
    NatState,
    NetworkSummary,
    Observed,
    RangeUse,
    Reservation,
    Row,
)
from cni_bridge_py.ipam.ranges import Range, RangeSet

Key = tuple[str, str]

NO_VETH = "no veth"
NO_RESERVATION_FOR_VETH = "veth without reservation"
NO_RESERVATION_FOR_NAT = "NAT chain without reservation"
NO_RESERVATION_FOR_CACHE = "cache without reservation"
ALONE = "reservation without container"
NO_NAT = "no NAT chain"
NOT_ON_BRIDGE = "veth not on bridge"
ADDRESS_MISSING = "address not in container"
TWO_VETHS = "second veth for the attachment"
NO_BRIDGE = "no bridge"


@dataclass
class _Parts:
    reservations: list[Reservation] = field(default_factory=list)
    veth: HostVeth | None = None
    nat: list[NatState] = field(default_factory=list)
    cache: CacheEntry | None = None
    extra: list[str] = field(default_factory=list)


def summarize(observed: Observed) -> NetworkSummary:
    spec = observed.spec
    rows = tuple(_row(observed, key, parts) for key, parts in _join(observed).items())
    problems = [f"cannot read {what}" for what in observed.unreadable]
    if observed.bridge is None and rows:
        problems.append(NO_BRIDGE)
    bridge = observed.bridge
    return NetworkSummary(
        name=spec.name,
        bridge=spec.bridge,
        bridge_present=bridge is not None,
        gateways=bridge.addresses if bridge is not None else (),
        ports=tuple(sorted(v.name for v in observed.veths if v.master == spec.bridge)),
        masquerade=spec.masq_backend if spec.ip_masq else "off",
        range_use=tuple(range_use(spec.range_sets, (r.address for r in observed.reservations))),
        rows=tuple(sorted(rows, key=lambda r: (r.container_id, r.ifname, r.host_veth))),
        problems=tuple(problems),
    )


def range_use(sets: Iterable[RangeSet], reserved: Iterable[str]) -> list[RangeUse]:
    """Per range set: reserved addresses inside it, and how many host-local could hand out
    (each range from start to end, its gateway excluded)."""
    addresses = [ipaddress.ip_address(a) for a in reserved]
    out = []
    for rs in sets:
        size = sum(
            int(r.range_end) - int(r.range_start) + 1 - _gateway_inside(r) for r in rs.ranges
        )
        used = sum(1 for a in addresses if a.version == rs.version and rs.range_for(a))
        out.append(RangeUse(str(rs), used, size))
    return out


def _gateway_inside(r: Range) -> int:
    """1 when the range's gateway is one of its addresses (host-local never hands it out)."""
    return int(int(r.range_start) <= int(r.gateway) <= int(r.range_end))


def _join(observed: Observed) -> dict[Key, _Parts]:
    spec = observed.spec
    parts: dict[Key, _Parts] = {}

    def at(key: Key) -> _Parts:
        return parts.setdefault(key, _Parts())

    legacy = [r for r in observed.reservations if r.ifname is None]
    for r in observed.reservations:
        if r.ifname is not None:
            at((r.container_id, r.ifname)).reservations.append(r)
    for entry in observed.cache:
        at((entry.container_id, entry.ifname)).cache = entry
    nat_by_source = {s: n for n in observed.nat for s in n.sources}
    unowned: list[HostVeth] = []
    for veth in observed.veths:
        owner = plan.parse_port_alias(veth.alias)
        if owner is None:
            unowned.append(veth)
        elif owner[0] == spec.name:
            _put_veth(at((owner[1], owner[2])), veth)
    for r in legacy:  # the container's (only) attachment, whichever interface it is
        keys = [k for k in parts if k[0] == r.container_id] or [(r.container_id, "")]
        at(keys[0]).reservations.append(r)
    by_address = {_bare(r.address): k for k, p in parts.items() for r in p.reservations}
    by_host_ifname = {p.cache.host_ifname: k for k, p in parts.items() if p.cache}
    for veth in unowned:
        key = _key_of_unowned(veth, by_address, by_host_ifname, nat_by_source)
        _put_veth(at(key), veth)

    for nat in observed.nat:
        if nat.ifname is not None:
            at((nat.container_id, nat.ifname)).nat.append(nat)
            continue
        keys = [k for k in parts if k[0] == nat.container_id] or [(nat.container_id, "")]
        for key in keys:
            at(key).nat.append(nat)
    return parts


def _put_veth(parts: _Parts, veth: HostVeth) -> None:
    if parts.veth is None:
        parts.veth = veth
    else:
        parts.extra.append(f"{TWO_VETHS} {veth.name}")


def _key_of_unowned(
    veth: HostVeth,
    by_address: dict[str, Key],
    by_host_ifname: dict[str, Key],
    nat_by_source: dict[str, NatState],
) -> Key:
    """A veth without our alias (the reference's): whose is it? Its container's addresses say,
    else the cached result naming it; else it is a row of its own, keyed by its name."""
    seen = [_bare(a) for a in veth.peer.addresses] if veth.peer else []
    for address in seen:
        if address in by_address:
            return by_address[address]
    if veth.name in by_host_ifname:
        return by_host_ifname[veth.name]
    ifname = veth.peer.ifname if veth.peer else ""
    for address in seen:
        if address in nat_by_source:
            return (nat_by_source[address].container_id, ifname)
    return ("", f"veth:{veth.name}")


def _bare(address: str) -> str:
    return address.split("/", 1)[0]


def _row(observed: Observed, key: Key, parts: _Parts) -> Row:
    spec = observed.spec
    veth, cache = parts.veth, parts.cache
    peer = veth.peer if veth else None
    reserved = tuple(_with_prefix(r.address, spec.range_sets) for r in parts.reservations)
    ifname = key[1] if not key[1].startswith("veth:") else (peer.ifname if peer else "")
    if cache is not None and cache.netns:
        netns = cache.netns
    elif peer is not None:
        netns = peer.netns
    else:
        netns = UNKNOWN if veth is not None else ""
    addresses = reserved or (peer.addresses if peer else ()) or (cache.addresses if cache else ())
    return Row(
        network=spec.name,
        container_id=key[0],
        ifname=ifname,
        netns=netns,
        addresses=addresses,
        host_veth=veth.name if veth else "",
        mac=peer.mac if peer else "",
        nat=", ".join(dict.fromkeys(n.name for n in parts.nat)),
        cache=cache.path if cache else "",
        problems=tuple(_problems(observed, parts)),
    )


def _problems(observed: Observed, parts: _Parts) -> list[str]:
    spec = observed.spec
    veth = parts.veth
    reserved, nat, cache = bool(parts.reservations), bool(parts.nat), parts.cache is not None
    out: list[str] = []
    if reserved and veth is None:
        out.append(NO_VETH if (nat or cache) else ALONE)
    if veth is not None and not reserved:
        out.append(NO_RESERVATION_FOR_VETH)
    if nat and not reserved:
        out.append(NO_RESERVATION_FOR_NAT)
    if cache and not reserved:
        out.append(NO_RESERVATION_FOR_CACHE)
    if reserved and veth is not None and spec.ip_masq and not nat:
        out.append(NO_NAT)
    if veth is not None and veth.master != spec.bridge:
        out.append(NOT_ON_BRIDGE)
    if veth is not None and veth.peer is not None and reserved:
        inside = {_bare(a) for a in veth.peer.addresses}
        if any(_bare(r.address) not in inside for r in parts.reservations):
            out.append(ADDRESS_MISSING)
    return out + parts.extra


def _with_prefix(address: str, sets: Iterable[RangeSet]) -> str:
    """A reservation is a bare address: shown with its range's prefix, as the container has it."""
    ip = ipaddress.ip_address(address)
    for rs in sets:
        found = rs.range_for(ip) if rs.version == ip.version else None
        if found is not None:
            return f"{ip}/{found.subnet.prefixlen}"
    return address
