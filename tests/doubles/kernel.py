"""A fake kernel: network namespaces of links, addresses and routes, for the verbs' `Links`.

Faithful where the verbs depend on it: ifindexes are per namespace (a peer's index means
nothing in another one), a veth is created with its peer directly in the peer's namespace and
deleting either end deletes both (so does destroying the namespace), looking up a missing
link answers None, create_bridge answers whether it created, an existing address answers
False, a bridge whose MAC was never set follows its lowest port's MAC, a link coming up gets
an IPv6 link-local address, routes need the link up and the gateway on a connected subnet,
and failures are the typed errors kernel/netlink.py raises (KernelError with the errno and
its "doing" text). Every change the verbs make is logged in the shared Calls; changes a test
makes to arrange a situation (the put/drop helpers) are not.
"""

from __future__ import annotations

import errno
import ipaddress
import itertools
import os
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from cni_bridge_py.errors import InvalidNetns, IOFailure
from cni_bridge_py.kernel.errors import KernelError
from cni_bridge_py.netaddr import IPAddress, IPInterface, IPNetwork
from cni_bridge_py.ports import Links, PortFlags
from cni_bridge_py.vlan import VlanOp
from tests.doubles.calls import Calls

# The plugin's own namespace, as check_netns compares it.
HOST_NETNS = "/proc/self/ns/net"
LOOPBACK_MAC = "00:00:00:00:00:00"


@dataclass(frozen=True)
class FakeLink:
    """What a lookup returns: a snapshot, as netlink's Link is (later changes don't show)."""

    index: int
    name: str
    kind: str
    mac: str
    master: int | None
    peer_index: int | None
    operstate: str
    promisc: bool
    vlan_filtering: bool
    alias: str
    mtu: int
    up: bool
    hairpin: bool
    isolated: bool
    vlans: tuple[VlanOp, ...]


@dataclass(eq=False)
class _Record:
    ns: FakeLinks
    index: int
    name: str
    kind: str
    mac: str
    mtu: int = 1500
    up: bool = False
    master: int | None = None
    peer: _Record | None = None
    promisc: bool = False
    vlan_filtering: bool = False
    alias: str = ""
    hairpin: bool = False
    isolated: bool = False
    # A bridge with an explicitly set MAC stops following its ports' (NET_ADDR_SET).
    mac_set: bool = False
    # An operstate the link is stuck in whatever its flags say (a port that never forwards).
    stuck: str = ""
    vlans: list[VlanOp] = field(default_factory=list)
    addresses: list[IPInterface] = field(default_factory=list)
    routes: list[tuple[IPNetwork, IPAddress | None]] = field(default_factory=list)

    def operstate(self) -> str:
        if self.stuck:
            return self.stuck
        if not self.up:
            return "DOWN"
        if self.kind == "veth":
            return "UP" if self.peer is not None and self.peer.up else "LOWERLAYERDOWN"
        if self.kind == "bridge":
            ports = self.ns.ports_of(self.index)
            return "UP" if any(p.operstate() == "UP" for p in ports) else "DOWN"
        return "UNKNOWN"  # loopback and dummies have no carrier

    def snapshot(self) -> FakeLink:
        return FakeLink(
            index=self.index,
            name=self.name,
            kind=self.kind,
            mac=self.mac,
            master=self.master,
            peer_index=self.peer.index if self.peer is not None else None,
            operstate=self.operstate(),
            promisc=self.promisc,
            vlan_filtering=self.vlan_filtering,
            alias=self.alias,
            mtu=self.mtu,
            up=self.up,
            hairpin=self.hairpin,
            isolated=self.isolated,
            vlans=tuple(self.vlans),
        )


def _link_local(mac: str) -> IPInterface:
    """The EUI-64 address the kernel gives a link when it comes up."""
    octets = [int(part, 16) for part in mac.split(":")]
    octets[0] ^= 0x02
    eui = [*octets[:3], 0xFF, 0xFE, *octets[3:]]
    groups = ":".join(f"{eui[i]:02x}{eui[i + 1]:02x}" for i in range(0, 8, 2))
    return ipaddress.ip_interface(f"fe80::{groups}/64")


def _same_address(a: IPInterface, b: IPInterface) -> bool:
    """The kernel's duplicate rule: IPv4 by address and prefix, IPv6 by address alone."""
    return a == b if a.version == 4 else a.ip == b.ip


class FakeLinks:
    """One namespace: the `Links` protocol plus helpers for tests to arrange and inspect it."""

    def __init__(self, kernel: Kernel, label: str, path: str, where: str) -> None:
        self.kernel = kernel
        # How the call log names this namespace ("host", or the netns file's name).
        self.label = label
        self.path = path
        self.where = where
        self.sysctls: dict[str, str] = {}
        self._links: dict[int, _Record] = {}
        self._next_index = itertools.count(1)
        self._insert("lo", "", LOOPBACK_MAC, up=False)

    # ---- the Links protocol ----
    def link(self, name: str) -> FakeLink | None:
        self._read("link", name, lambda e: KernelError(f"looking up {name} in {self.where}", e))
        found = self._named(name)
        return found.snapshot() if found is not None else None

    def link_by_index(self, index: int) -> FakeLink | None:
        doing = f"looking up link #{index} in {self.where}"
        self._read("link_by_index", f"#{index}", lambda e: KernelError(doing, e))
        found = self._links.get(index)
        return found.snapshot() if found is not None else None

    def links(self) -> list[FakeLink]:
        self._read("links", "*", lambda e: KernelError(f"listing links in {self.where}", e))
        return [r.snapshot() for r in sorted(self._links.values(), key=lambda r: r.index)]

    def create_bridge(self, name: str, mtu: int, vlan_filtering: bool = False) -> bool:
        details = "vlan_filtering" if vlan_filtering else ""
        self._call(
            "create_bridge", name, details, lambda e: KernelError(f"creating bridge {name}", e)
        )
        if self._named(name) is not None:
            return False  # EEXIST, which netlink.py answers as "not created by us"
        bridge = self._insert(name, "bridge", self.kernel.new_mac(), mtu=mtu)
        bridge.vlan_filtering = vlan_filtering
        return True

    def create_veth(
        self, host_name: str, peer_name: str, peer_netns: str, mtu: int, peer_mac: str
    ) -> None:
        peer_ns = self.kernel.namespaces.get(peer_netns)
        label = peer_ns.label if peer_ns is not None else peer_netns
        doing = f"creating veth {host_name} with peer {peer_name}"
        self._call(
            "create_veth", host_name, f"{label}:{peer_name}", lambda e: KernelError(doing, e)
        )
        if peer_ns is None:
            self.kernel.calls.refuse()
            raise InvalidNetns(
                f"cannot open network namespace {peer_netns!r}",
                f"[Errno 2] No such file or directory: {peer_netns!r}",
            )
        if self._named(host_name) is not None or peer_ns._named(peer_name) is not None:
            self.kernel.calls.refuse()
            raise KernelError(doing, errno.EEXIST)
        host = self._insert(host_name, "veth", self.kernel.new_mac(), mtu=mtu)
        peer = peer_ns._insert(peer_name, "veth", peer_mac or self.kernel.new_mac(), mtu=mtu)
        host.peer, peer.peer = peer, host

    def set_up(self, index: int, what: str) -> None:
        record = self._change(index, "set_up", "", f"configuring {what}")
        self._bring_up(record)

    def retire(self, index: int, name: str, what: str) -> None:
        record = self._change(index, "retire", name, f"configuring {what}")
        if self._named(name) is not None:
            self.kernel.calls.refuse()
            raise KernelError(f"configuring {what}", errno.EEXIST)
        record.up = False
        record.name = name

    def set_promisc(self, index: int, what: str) -> None:
        self._change(index, "set_promisc", "", f"configuring {what}").promisc = True

    def set_mac(self, index: int, mac: str, what: str) -> None:
        record = self._change(index, "set_mac", mac, f"configuring {what}")
        record.mac, record.mac_set = mac, True

    def attach_port(self, index: int, master: int, flags: PortFlags, alias: str, what: str) -> None:
        bridge = self._links.get(master)
        bridge_name = bridge.name if bridge is not None else f"#{master}"
        port = self._change(index, "attach_port", bridge_name, f"configuring {what}")
        if bridge is None or bridge.kind != "bridge":
            self.kernel.calls.refuse()
            code = errno.ENODEV if bridge is None else errno.EOPNOTSUPP
            raise KernelError(f"configuring {what}", code)
        port.master, port.alias = master, alias
        self._bring_up(port)
        self._follow_ports(bridge)
        if flags.hairpin or flags.isolated:
            # A second netlink message in the real session, which can fail on its own.
            words = [
                w for w, on in (("hairpin", flags.hairpin), ("isolated", flags.isolated)) if on
            ]
            doing = f"setting port flags on {what}"
            self._call("port_flags", port.name, " ".join(words), lambda e: KernelError(doing, e))
            port.hairpin, port.isolated = flags.hairpin, flags.isolated

    def set_port_vlans(self, index: int, ops: list[VlanOp], what: str) -> None:
        # One netlink message per operation, as the real session sends them.
        for op in ops:
            doing = f"setting VLAN {op.vid} on {what}"
            words = ["add" if op.add else "del", str(op.vid)]
            words += [w for w, on in (("pvid", op.pvid), ("untagged", op.untagged)) if on]
            port = self._change(index, "vlan", " ".join(words), doing)
            port.vlans = [v for v in port.vlans if v.vid != op.vid]
            if op.add:
                port.vlans.append(op)

    def delete_link(self, index: int, what: str) -> bool:
        record = self._links.get(index)
        target = record.name if record is not None else f"#{index}"
        self._call("delete_link", target, "", lambda e: KernelError(f"deleting {what}", e))
        if record is None:
            return False
        self._destroy(record)
        return True

    def addresses(self, index: int, versions: Collection[int] = (4, 6)) -> list[IPInterface]:
        doing = f"listing addresses of #{index} in {self.where}"
        self._read("addresses", f"#{index}", lambda e: KernelError(doing, e))
        record = self._links.get(index)
        found = list(record.addresses) if record is not None else []
        return [a for a in found if a.version in versions]

    def add_address(self, index: int, iface: IPInterface, what: str, nodad: bool = False) -> bool:
        record = self._change(index, "add_address", str(iface), f"adding {iface} to {what}")
        if any(_same_address(iface, a) for a in record.addresses):
            return False  # EEXIST, which netlink.py answers as "already there"
        record.addresses.append(iface)
        return True

    def delete_address(self, index: int, iface: IPInterface, what: str) -> None:
        record = self._links.get(index)
        target = record.name if record is not None else f"#{index}"
        doing = f"removing {iface} from {what}"
        self._call("delete_address", target, str(iface), lambda e: KernelError(doing, e))
        if record is not None:  # EADDRNOTAVAIL and ENODEV are fine, as in netlink.py
            record.addresses = [a for a in record.addresses if not _same_address(iface, a)]

    def add_route(self, dst: IPNetwork, gateway: IPAddress | None, index: int, what: str) -> None:
        doing = f"adding route {dst} via {gateway} on {what}"
        record = self._change(index, "add_route", f"{dst} via {gateway}", doing)
        if not record.up:
            self.kernel.calls.refuse()
            raise KernelError(doing, errno.ENETDOWN)
        if gateway is not None and not any(
            a.version == gateway.version and gateway in a.network for a in record.addresses
        ):
            self.kernel.calls.refuse()
            raise KernelError(doing, errno.ENETUNREACH)
        if (dst, gateway) not in record.routes:  # an identical route: EEXIST, fine
            record.routes.append((dst, gateway))

    def routes(
        self, index: int, versions: Collection[int] = (4, 6)
    ) -> list[tuple[IPNetwork, IPAddress | None]]:
        doing = f"listing routes of #{index} in {self.where}"
        self._read("routes", f"#{index}", lambda e: KernelError(doing, e))
        record = self._links.get(index)
        if record is None:
            return []
        # The prefix routes of its addresses, which the kernel adds while the link is up.
        connected: list[tuple[IPNetwork, IPAddress | None]] = (
            [(a.network, None) for a in record.addresses] if record.up else []
        )
        return [r for r in connected + list(record.routes) if r[0].version in versions]

    def wait_operstate_up(self, index: int, what: str, delays_ms: tuple[int, ...]) -> str:
        doing = f"looking up link #{index} in {self.where}"
        self._read("wait_operstate_up", f"#{index}", lambda e: KernelError(doing, e))
        record = self._links.get(index)
        return record.operstate() if record is not None else "GONE"

    # ---- arranging and inspecting (tests only; not logged) ----
    def put(
        self,
        name: str,
        kind: str = "dummy",
        *,
        up: bool = True,
        master: str | None = None,
        alias: str = "",
        mac: str = "",
    ) -> FakeLink:
        """A link someone else made (a dummy, a physical NIC, a reference plugin's bridge)."""
        record = self._insert(name, kind, mac or self.kernel.new_mac())
        if up:
            self._bring_up(record)
        if master is not None:
            self._enslave(record, master, alias)
        return record.snapshot()

    def put_veth(
        self,
        name: str,
        peer_ns: FakeLinks,
        peer_name: str,
        *,
        master: str | None = None,
        alias: str = "",
    ) -> FakeLink:
        """A veth pair made by someone else, both ends up, this end optionally a bridge port."""
        host = self._insert(name, "veth", self.kernel.new_mac())
        peer = peer_ns._insert(peer_name, "veth", self.kernel.new_mac())
        host.peer, peer.peer = peer, host
        self._bring_up(host)
        peer_ns._bring_up(peer)
        if master is not None:
            self._enslave(host, master, alias)
        return host.snapshot()

    def drop(self, name: str) -> None:
        self._destroy(self._must(name))

    def drop_address(self, name: str, iface: IPInterface) -> None:
        record = self._must(name)
        record.addresses = [a for a in record.addresses if a != iface]

    def drop_route(self, name: str, dst: IPNetwork) -> None:
        record = self._must(name)
        record.routes = [r for r in record.routes if r[0] != dst]

    def detach(self, name: str) -> None:
        record = self._must(name)
        bridge = self._links.get(record.master) if record.master is not None else None
        record.master = None
        if bridge is not None:
            self._follow_ports(bridge)

    def move(self, name: str, to: FakeLinks) -> None:
        """`ip link set NAME netns ...`: the link gets an index in its new namespace."""
        record = self._must(name)
        del self._links[record.index]
        record.ns, record.index, record.master = to, next(to._next_index), None
        to._links[record.index] = record

    def stick(self, name: str, operstate: str) -> None:
        self._must(name).stuck = operstate

    def names(self) -> list[str]:
        return sorted(r.name for r in self._links.values())

    def get(self, name: str) -> FakeLink:
        return self._must(name).snapshot()

    def addresses_of(self, name: str) -> list[str]:
        """Its global addresses (the kernel's link-local one left out)."""
        return [str(a) for a in self._must(name).addresses if not a.ip.is_link_local]

    def routes_of(self, name: str) -> list[str]:
        """The routes added to it (its addresses' prefix routes left out)."""
        return [f"{dst} via {gw}" for dst, gw in self._must(name).routes]

    def state(self) -> dict[str, tuple[object, ...]]:
        """Everything about every link, by name, for "nothing changed" comparisons."""
        return {
            r.name: (r.snapshot(), tuple(r.addresses), tuple(r.routes))
            for r in self._links.values()
        }

    def ports_of(self, bridge_index: int) -> list[_Record]:
        return [r for r in self._links.values() if r.master == bridge_index]

    # ---- internals ----
    def _insert(self, name: str, kind: str, mac: str, *, mtu: int = 0, up: bool = False) -> _Record:
        index = next(self._next_index)
        record = _Record(self, index, name, kind, mac, mtu=mtu or 1500)
        record.stuck = self.kernel.stuck.get(name, "")
        self._links[index] = record
        if up:
            self._bring_up(record)
        return record

    def _named(self, name: str) -> _Record | None:
        return next((r for r in self._links.values() if r.name == name), None)

    def _must(self, name: str) -> _Record:
        found = self._named(name)
        assert found is not None, f"no link {name} in {self.where}"
        return found

    def _call(self, op: str, target: str, details: str, fail: Callable[[int], Exception]) -> None:
        self.kernel.calls.hit(self.label, op, target, details, fail=fail)

    def _read(self, op: str, target: str, fail: Callable[[int], Exception]) -> None:
        self.kernel.calls.hit(self.label, op, target, fail=fail, logged=False)

    def _change(self, index: int, op: str, details: str, doing: str) -> _Record:
        """Log a change to link `index`; ENODEV when it does not exist."""
        record = self._links.get(index)
        target = record.name if record is not None else f"#{index}"
        self._call(op, target, details, lambda e: KernelError(doing, e))
        if record is None:
            self.kernel.calls.refuse()
            raise KernelError(doing, errno.ENODEV)
        return record

    def _bring_up(self, record: _Record) -> None:
        record.up = True
        if record.name != "lo" and not any(a.ip.is_link_local for a in record.addresses):
            record.addresses.append(_link_local(record.mac))

    def _enslave(self, record: _Record, master: str, alias: str) -> None:
        bridge = self._must(master)
        record.master, record.alias = bridge.index, alias
        self._follow_ports(bridge)

    def _follow_ports(self, bridge: _Record) -> None:
        """br_stp_recalculate_bridge_id: an unset bridge MAC is its lowest port's."""
        ports = self.ports_of(bridge.index)
        if ports and not bridge.mac_set:
            bridge.mac = min(p.mac for p in ports)

    def _destroy(self, record: _Record) -> None:
        del record.ns._links[record.index]
        for port in record.ns.ports_of(record.index):
            port.master = None
        if record.master is not None and (bridge := record.ns._links.get(record.master)):
            record.ns._follow_ports(bridge)
        peer, record.peer = record.peer, None
        if peer is not None and peer.ns._links.get(peer.index) is peer:
            peer.peer = None
            peer.ns._destroy(peer)


class FakeSysctl:
    """/proc/sys of the plugin's namespace (the `Sysctl` port)."""

    def __init__(self, ns: FakeLinks) -> None:
        self.ns = ns

    def write(self, key: str, value: str, *, required: bool = True) -> None:
        fail = _sysctl_failure(f"cannot set {key}={value}")
        try:
            self.ns.kernel.calls.hit(self.ns.label, "sysctl", key, value, fail=fail)
        except IOFailure:
            if required:
                raise
            return  # ProcSysctl skips an optional key it cannot write
        self.ns.sysctls[key] = value


def _sysctl_failure(doing: str) -> Callable[[int], Exception]:
    return lambda code: IOFailure(doing, f"[Errno {code}] {os.strerror(code)}")


class Kernel:
    """The namespaces by path (the host's at HOST_NETNS) and the namespace-level ports:
    open_netns, netns_exists, check_netns and netns_sysctl."""

    def __init__(self, calls: Calls) -> None:
        self.calls = calls
        self._macs = itertools.count(1)
        # Links that will be stuck in an operstate once made, by name (a port that never
        # leaves the blocking state).
        self.stuck: dict[str, str] = {}
        self.host = FakeLinks(self, "host", HOST_NETNS, "the host namespace")
        self.host._bring_up(self.host._must("lo"))
        self.host.put("eth0", "")  # the uplink: a link of no particular kind
        self.namespaces: dict[str, FakeLinks] = {HOST_NETNS: self.host}
        self.sysctl = FakeSysctl(self.host)

    def new_mac(self) -> str:
        n = next(self._macs)
        return f"0a:58:00:00:{n >> 8:02x}:{n & 0xFF:02x}"

    def add_netns(self, path: str) -> FakeLinks:
        """A fresh namespace, as `ip netns add` makes it: only lo, and lo down."""
        ns = FakeLinks(self, os.path.basename(path), path, f"namespace {path}")
        self.namespaces[path] = ns
        return ns

    def remove_netns(self, path: str) -> None:
        """The namespace is destroyed: its links go, and veth peers elsewhere with them."""
        ns = self.namespaces.pop(path)
        for record in list(ns._links.values()):
            if ns._links.get(record.index) is record:
                ns._destroy(record)

    @contextmanager
    def open_netns(self, path: str) -> Iterator[Links]:
        ns = self.namespaces.get(path)
        if ns is None:
            raise InvalidNetns(f"network namespace {path!r} does not exist")
        yield ns

    def netns_exists(self, path: str) -> bool:
        return bool(path) and path in self.namespaces

    def check_netns(self, path: str) -> None:
        if path not in self.namespaces:
            raise InvalidNetns(
                f"network namespace {path!r} does not exist", "create the namespace before ADD"
            )
        if path == HOST_NETNS:
            raise InvalidNetns(
                f"{path!r} is the plugin's own network namespace",
                "refusing to move the host's side into itself; pass the container's namespace",
            )

    def netns_sysctl(
        self, path: str, settings: Sequence[tuple[str, str]], strict: Sequence[str]
    ) -> None:
        ns = self.namespaces.get(path)
        if ns is None:
            raise InvalidNetns(
                f"cannot open network namespace {path!r}", "No such file or directory"
            )
        for key, value in settings:
            fail = _sysctl_failure(f"cannot set {key}={value} in {path}")
            try:
                self.calls.hit(ns.label, "sysctl", key, value, fail=fail)
            except IOFailure:
                if key in strict:
                    raise
                continue  # write_in_netns skips a key that is not strict
            ns.sysctls[key] = value
