"""The CNI result model and its JSON in every spec version.

One internal shape (the 1.x one); conversion happens only when printing or reading a result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cni_bridge_py import cjson
from cni_bridge_py import version as versions
from cni_bridge_py.errors import DecodingFailure, IncompatibleVersion
from cni_bridge_py.netaddr import (
    IPAddress,
    IPInterface,
    IPNetwork,
    parse_address,
    parse_interface,
    parse_network,
)
from cni_bridge_py.record import field, record


@record(frozen=True)
class Interface:
    name: str
    mac: str = ""
    sandbox: str = ""
    mtu: int = 0


@record(frozen=True)
class IPConfig:
    address: IPInterface
    gateway: IPAddress | None = None
    # Index into Result.interfaces; None when the IPAM plugin does not know the interfaces.
    interface: int | None = None


@record(frozen=True)
class Route:
    dst: IPNetwork
    gw: IPAddress | None = None
    mtu: int = 0
    advmss: int = 0
    priority: int = 0
    table: int | None = None
    scope: int | None = None


@record(frozen=True)
class DNS:
    nameservers: tuple[str, ...] = ()
    domain: str = ""
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return not (self.nameservers or self.domain or self.search or self.options)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.nameservers:
            out["nameservers"] = list(self.nameservers)
        if self.domain:
            out["domain"] = self.domain
        if self.search:
            out["search"] = list(self.search)
        if self.options:
            out["options"] = list(self.options)
        return out


@record(frozen=True)
class Result:
    interfaces: tuple[Interface, ...] = ()
    ips: tuple[IPConfig, ...] = ()
    routes: tuple[Route, ...] = ()
    dns: DNS = field(default_factory=DNS)

    def to_dict(self, cni_version: str) -> dict[str, Any]:
        if not versions.at_least(cni_version, "0.3.0"):
            return _to_legacy_dict(self, cni_version)
        modern = versions.at_least(cni_version, "1.0.0")
        out: dict[str, Any] = {"cniVersion": cni_version}
        if self.interfaces:
            out["interfaces"] = [_interface_dict(i, cni_version) for i in self.interfaces]
        if self.ips:
            out["ips"] = [_ip_dict(ip, with_version=not modern) for ip in self.ips]
        if self.routes:
            out["routes"] = [_route_dict(r, cni_version) for r in self.routes]
        # The reference prints "dns": {} even when empty, in every version; so do we.
        out["dns"] = self.dns.to_dict()
        return out

    def to_json(self, cni_version: str) -> str:
        """Go's MarshalIndent layout: four spaces, no trailing newline."""
        return cjson.dumps(self.to_dict(cni_version), indent=4)


def _interface_dict(iface: Interface, cni_version: str) -> dict[str, Any]:
    out: dict[str, Any] = {"name": iface.name}
    if iface.mac:
        out["mac"] = iface.mac
    if iface.mtu and versions.at_least(cni_version, "1.1.0"):
        out["mtu"] = iface.mtu
    if iface.sandbox:
        out["sandbox"] = iface.sandbox
    return out


def _ip_dict(ip: IPConfig, *, with_version: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if with_version:
        out["version"] = str(ip.address.version)
    if ip.interface is not None:
        out["interface"] = ip.interface
    out["address"] = str(ip.address)
    if ip.gateway is not None:
        out["gateway"] = str(ip.gateway)
    return out


def _route_dict(route: Route, cni_version: str) -> dict[str, Any]:
    out: dict[str, Any] = {"dst": str(route.dst)}
    if route.gw is not None:
        out["gw"] = str(route.gw)
    if versions.at_least(cni_version, "1.1.0"):
        # Keys added by spec 1.1.0; older readers would reject or drop them.
        if route.mtu:
            out["mtu"] = route.mtu
        if route.advmss:
            out["advmss"] = route.advmss
        if route.priority:
            out["priority"] = route.priority
        if route.table is not None:
            out["table"] = route.table
        if route.scope is not None:
            out["scope"] = route.scope
    return out


def _to_legacy_dict(result: Result, cni_version: str) -> dict[str, Any]:
    """0.1.0/0.2.0: one ip4 and one ip6 block, routes split by family."""
    out: dict[str, Any] = {"cniVersion": cni_version}
    for family in (4, 6):
        ips = [ip for ip in result.ips if ip.address.version == family]
        if len(ips) > 1:
            raise IncompatibleVersion(
                f"CNI version {cni_version} does not support more than 1 address per family",
                "use cniVersion 0.3.0 or later for several addresses of one family",
            )
        if not ips:
            continue
        block: dict[str, Any] = {"ip": str(ips[0].address)}
        if ips[0].gateway is not None:
            block["gateway"] = str(ips[0].gateway)
        routes = [_route_dict(r, cni_version) for r in result.routes if r.dst.version == family]
        if routes:
            block["routes"] = routes
        out[f"ip{family}"] = block
    out["dns"] = result.dns.to_dict()
    return out


# ---- reading a result (prevResult, a delegated IPAM plugin's answer, the runner's cache) ----


def from_dict(data: Mapping[str, Any], *, default_version: str = "1.0.0") -> Result:
    """Read a result of any version into the internal shape; DecodingFailure names what is wrong."""
    try:
        cni_version = str(data.get("cniVersion") or default_version)
        if not versions.at_least(cni_version, "0.3.0"):
            return _from_legacy_dict(data)
        interfaces = tuple(
            Interface(
                name=str(i["name"]),
                mac=str(i.get("mac", "")),
                sandbox=str(i.get("sandbox", "")),
                mtu=int(i.get("mtu", 0)),
            )
            for i in _list(data, "interfaces")
        )
        ips = tuple(
            IPConfig(
                address=parse_interface(str(ip["address"])),
                gateway=parse_address(ip["gateway"]) if ip.get("gateway") else None,
                interface=int(ip["interface"]) if ip.get("interface") is not None else None,
            )
            for ip in _list(data, "ips")
        )
        routes = tuple(_route_from_dict(r) for r in _list(data, "routes"))
        return Result(interfaces, ips, routes, dns_from_dict(data.get("dns") or {}))
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        # AttributeError: an object where a list or string was expected (e.g. "dns": []).
        raise DecodingFailure("cannot read the CNI result", f"{type(exc).__name__}: {exc}") from exc


def _from_legacy_dict(data: Mapping[str, Any]) -> Result:
    ips: list[IPConfig] = []
    routes: list[Route] = []
    for key in ("ip4", "ip6"):
        block = data.get(key)
        if not block:
            continue
        gateway = parse_address(block["gateway"]) if block.get("gateway") else None
        ips.append(IPConfig(parse_interface(str(block["ip"])), gateway))
        routes.extend(_route_from_dict(r) for r in block.get("routes") or [])
    return Result((), tuple(ips), tuple(routes), dns_from_dict(data.get("dns") or {}))


def _list(data: Mapping[str, Any], key: str) -> Sequence[Mapping[str, Any]]:
    value = data.get(key) or []
    if not isinstance(value, list):
        raise TypeError(f'"{key}" must be a list')
    return value


def _route_from_dict(data: Mapping[str, Any]) -> Route:
    return Route(
        dst=parse_network(str(data["dst"]), strict=False),
        gw=parse_address(data["gw"]) if data.get("gw") else None,
        mtu=int(data.get("mtu", 0)),
        advmss=int(data.get("advmss", 0)),
        priority=int(data.get("priority", 0)),
        table=int(data["table"]) if data.get("table") is not None else None,
        scope=int(data["scope"]) if data.get("scope") is not None else None,
    )


def dns_from_dict(data: Mapping[str, Any]) -> DNS:
    return DNS(
        nameservers=tuple(str(s) for s in data.get("nameservers") or ()),
        domain=str(data.get("domain") or ""),
        search=tuple(str(s) for s in data.get("search") or ()),
        options=tuple(str(s) for s in data.get("options") or ()),
    )
