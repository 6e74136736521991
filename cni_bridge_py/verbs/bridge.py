"""The bridge side of ADD: the bridge itself and the gateway addresses on it."""

from __future__ import annotations

import errno
from collections.abc import Callable

from cni_bridge_py import plan, vlan
from cni_bridge_py.config import NetConf
from cni_bridge_py.errors import InvalidConfig, IOFailure, UnsupportedField
from cni_bridge_py.kernel.errors import KernelError
from cni_bridge_py.netaddr import IPInterface
from cni_bridge_py.ports import Links, LinkView, Ports
from cni_bridge_py.result import IPConfig
from cni_bridge_py.verbs.rollback import Rollback


def ensure_bridge(ports: Ports, conf: NetConf, undo: Rollback) -> LinkView:
    """Create the bridge unless it exists; a same-named link of another kind is left alone.
    One this ADD created goes with a failed ADD when no port joined it meanwhile."""
    host = ports.host
    filtering = vlan.needs_filtering(conf.vlan, conf.vlan_trunk)
    existing = host.link(conf.bridge)
    created = False
    if existing is None:
        created = _create(ports, conf, filtering)
        existing = host.link(conf.bridge)
    if existing is None:
        raise IOFailure(f"bridge {conf.bridge} vanished while being set up", "retry the ADD")
    if created:
        undo.push(f"bridge {conf.bridge}", _undo_bridge(host, existing))
    if existing.kind != "bridge":
        raise InvalidConfig(
            f"{conf.bridge!r} already exists but is not a bridge"
            f" (it is a {existing.kind or 'plain'} link)",
            'choose another "bridge" name or remove that link',
        )
    if filtering and not existing.vlan_filtering:
        raise InvalidConfig(
            f"bridge {conf.bridge!r} exists without VLAN filtering, which vlan/vlanTrunk need",
            "use a bridge created with vlan_filtering 1, or another bridge name",
        )
    what = f"bridge {conf.bridge}"
    if conf.promisc_mode and not existing.promisc:
        host.set_promisc(existing.index, what)
    # Router advertisements must not configure the bridge (the reference writes it every ADD).
    ports.sysctl.write(f"net/ipv6/conf/{conf.bridge}/accept_ra", "0", required=False)
    if existing.operstate in {"DOWN", ""}:
        host.set_up(existing.index, what)
    return existing


def pin_mac(ports: Ports, conf: NetConf, bridge: LinkView) -> None:
    """An explicitly set MAC stops the bridge following its lowest port's (cni#285). Done once
    a port is attached: on a port-less bridge the kernel would keep a zero bridge id."""
    if conf.is_gateway:
        ports.host.set_mac(bridge.index, bridge.mac, f"bridge {conf.bridge}")


def _undo_bridge(host: Links, bridge: LinkView) -> Callable[[], None]:
    def undo() -> None:
        # Another ADD may have joined it meanwhile: its port keeps the bridge. (Our own veth
        # is removed before this: newest undo first.)
        if not any(link.master == bridge.index for link in host.links()):
            host.delete_link(bridge.index, f"bridge {bridge.name}")

    return undo


def _create(ports: Ports, conf: NetConf, filtering: bool) -> bool:
    """True when this call created it."""
    try:
        # False (a concurrent ADD created it first) is fine: ensure_bridge re-reads it.
        return ports.host.create_bridge(conf.bridge, conf.mtu, filtering)
    except KernelError as exc:
        if filtering and exc.errno == errno.EOPNOTSUPP:
            raise UnsupportedField(
                f"cannot create bridge {conf.bridge!r} with VLAN filtering: this kernel's"
                " bridge does not support it",
                'drop "vlan"/"vlanTrunk" from the config, or use a kernel with'
                " CONFIG_BRIDGE_VLAN_FILTERING",
            ) from exc
        raise


def configure_gateway(
    conf: NetConf,
    ports: Ports,
    bridge: LinkView,
    ips: list[IPConfig],
    *,
    present: list[IPInterface],
    port: LinkView,
    undo: Rollback,
) -> None:
    """The gateway addresses on the bridge and forwarding on. `present`: the bridge's other
    addresses, as other_bridge_addresses read them; `port` is this ADD's host veth."""
    wanted = plan.bridge_addresses(ips, conf)
    if not wanted:
        return
    what = f"bridge {conf.bridge}"
    for gateway in wanted:
        _clear_conflicts(ports.host, bridge, gateway, present, conf)
        if ports.host.add_address(bridge.index, gateway, what, nodad=True):
            undo.push(f"gateway {gateway}", _undo_gateway(ports.host, bridge, port, gateway))
    families = {g.version for g in wanted}
    if 4 in families:
        ports.sysctl.write("net/ipv4/ip_forward", "1")
    if 6 in families:
        ports.sysctl.write("net/ipv6/conf/all/forwarding", "1")


def other_bridge_addresses(
    conf: NetConf, ports: Ports, bridge: LinkView, ips: list[IPConfig]
) -> list[IPInterface]:
    """The bridge's addresses besides this config's gateways, read once per ADD and early:
    one where a gateway goes is refused here unless forceAddress (before anything else is
    made), and replaced by configure_gateway when it is set."""
    wanted = plan.bridge_addresses(ips, conf)
    if not wanted:
        return []
    # This config's own gateways never conflict with each other (two IPv4 range sets).
    present = [a for a in ports.host.addresses(bridge.index) if a not in wanted]
    for gateway in wanted:
        _conflicts(gateway, present, conf)
    return present


def _clear_conflicts(
    host: Links, bridge: LinkView, gateway: IPInterface, present: list[IPInterface], conf: NetConf
) -> None:
    for addr in _conflicts(gateway, present, conf):
        host.delete_address(bridge.index, addr, f"bridge {conf.bridge}")


def _conflicts(
    gateway: IPInterface, present: list[IPInterface], conf: NetConf
) -> list[IPInterface]:
    """The reference's ensureAddr (plan.gateway_conflicts): the addresses `gateway` would
    replace (raises unless the config allows it)."""
    found = plan.gateway_conflicts(gateway, present)
    if found and not conf.force_address:
        raise InvalidConfig(
            f"{conf.bridge!r} already has an IP address different from {gateway}: {found[0]}",
            'set "forceAddress": true to replace it, or use another bridge',
        )
    return found


def _undo_gateway(
    host: Links, bridge: LinkView, port: LinkView, gateway: IPInterface
) -> Callable[[], None]:
    def undo() -> None:
        # Only a bridge with no port but ours loses the address: other containers may
        # already route through it. (Our veth is removed after this, newest undo first.)
        ports_left = {link.index for link in host.links() if link.master == bridge.index}
        if not ports_left - {port.index}:
            host.delete_address(bridge.index, gateway, f"bridge {bridge.name}")

    return undo
