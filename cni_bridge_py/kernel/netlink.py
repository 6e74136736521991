"""Links, addresses and routes over netlink: the only user of pyroute2 (see lean_pyroute2).

One socket for the plugin's namespace and one per container namespace per request, closed
when done. Kernel errors are translated into typed errors saying what we were doing.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cni_bridge_py.errors import InvalidNetns
from cni_bridge_py.kernel.errors import KernelError
from cni_bridge_py.kernel.lean_pyroute2 import IPRoute, NetlinkDumpInterrupted, NetlinkError
from cni_bridge_py.netaddr import IPAddress, IPInterface, IPNetwork
from cni_bridge_py.ports import PortFlags
from cni_bridge_py.vlan import VlanOp

AF_INET, AF_INET6 = 2, 10
RT_TABLE_MAIN = 254
RT_SCOPE_UNIVERSE = 0
# The reference's routes (vishvananda/netlink's default); pyroute2 would send "static".
RTPROT_BOOT = 3
BRPORT_MODE_HAIRPIN = 1
BRIDGE_VLAN_INFO_PVID = 0x2
BRIDGE_VLAN_INFO_UNTAGGED = 0x4
IFA_F_NODAD = 0x2
# `ip route prepend`: NLM_F_CREATE without NLM_F_EXCL, as the reference sends routes
# (vishvananda/netlink's RouteAddEcmp). The same destination through another interface (a
# second attachment on the subnet) goes in front of the existing route (IPv6: beside it, a
# multipath sibling), so the newest attachment's default route is the one used, as with the
# reference; an identical route answers EEXIST.
RTM_NEWROUTE = 24
NLM_F_REQUEST, NLM_F_ACK, NLM_F_CREATE = 0x1, 0x4, 0x400
ROUTE_PREPEND = (RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE)


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    kind: str
    mac: str
    master: int | None
    # For a veth: the peer's ifindex (in the peer's namespace).
    peer_index: int | None
    operstate: str
    mtu: int
    promisc: bool
    hairpin: bool
    vlan_filtering: bool
    alias: str


def _attr(msg: Any, name: str) -> Any:
    return msg.get_attr(name)


def _to_link(msg: Any) -> Link:
    info = _attr(msg, "IFLA_LINKINFO")
    kind = (info.get_attr("IFLA_INFO_KIND") if info is not None else None) or ""
    slave = info.get_attr("IFLA_INFO_SLAVE_DATA") if info is not None else None
    hairpin = bool(slave.get_attr("IFLA_BRPORT_MODE")) if slave is not None else False
    data = info.get_attr("IFLA_INFO_DATA") if info is not None else None
    filtering = (
        bool(data.get_attr("IFLA_BR_VLAN_FILTERING")) if kind == "bridge" and data else False
    )
    return Link(
        index=int(msg["index"]),
        name=str(_attr(msg, "IFLA_IFNAME")),
        kind=str(kind),
        mac=str(_attr(msg, "IFLA_ADDRESS") or ""),
        master=_attr(msg, "IFLA_MASTER"),
        peer_index=_attr(msg, "IFLA_LINK"),
        operstate=str(_attr(msg, "IFLA_OPERSTATE") or ""),
        mtu=int(_attr(msg, "IFLA_MTU") or 0),
        promisc=bool(int(msg["flags"]) & 0x100),
        hairpin=hairpin,
        vlan_filtering=filtering,
        alias=str(_attr(msg, "IFLA_IFALIAS") or ""),
    )


def _retry_dump(call: Any, *args: Any, **kwargs: Any) -> list[Any]:
    # A dump racing with changes is interrupted; the kernel asks us to try again.
    for _ in range(5):
        try:
            return list(call(*args, **kwargs))
        except NetlinkDumpInterrupted:
            continue
    return list(call(*args, **kwargs))


class NetlinkSession:
    """Link, address and route operations on one namespace."""

    def __init__(self, ipr: Any, where: str) -> None:
        self.ipr = ipr
        self.where = where

    # ---- links ----
    def link(self, name: str) -> Link | None:
        try:
            msgs = self.ipr.link("get", ifname=name)
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return None
            raise KernelError(f"looking up {name} in {self.where}", exc.code) from exc
        return _to_link(msgs[0])

    def link_by_index(self, index: int) -> Link | None:
        try:
            return _to_link(self.ipr.link("get", index=index)[0])
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return None
            raise KernelError(f"looking up link #{index} in {self.where}", exc.code) from exc

    def links(self) -> list[Link]:
        return [_to_link(m) for m in _retry_dump(self.ipr.link, "dump")]

    def create_bridge(self, name: str, mtu: int, vlan_filtering: bool = False) -> bool:
        """True when we created it; False when it already existed (e.g. a concurrent ADD)."""
        spec: dict[str, Any] = {"ifname": name, "kind": "bridge"}
        if mtu:
            spec["mtu"] = mtu
        if vlan_filtering:
            spec["br_vlan_filtering"] = 1
        try:
            self.ipr.link("add", **spec)
        except NetlinkError as exc:
            if exc.code == errno.EEXIST:
                return False
            raise KernelError(f"creating bridge {name}", exc.code) from exc
        return True

    def create_veth(
        self, host_name: str, peer_name: str, peer_netns: str, mtu: int, peer_mac: str
    ) -> None:
        """The host end here, the peer created directly inside `peer_netns` (no rename dance)."""
        # txqlen 0 on both ends, as the reference creates them (veths queue nothing anyway).
        peer: dict[str, Any] = {"ifname": peer_name, "txqlen": 0}
        spec: dict[str, Any] = {"ifname": host_name, "kind": "veth", "peer": peer, "txqlen": 0}
        if mtu:
            spec["mtu"] = mtu
            peer["mtu"] = mtu
        if peer_mac:
            peer["address"] = peer_mac
        try:
            fd = os.open(peer_netns, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise InvalidNetns(f"cannot open network namespace {peer_netns!r}", str(exc)) from exc
        try:
            peer["net_ns_fd"] = fd
            self.ipr.link("add", **spec)
        except NetlinkError as exc:
            raise KernelError(f"creating veth {host_name} with peer {peer_name}", exc.code) from exc
        finally:
            os.close(fd)

    def set_up(self, index: int, what: str) -> None:
        self._set(what, index=index, state="up")

    def set_promisc(self, index: int, what: str) -> None:
        self._set(what, index=index, flags=0x100, mask=0x100)

    def set_mac(self, index: int, mac: str, what: str) -> None:
        self._set(what, index=index, address=mac)

    def attach_port(self, index: int, master: int, flags: PortFlags, alias: str, what: str) -> None:
        """Enslave, label and bring up a new port in one message (each netlink round trip
        through pyroute2 costs ~2 ms); port flags only when asked for, since a new port
        starts with hairpin and isolation off."""
        self._set(what, index=index, master=master, ifalias=alias, state="up")
        if not (flags.hairpin or flags.isolated):
            return
        settings: dict[str, Any] = {"mode": BRPORT_MODE_HAIRPIN if flags.hairpin else 0}
        if flags.isolated:
            settings["isolated"] = 1
        try:
            self.ipr.brport("set", index=index, **settings)
        except NetlinkError as exc:
            raise KernelError(f"setting port flags on {what}", exc.code) from exc

    def set_port_vlans(self, index: int, ops: list[VlanOp], what: str) -> None:
        for op in ops:
            flags = (BRIDGE_VLAN_INFO_PVID if op.pvid else 0) | (
                BRIDGE_VLAN_INFO_UNTAGGED if op.untagged else 0
            )
            try:
                self.ipr.vlan_filter(
                    "add" if op.add else "del",
                    index=index,
                    vlan_info={"vid": op.vid, "flags": flags},
                )
            except NetlinkError as exc:
                raise KernelError(f"setting VLAN {op.vid} on {what}", exc.code) from exc

    def delete_link(self, index: int, what: str) -> bool:
        """False when it was already gone."""
        try:
            self.ipr.link("del", index=index)
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return False
            raise KernelError(f"deleting {what}", exc.code) from exc
        return True

    def _set(self, what: str, **kwargs: Any) -> None:
        try:
            self.ipr.link("set", **kwargs)
        except NetlinkError as exc:
            raise KernelError(f"configuring {what}", exc.code) from exc

    # ---- addresses ----
    def addresses(self, index: int) -> list[IPInterface]:
        out: list[IPInterface] = []
        for msg in _retry_dump(self.ipr.addr, "dump", index=index):
            addr = _attr(msg, "IFA_ADDRESS")
            out.append(ipaddress.ip_interface(f"{addr}/{msg['prefixlen']}"))
        return out

    def add_address(self, index: int, iface: IPInterface, what: str, nodad: bool = False) -> bool:
        """False when the address was already there (a concurrent ADD put the gateway first).
        `nodad`: an IPv6 address usable at once, without duplicate address detection."""
        kwargs: dict[str, Any] = {
            "index": index,
            "address": str(iface.ip),
            "prefixlen": iface.network.prefixlen,
        }
        if iface.version == 4:
            kwargs["broadcast"] = str(iface.network.broadcast_address)
        elif nodad:
            kwargs["flags"] = IFA_F_NODAD
        try:
            self.ipr.addr("add", **kwargs)
        except NetlinkError as exc:
            if exc.code == errno.EEXIST:
                return False
            raise KernelError(f"adding {iface} to {what}", exc.code) from exc
        return True

    def delete_address(self, index: int, iface: IPInterface, what: str) -> None:
        try:
            self.ipr.addr(
                "del", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen
            )
        except NetlinkError as exc:
            if exc.code not in (errno.EADDRNOTAVAIL, errno.ENODEV):
                raise KernelError(f"removing {iface} from {what}", exc.code) from exc

    # ---- routes ----
    def add_route(self, dst: IPNetwork, gateway: IPAddress | None, index: int, what: str) -> None:
        kwargs: dict[str, Any] = {"dst": str(dst), "oif": index, "proto": RTPROT_BOOT}
        if gateway is not None:
            kwargs["gateway"] = str(gateway)
        try:
            self.ipr.route(ROUTE_PREPEND, type="unicast", **kwargs)
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:  # an identical route is there already: fine
                raise KernelError(f"adding route {dst} via {gateway} on {what}", exc.code) from exc

    def routes(self, index: int) -> list[tuple[IPNetwork, IPAddress | None]]:
        """(dst, gateway) of the main table's routes through link `index`."""
        out: list[tuple[IPNetwork, IPAddress | None]] = []
        for family in (AF_INET, AF_INET6):
            for msg in _retry_dump(self.ipr.route, "dump", family=family, table=RT_TABLE_MAIN):
                if _attr(msg, "RTA_OIF") != index:
                    continue
                dst = _attr(msg, "RTA_DST")
                default = "0.0.0.0" if family == AF_INET else "::"
                network = ipaddress.ip_network(f"{dst or default}/{msg['dst_len']}", strict=False)
                gw = _attr(msg, "RTA_GATEWAY")
                out.append((network, ipaddress.ip_address(gw) if gw else None))
        return out

    def wait_operstate_up(self, index: int, what: str, delays_ms: tuple[int, ...]) -> str:
        """A new bridge port starts in the blocking state briefly; poll until it forwards."""
        state = ""
        for delay in delays_ms:
            time.sleep(delay / 1000)
            link = self.link_by_index(index)
            state = link.operstate if link else "GONE"
            if state == "UP":
                return state
        return state


@contextmanager
def host_session() -> Iterator[NetlinkSession]:
    with IPRoute() as ipr:
        yield NetlinkSession(ipr, "the host namespace")


@contextmanager
def netns_session(path: str) -> Iterator[NetlinkSession]:
    """flags=0: pyroute2 would otherwise create a namespace at a missing path."""
    try:
        ipr = IPRoute(netns=path, flags=0)
    except FileNotFoundError:
        raise InvalidNetns(f"network namespace {path!r} does not exist") from None
    except OSError as exc:
        raise InvalidNetns(f"cannot enter network namespace {path!r}", str(exc)) from exc
    with ipr:
        yield NetlinkSession(ipr, f"namespace {path}")
