"""GC (spec 1.1): remove what this network holds for attachments the runtime no longer has.

The runtime's list of valid attachments (cni.dev/valid-attachments; a missing list means none
is valid) is the truth: reservations, masquerade state in every backend and host veths whose
owner alias names this network are removed unless their (containerID, ifname) is in it.
Other networks and anything we did not make are never touched.
"""

from __future__ import annotations

from collections.abc import Set

from cni_bridge_py import plan
from cni_bridge_py.config import NetConf
from cni_bridge_py.firewall.spoof_layout import SpoofCheck
from cni_bridge_py.ports import Ports
from cni_bridge_py.request import Request


def gc(request: Request, conf: NetConf, ports: Ports) -> list[str]:
    """Returns one line per thing removed (also noted for the runtime's log)."""
    valid = conf.valid_attachments
    removed = [f"reservation {a}" for a in ports.ipam(conf.ipam, request).gc(valid)]
    for backend in ports.masq_all():
        removed += [f"{backend.name}: {item}" for item in backend.gc(conf.name, valid)]
    removed += _orphan_ports(conf, ports, valid)
    for line in removed:
        ports.notes.add(f"gc {conf.name}: removed {line}")
    return removed


def _orphan_ports(conf: NetConf, ports: Ports, valid: Set[tuple[str, str]]) -> list[str]:
    """Host veths on our bridge, made by us for this network, owned by no valid attachment.
    Deleting the host end removes the container end with it."""
    bridge = ports.host.link(conf.bridge)
    if bridge is None:
        return []
    removed = []
    for link in ports.host.links():
        owner = plan.parse_port_alias(link.alias) if link.master == bridge.index else None
        if owner is None or owner[0] != conf.name or (owner[1], owner[2]) in valid:
            continue
        if ports.host.delete_link(link.index, f"orphaned veth {link.name}"):
            removed.append(f"veth {link.name} of {owner[1]}/{owner[2]}")
        checker = ports.spoof() if conf.mac_spoof_check else None
        if checker is not None:
            # Its jump matches the veth's name, which a later container may be given.
            checker.teardown(SpoofCheck(owner[1], owner[2]))
    return removed
