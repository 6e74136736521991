"""Links, addresses and routes over netlink: the only user of pyroute2 (see lean_pyroute2).

One socket for the plugin's namespace and one per container namespace per request, closed
when done. Kernel errors are translated into typed errors saying what we were doing
(`_netlink`, `_netns_file`).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from socket import AF_INET, AF_INET6
from typing import Any

from cni_bridge_py.errors import InvalidNetns
from cni_bridge_py.kernel.errors import KernelError
from cni_bridge_py.kernel.lean_pyroute2 import IPRoute, NetlinkDumpInterrupted, NetlinkError
from cni_bridge_py.netaddr import IPAddress, IPInterface, IPNetwork
from cni_bridge_py.ports import PortFlags
from cni_bridge_py.vlan import VlanOp

# Kernel ABI values, named as in the Linux uapi headers. Written out rather than imported from
# pyroute2's submodules: an import that ruff sorts above lean_pyroute2 would run pyroute2's
# expensive __init__, and these numbers never change.

# linux/netlink.h: the header flags of a request we build ourselves (ROUTE_PREPEND).
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4  # the kernel answers every request, so a failure is an error, not silence
NLM_F_CREATE = 0x400
# linux/rtnetlink.h
RTM_NEWROUTE = 24
# Where routes added without a table (ours) go: the only table `routes()` reads.
RT_TABLE_MAIN = 254
# The reference's routes (vishvananda/netlink's default); pyroute2 would send "static".
RTPROT_BOOT = 3
# linux/if.h: ifinfomsg.ifi_flags bit that `set_promisc` sets and `Link.promisc` reads.
IFF_PROMISC = 0x100
# linux/if_addr.h: an IPv6 address usable at once, without duplicate address detection.
IFA_F_NODAD = 0x2
# linux/if_bridge.h: bridge_vlan_info.flags of a port VLAN.
BRIDGE_VLAN_INFO_PVID = 0x2  # untagged frames coming in belong to this VLAN
BRIDGE_VLAN_INFO_UNTAGGED = 0x4  # frames of this VLAN leave the port untagged

# `ip route prepend`: NLM_F_CREATE without NLM_F_EXCL, as the reference sends routes
# (vishvananda/netlink's RouteAddEcmp). The same destination through another interface (a
# second attachment on the subnet) goes in front of the existing route (IPv6: beside it, a
# multipath sibling), so the newest attachment's default route is the one used, as with the
# reference; an identical route answers EEXIST.
ROUTE_PREPEND = (RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE)

# A dump racing with changes comes back marked NLM_F_DUMP_INTR and is asked again, up to
# this many times in all: a link list that keeps changing is a busy host, not an error yet.
DUMP_TRIES = 6
# txqlen of both veth ends, as the reference creates them (veths queue nothing anyway).
VETH_TXQLEN = 0
# pyroute2 takes open(2) flags for the namespace path and defaults to O_CREAT, which would
# create a namespace at a missing path; none: a missing namespace is the runtime's error.
NETNS_OPEN_EXISTING = 0


@contextmanager
def _netlink(doing: str, *, tolerate: Collection[int] = ()) -> Iterator[None]:
    """A NetlinkError in the block as KernelError(doing, errno), so the runtime reads what we
    were doing. An errno in `tolerate` is an answer the caller expects (EEXIST: already there,
    ENODEV: already gone): it ends the block quietly, and the code after the block says what
    it means. Other exceptions pass through unchanged."""
    try:
        yield
    except NetlinkError as exc:
        if exc.code not in tolerate:
            raise KernelError(doing, exc.code) from exc


@contextmanager
def _netns_file(path: str, action: str) -> Iterator[None]:
    """An OSError in the block, which opens the namespace file at `path`, means the runtime
    gave us a namespace we cannot use: InvalidNetns, "cannot <action> ..."."""
    try:
        yield
    except FileNotFoundError:
        raise InvalidNetns(f"network namespace {path!r} does not exist") from None
    except OSError as exc:
        raise InvalidNetns(f"cannot {action} network namespace {path!r}", str(exc)) from exc


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
        promisc=bool(int(msg["flags"]) & IFF_PROMISC),
        hairpin=hairpin,
        vlan_filtering=filtering,
        alias=str(_attr(msg, "IFLA_IFALIAS") or ""),
    )


def _dump(doing: str, call: Callable[..., Iterable[Any]], *args: Any, **kwargs: Any) -> list[Any]:
    with _netlink(doing):
        for _ in range(DUMP_TRIES):
            try:
                return list(call(*args, **kwargs))
            except NetlinkDumpInterrupted:
                continue  # the kernel asks us to try again
    # EINTR: what the reference's vishvananda/netlink answers for an interrupted dump.
    raise KernelError(doing, errno.EINTR, f"dump interrupted {DUMP_TRIES} times by changes")


class NetlinkSession:
    """Link, address and route operations on one namespace."""

    def __init__(self, ipr: Any, where: str) -> None:
        self.ipr = ipr
        self.where = where

    # ---- links ----
    def link(self, name: str) -> Link | None:
        return self._get(f"looking up {name} in {self.where}", ifname=name)

    def link_by_index(self, index: int) -> Link | None:
        return self._get(f"looking up link #{index} in {self.where}", index=index)

    def links(self) -> list[Link]:
        return [_to_link(m) for m in _dump(f"listing links in {self.where}", self.ipr.link, "dump")]

    def create_bridge(self, name: str, mtu: int, vlan_filtering: bool = False) -> bool:
        """True when we created it; False when it already existed (e.g. a concurrent ADD)."""
        spec: dict[str, Any] = {"ifname": name, "kind": "bridge"}
        if mtu:
            spec["mtu"] = mtu
        if vlan_filtering:
            spec["br_vlan_filtering"] = 1  # IFLA_BR_VLAN_FILTERING is a u8 boolean
        with _netlink(f"creating bridge {name}", tolerate=(errno.EEXIST,)):
            self.ipr.link("add", **spec)
            return True
        return False  # EEXIST: a concurrent ADD created it first

    def create_veth(
        self, host_name: str, peer_name: str, peer_netns: str, mtu: int, peer_mac: str
    ) -> None:
        """The host end here, the peer created directly inside `peer_netns` (no rename dance)."""
        peer: dict[str, Any] = {"ifname": peer_name, "txqlen": VETH_TXQLEN}
        spec: dict[str, Any] = {
            "ifname": host_name,
            "kind": "veth",
            "peer": peer,
            "txqlen": VETH_TXQLEN,
        }
        if mtu:
            spec["mtu"] = mtu
            peer["mtu"] = mtu
        if peer_mac:
            peer["address"] = peer_mac
        with _netns_file(peer_netns, "open"):
            fd = os.open(peer_netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            peer["net_ns_fd"] = fd
            with _netlink(f"creating veth {host_name} with peer {peer_name}"):
                self.ipr.link("add", **spec)
        finally:
            os.close(fd)

    def set_up(self, index: int, what: str) -> None:
        self._set(what, index=index, state="up")

    def set_promisc(self, index: int, what: str) -> None:
        self._set(what, index=index, flags=IFF_PROMISC, mask=IFF_PROMISC)

    def set_mac(self, index: int, mac: str, what: str) -> None:
        self._set(what, index=index, address=mac)

    def attach_port(self, index: int, master: int, flags: PortFlags, alias: str, what: str) -> None:
        """Enslave, label and bring up a new port in one message (each netlink round trip
        through pyroute2 costs ~2 ms); port flags only when asked for, since a new port
        starts with hairpin and isolation off."""
        self._set(what, index=index, master=master, ifalias=alias, state="up")
        if not (flags.hairpin or flags.isolated):
            return
        # IFLA_BRPORT_MODE (hairpin) and IFLA_BRPORT_ISOLATED are u8 booleans.
        settings: dict[str, Any] = {"mode": int(flags.hairpin)}
        if flags.isolated:
            settings["isolated"] = 1
        with _netlink(f"setting port flags on {what}"):
            self.ipr.brport("set", index=index, **settings)

    def set_port_vlans(self, index: int, ops: list[VlanOp], what: str) -> None:
        for op in ops:
            flags = (BRIDGE_VLAN_INFO_PVID if op.pvid else 0) | (
                BRIDGE_VLAN_INFO_UNTAGGED if op.untagged else 0
            )
            with _netlink(f"setting VLAN {op.vid} on {what}"):
                self.ipr.vlan_filter(
                    "add" if op.add else "del",
                    index=index,
                    vlan_info={"vid": op.vid, "flags": flags},
                )

    def delete_link(self, index: int, what: str) -> bool:
        """False when it was already gone."""
        with _netlink(f"deleting {what}", tolerate=(errno.ENODEV,)):
            self.ipr.link("del", index=index)
            return True
        return False  # ENODEV: already gone

    def _get(self, doing: str, **key: Any) -> Link | None:
        with _netlink(doing, tolerate=(errno.ENODEV,)):
            return _to_link(self.ipr.link("get", **key)[0])
        return None  # ENODEV: no such link

    def _set(self, what: str, **kwargs: Any) -> None:
        with _netlink(f"configuring {what}"):
            self.ipr.link("set", **kwargs)

    # ---- addresses ----
    def addresses(self, index: int) -> list[IPInterface]:
        doing = f"listing addresses of link #{index} in {self.where}"
        return [
            ipaddress.ip_interface(f"{_attr(msg, 'IFA_ADDRESS')}/{msg['prefixlen']}")
            for msg in _dump(doing, self.ipr.addr, "dump", index=index)
        ]

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
        with _netlink(f"adding {iface} to {what}", tolerate=(errno.EEXIST,)):
            self.ipr.addr("add", **kwargs)
            return True
        return False  # EEXIST: already there

    def delete_address(self, index: int, iface: IPInterface, what: str) -> None:
        # EADDRNOTAVAIL: the address is gone; ENODEV: its link is. Either way, nothing to do.
        gone = (errno.EADDRNOTAVAIL, errno.ENODEV)
        with _netlink(f"removing {iface} from {what}", tolerate=gone):
            self.ipr.addr(
                "del", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen
            )

    # ---- routes ----
    def add_route(self, dst: IPNetwork, gateway: IPAddress | None, index: int, what: str) -> None:
        kwargs: dict[str, Any] = {"dst": str(dst), "oif": index, "proto": RTPROT_BOOT}
        if gateway is not None:
            kwargs["gateway"] = str(gateway)
        # EEXIST: an identical route is there already, which is what we wanted.
        doing = f"adding route {dst} via {gateway} on {what}"
        with _netlink(doing, tolerate=(errno.EEXIST,)):
            self.ipr.route(ROUTE_PREPEND, type="unicast", **kwargs)

    def routes(self, index: int) -> list[tuple[IPNetwork, IPAddress | None]]:
        """(dst, gateway) of the main table's routes through link `index`."""
        out: list[tuple[IPNetwork, IPAddress | None]] = []
        doing = f"listing routes in {self.where}"
        for family in (AF_INET, AF_INET6):
            for msg in _dump(doing, self.ipr.route, "dump", family=family, table=RT_TABLE_MAIN):
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
    with _netns_file(path, "enter"):
        ipr = IPRoute(netns=path, flags=NETNS_OPEN_EXISTING)
    with ipr:
        yield NetlinkSession(ipr, f"namespace {path}")
