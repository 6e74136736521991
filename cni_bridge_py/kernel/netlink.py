"""Links, addresses and routes over netlink (rtnl.py: pyroute2's messages on our socket).

One socket for the plugin's namespace and one per container namespace per request, closed
when done. Kernel errors are translated into typed errors saying what we were doing
(`_netlink`, `_netns_file`).
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from socket import AF_INET, AF_INET6
from typing import Any, TypeVar

from cni_bridge_py.errors import InvalidNetns
from cni_bridge_py.kernel import rtmsg
from cni_bridge_py.kernel.errors import KernelError
from cni_bridge_py.kernel.nsenter import in_netns
from cni_bridge_py.kernel.rtmsg import Link, parse_address, parse_link, parse_route
from cni_bridge_py.kernel.rtnl import (
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_EXCL,
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_GETADDR,
    RTM_GETLINK,
    RTM_GETROUTE,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWROUTE,
    RTM_SETLINK,
    DumpInterrupted,
    RtnlError,
    RtnlSocket,
    address_message,
    link_message,
    route_message,
)
from cni_bridge_py.netaddr import IPAddress, IPInterface, IPNetwork
from cni_bridge_py.ports import PortFlags
from cni_bridge_py.vlan import VlanOp

M = TypeVar("M")

RTM_GETNSID = 90  # linux/rtnetlink.h

# Kernel ABI values, named as in the Linux uapi headers (the netlink ones are in rtnl.py).

# Where routes added without a table (ours) go: the only table `routes()` reads.
RT_TABLE_MAIN = 254
# The reference's routes (vishvananda/netlink's default); pyroute2 would send "static".
RTPROT_BOOT = 3
# linux/if.h: ifinfomsg.ifi_flags bits.
IFF_UP = 0x1
IFF_PROMISC = 0x100
# linux/rtnetlink.h: a route through a gateway or a link; the main table's "universe" scope.
RTN_UNICAST = 1
RT_SCOPE_UNIVERSE = 0
# linux/socket.h: the bridge family of port (VLAN) settings.
AF_BRIDGE = 7
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
ROUTE_PREPEND = NLM_F_ACK | NLM_F_CREATE
# A new object that must not exist yet (EEXIST otherwise).
CREATE_NEW = NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL

# A dump racing with changes comes back marked NLM_F_DUMP_INTR and is asked again, up to
# this many times in all: a link list that keeps changing is a busy host, not an error yet.
DUMP_TRIES = 6
# txqlen of both veth ends, as the reference creates them (veths queue nothing anyway).
VETH_TXQLEN = 0


@contextmanager
def _netlink(doing: str, *, tolerate: Collection[int] = ()) -> Iterator[None]:
    """An RtnlError in the block as KernelError(doing, errno), so the runtime reads what we
    were doing. An errno in `tolerate` is an answer the caller expects (EEXIST: already there,
    ENODEV: already gone): it ends the block quietly, and the code after the block says what
    it means. Other exceptions pass through unchanged."""
    try:
        yield
    except RtnlError as exc:
        if exc.code not in tolerate:
            said = f"{os.strerror(exc.code)} ({exc.text})" if exc.text else ""
            raise KernelError(doing, exc.code, said) from exc


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


def _dump(doing: str, sock: RtnlSocket, msg: Any, kind: int) -> list[Any]:
    """A dump of pyroute2 messages (overlay.py's neighbours and cluster routes)."""
    return _whole(doing, lambda: sock.request(msg, kind, NLM_F_DUMP))


def _query_dump(
    doing: str,
    sock: RtnlSocket,
    request: bytes,
    *,
    kind: int,
    answer: int,
    parse: Callable[[bytes, int, int], M],
) -> list[M]:
    """A dump packed and parsed by rtmsg.py (links, addresses, routes)."""
    return _whole(doing, lambda: sock.query(kind, NLM_F_DUMP, request, answer, parse))


def _nsid(data: bytes, start: int, end: int) -> int:
    """rtmsg.parse_nsid with "none" as -1: RtnlSocket.query drops None answers."""
    nsid = rtmsg.parse_nsid(data, start, end)
    return -1 if nsid is None else nsid


def _whole(doing: str, read: Callable[[], list[M]]) -> list[M]:
    """`read`, one dump request, asked again until the kernel answers it whole."""
    with _netlink(doing):
        for _ in range(DUMP_TRIES):
            try:
                return read()
            except DumpInterrupted:
                continue  # the kernel asks us to try again
    # EINTR: what the reference's vishvananda/netlink answers for an interrupted dump.
    raise KernelError(doing, errno.EINTR, f"dump interrupted {DUMP_TRIES} times by changes")


def _linkinfo(kind: str, **data: Any) -> tuple[str, Any]:
    info: list[tuple[str, Any]] = [("IFLA_INFO_KIND", kind)]
    if data:
        info.append(("IFLA_INFO_DATA", {"attrs": list(data.items())}))
    return ("IFLA_LINKINFO", {"attrs": info})


class NetlinkSession:
    """Link, address and route operations on one namespace (the one its socket is bound to)."""

    def __init__(self, sock: RtnlSocket, where: str) -> None:
        self.sock = sock
        self.where = where

    # ---- links ----
    def link(self, name: str) -> Link | None:
        return self._get(f"looking up {name} in {self.where}", rtmsg.link_request(name=name))

    def link_by_index(self, index: int) -> Link | None:
        return self._get(
            f"looking up link #{index} in {self.where}", rtmsg.link_request(index=index)
        )

    def links(self) -> list[Link]:
        request = rtmsg.link_request()
        return _query_dump(
            f"listing links in {self.where}",
            self.sock,
            request,
            kind=RTM_GETLINK,
            answer=RTM_NEWLINK,
            parse=parse_link,
        )

    def create_bridge(self, name: str, mtu: int, vlan_filtering: bool = False) -> bool:
        """True when we created it; False when it already existed (e.g. a concurrent ADD)."""
        attrs: list[tuple[str, Any]] = [("IFLA_IFNAME", name)]
        if mtu:
            attrs.append(("IFLA_MTU", mtu))
        # IFLA_BR_VLAN_FILTERING is a u8 boolean.
        data = {"IFLA_BR_VLAN_FILTERING": 1} if vlan_filtering else {}
        attrs.append(_linkinfo("bridge", **data))
        with _netlink(f"creating bridge {name}", tolerate=(errno.EEXIST,)):
            self.sock.request(link_message(attrs=attrs), RTM_NEWLINK, CREATE_NEW)
            return True
        return False  # EEXIST: a concurrent ADD created it first

    def create_veth(
        self, host_name: str, peer_name: str, peer_netns: str, mtu: int, peer_mac: str
    ) -> None:
        """The host end here, the peer created directly inside `peer_netns` (no rename dance):
        one message."""
        peer: list[tuple[str, Any]] = [("IFLA_IFNAME", peer_name), ("IFLA_TXQLEN", VETH_TXQLEN)]
        host: list[tuple[str, Any]] = [("IFLA_IFNAME", host_name), ("IFLA_TXQLEN", VETH_TXQLEN)]
        if mtu:
            peer.append(("IFLA_MTU", mtu))
            host.append(("IFLA_MTU", mtu))
        if peer_mac:
            peer.append(("IFLA_ADDRESS", peer_mac))
        with _netns_file(peer_netns, "open"):
            fd = os.open(peer_netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            peer.append(("IFLA_NET_NS_FD", fd))
            host.append(_linkinfo("veth", VETH_INFO_PEER={"attrs": peer}))
            with _netlink(f"creating veth {host_name} with peer {peer_name}"):
                self.sock.request(link_message(attrs=host), RTM_NEWLINK, CREATE_NEW)
        finally:
            os.close(fd)

    def set_up(self, index: int, what: str) -> None:
        self._set(what, index=index, flags=IFF_UP, change=IFF_UP)

    def retire(self, index: int, name: str, what: str) -> None:
        # Two messages: the kernel refuses to rename a link that is up (EBUSY), and it
        # applies a message's new name before its flags.
        self._set(what, index=index, flags=0, change=IFF_UP)
        self._set(what, index=index, attrs=[("IFLA_IFNAME", name)])

    def set_promisc(self, index: int, what: str) -> None:
        self._set(what, index=index, flags=IFF_PROMISC, change=IFF_PROMISC)

    def set_mac(self, index: int, mac: str, what: str) -> None:
        self._set(what, index=index, attrs=[("IFLA_ADDRESS", mac)])

    def attach_port(self, index: int, master: int, flags: PortFlags, alias: str, what: str) -> None:
        """Enslave, label and bring up a new port in one message; port flags only when asked
        for, since a new port starts with hairpin and isolation off."""
        attrs = [("IFLA_MASTER", master), ("IFLA_IFALIAS", alias)]
        self._set(what, index=index, flags=IFF_UP, change=IFF_UP, attrs=attrs)
        if not (flags.hairpin or flags.isolated):
            return
        # IFLA_BRPORT_MODE (hairpin) and IFLA_BRPORT_ISOLATED are u8 booleans.
        port: list[tuple[str, Any]] = [("IFLA_BRPORT_MODE", int(flags.hairpin))]
        if flags.isolated:
            port.append(("IFLA_BRPORT_ISOLATED", 1))
        info = [("IFLA_INFO_SLAVE_KIND", "bridge"), ("IFLA_INFO_SLAVE_DATA", {"attrs": port})]
        with _netlink(f"setting port flags on {what}"):
            msg = link_message(index=index, attrs=[("IFLA_LINKINFO", {"attrs": info})])
            self.sock.request(msg, RTM_NEWLINK)

    def set_port_vlans(self, index: int, ops: list[VlanOp], what: str) -> None:
        for op in ops:
            flags = (BRIDGE_VLAN_INFO_PVID if op.pvid else 0) | (
                BRIDGE_VLAN_INFO_UNTAGGED if op.untagged else 0
            )
            vlan = ("IFLA_BRIDGE_VLAN_INFO", {"flags": flags, "vid": op.vid})
            msg = link_message(
                family=AF_BRIDGE, index=index, attrs=[("IFLA_AF_SPEC", {"attrs": [vlan]})]
            )
            with _netlink(f"setting VLAN {op.vid} on {what}"):
                self.sock.request(msg, RTM_SETLINK if op.add else RTM_DELLINK)

    def delete_link(self, index: int, what: str) -> bool:
        """False when it was already gone."""
        with _netlink(f"deleting {what}", tolerate=(errno.ENODEV,)):
            self.sock.request(link_message(index=index), RTM_DELLINK)
            return True
        return False  # ENODEV: already gone

    def nsid_of(self, netns_path: str) -> int | None:
        """The nsid this namespace knows the namespace at `netns_path` by (None: none given):
        what a veth's link_netnsid is compared with to find the namespace of its peer."""
        with _netns_file(netns_path, "open"):
            fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            with _netlink(f"asking the nsid of {netns_path} in {self.where}"):
                request = rtmsg.nsid_request(fd)
                found = self.sock.query(RTM_GETNSID, 0, request, rtmsg.RTM_NEWNSID, _nsid)
                return found[0] if found and found[0] >= 0 else None
        finally:
            os.close(fd)

    def _get(self, doing: str, request: bytes) -> Link | None:
        with _netlink(doing, tolerate=(errno.ENODEV,)):
            answers = self.sock.query(RTM_GETLINK, 0, request, RTM_NEWLINK, parse_link)
            return answers[0] if answers else None
        return None  # ENODEV: no such link

    def _set(self, what: str, **fields: Any) -> None:
        with _netlink(f"configuring {what}"):
            self.sock.request(link_message(**fields), RTM_NEWLINK)

    # ---- addresses ----
    def addresses(self, index: int, versions: Collection[int] = (4, 6)) -> list[IPInterface]:
        # One family asked for alone: the kernel leaves the other out (a v4 CHECK skips the
        # container's IPv6 link-local address).
        family = _family(next(iter(versions))) if len(set(versions)) == 1 else 0
        request = rtmsg.address_request(index, family)
        found = _query_dump(
            f"listing addresses of link #{index} in {self.where}",
            self.sock,
            request,
            kind=RTM_GETADDR,
            answer=RTM_NEWADDR,
            parse=parse_address,
        )
        # The kernel filters by index (strict checking, rtnl.py); the check here is for an
        # old kernel that ignores the filter.
        return [address for owner, address in found if owner == index and address is not None]

    def add_address(self, index: int, iface: IPInterface, what: str, nodad: bool = False) -> bool:
        """False when the address was already there (a concurrent ADD put the gateway first).
        `nodad`: an IPv6 address usable at once, without duplicate address detection."""
        ip = str(iface.ip)
        attrs: list[tuple[str, Any]] = [("IFA_LOCAL", ip), ("IFA_ADDRESS", ip)]
        flags = 0
        if iface.version == 4:
            attrs.append(("IFA_BROADCAST", str(iface.network.broadcast_address)))
        else:
            attrs = [("IFA_ADDRESS", ip)]
            flags = IFA_F_NODAD if nodad else 0
        msg = address_message(
            family=_family(iface.version),
            prefixlen=iface.network.prefixlen,
            flags=flags,
            scope=RT_SCOPE_UNIVERSE,
            index=index,
            attrs=attrs,
        )
        with _netlink(f"adding {iface} to {what}", tolerate=(errno.EEXIST,)):
            self.sock.request(msg, RTM_NEWADDR, CREATE_NEW)
            return True
        return False  # EEXIST: already there

    def delete_address(self, index: int, iface: IPInterface, what: str) -> None:
        ip = str(iface.ip)
        attrs = [("IFA_LOCAL", ip), ("IFA_ADDRESS", ip)] if iface.version == 4 else []
        msg = address_message(
            family=_family(iface.version),
            prefixlen=iface.network.prefixlen,
            index=index,
            attrs=attrs or [("IFA_ADDRESS", ip)],
        )
        # EADDRNOTAVAIL: the address is gone; ENODEV: its link is. Either way, nothing to do.
        gone = (errno.EADDRNOTAVAIL, errno.ENODEV)
        with _netlink(f"removing {iface} from {what}", tolerate=gone):
            self.sock.request(msg, RTM_DELADDR)

    # ---- routes ----
    def add_route(self, dst: IPNetwork, gateway: IPAddress | None, index: int, what: str) -> None:
        attrs: list[tuple[str, Any]] = []
        if dst.prefixlen:
            attrs.append(("RTA_DST", str(dst.network_address)))
        if gateway is not None:
            attrs.append(("RTA_GATEWAY", str(gateway)))
        attrs.append(("RTA_OIF", index))
        msg = route_message(
            family=_family(dst.version),
            dst_len=dst.prefixlen,
            table=RT_TABLE_MAIN,
            proto=RTPROT_BOOT,
            scope=RT_SCOPE_UNIVERSE,
            type=RTN_UNICAST,
            attrs=attrs,
        )
        # EEXIST: an identical route is there already, which is what we wanted.
        doing = f"adding route {dst} via {gateway} on {what}"
        with _netlink(doing, tolerate=(errno.EEXIST,)):
            self.sock.request(msg, RTM_NEWROUTE, ROUTE_PREPEND)

    def routes(
        self, index: int, versions: Collection[int] = (4, 6)
    ) -> list[tuple[IPNetwork, IPAddress | None]]:
        """(dst, gateway) of the main table's routes through link `index`, of the IP
        `versions` asked for (one dump each)."""
        found = self._main_routes(
            versions, lambda family: rtmsg.route_request(family, RT_TABLE_MAIN, index)
        )
        # Filtered by the kernel too (strict checking), but not by an old one.
        return [(route.dst, route.gateway) for route in found if route.oif == index]

    def main_routes(self, versions: Collection[int] = (4, 6)) -> list[tuple[IPNetwork, int | None]]:
        """(dst, output link index) of every main-table route of the IP `versions` asked for
        (doctor looks for one that takes a network's subnet away from its bridge)."""
        found = self._main_routes(
            versions, lambda family: rtmsg.route_table_request(family, RT_TABLE_MAIN)
        )
        return [(route.dst, route.oif) for route in found]

    def _main_routes(
        self, versions: Collection[int], request: Callable[[int], bytes]
    ) -> list[rtmsg.Route]:
        """The main table's routes of the IP `versions`, one dump each of `request(family)`."""
        doing = f"listing routes in {self.where}"
        out: list[rtmsg.Route] = []
        for version in sorted(versions):
            found = _query_dump(
                doing,
                self.sock,
                request(_family(version)),
                kind=RTM_GETROUTE,
                answer=RTM_NEWROUTE,
                parse=parse_route,
            )
            out += [route for route in found if route.table == RT_TABLE_MAIN]
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


def _family(version: int) -> int:
    return AF_INET if version == 4 else AF_INET6


@contextmanager
def host_session() -> Iterator[NetlinkSession]:
    """A session in the process's namespace on the calling thread's kept socket: an agent's
    request thread serves one request after another, and a socket costs ~13 us to open and
    close. Held by one session at a time (a nested one opens its own); a session that ends
    in an exception closes it, since an answer may be left unread on it."""
    kept: _KeptSocket | None = getattr(_KEPT_HOST, "held", None)
    _KEPT_HOST.held = None
    sock = kept.take() if kept is not None and kept.pid == os.getpid() else None
    sock = sock or RtnlSocket()
    try:
        yield NetlinkSession(sock, "the host namespace")
    except BaseException:
        sock.close()
        raise
    if getattr(_KEPT_HOST, "held", None) is None:
        _KEPT_HOST.held = _KeptSocket(sock)
    else:
        sock.close()  # a nested session's is kept already


class _KeptSocket:
    """A thread's kept host socket. Closed with its holder: when the thread ends (its locals
    go), or when a forked child, which must not use its parent's, replaces it."""

    __slots__ = ("pid", "sock")

    def __init__(self, sock: RtnlSocket) -> None:
        self.pid = os.getpid()
        self.sock: RtnlSocket | None = sock

    def take(self) -> RtnlSocket | None:
        sock, self.sock = self.sock, None
        return sock

    def __del__(self) -> None:
        if self.sock is not None:
            self.sock.close()


# Only threads in the process's namespace open host sessions (nsenter's work opens none).
_KEPT_HOST = threading.local()


@contextmanager
def netns_session(path: str) -> Iterator[NetlinkSession]:
    """A session in the namespace at `path`: its socket is opened by a thread inside that
    namespace (no fork, and the rest of the process stays where it is)."""
    with _netns_file(path, "enter"):
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with _netns_file(path, "enter"):
            sock = in_netns(fd, RtnlSocket)
    finally:
        os.close(fd)
    with sock:
        yield NetlinkSession(sock, f"namespace {path}")
