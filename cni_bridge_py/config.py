"""Network config JSON -> a frozen, typed NetConf.

Parse, then validate: every field problem is collected and reported in one InvalidConfig
(code 7) that names the fields, so a user fixes a config in one round. Unknown keys are
ignored, as runtimes add their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cni_bridge_py import result as results
from cni_bridge_py.cluster.config import ClusterConf, parse_cluster
from cni_bridge_py.errors import CniError
from cni_bridge_py.fields import Fields
from cni_bridge_py.ipam.config import (
    HostLocalConf,
    IpamConf,
    invalid_config,
    parse_ipam,
    parse_valid_attachments,
    require_one_per_family,
)
from cni_bridge_py.record import field, record
from cni_bridge_py.result import DNS, Result
from cni_bridge_py.validate import ifname_problem

DEFAULT_BRIDGE = "cni0"
MAX_VLAN = 4094
MASQ_BACKENDS = ("", "iptables", "nftables")
# logLevel's values (log.LEVELS; repeated here so that a config error never loads log.py).
LOG_LEVELS = ("error", "info", "debug")
# Re-exported: the verbs read both sections through this module.
__all__ = ["DEFAULT_BRIDGE", "HostLocalConf", "IpamConf", "NetConf", "parse"]


@record(frozen=True)
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
    # The container interface's MAC: CNI_ARGS MAC < args.cni.mac < runtimeConfig.mac.
    runtime_mac: str = ""
    # VLANs on the bridge port: 0 = none; trunk = (min, max) ranges of tagged VLANs.
    vlan: int = 0
    vlan_trunk: tuple[tuple[int, int], ...] = ()
    preserve_default_vlan: bool = True
    mac_spoof_check: bool = False
    enable_dad: bool = False
    disable_container_interface: bool = False
    port_isolation: bool = False
    # "" = pick the backend that works on this host.
    ip_masq_backend: str = ""
    # GC: the (containerID, ifname) pairs the runtime still has (cni.dev/valid-attachments).
    valid_attachments: frozenset[tuple[str, str]] = frozenset()
    # A cluster network: host-local's subnet is the node's lease (cluster/leased.py).
    cluster: ClusterConf | None = None
    # The request log (log.py): "" = none; the level is "info" unless the config says.
    log_file: str = ""
    log_level: str = "info"


def parse(
    data: Mapping[str, Any],
    cni_version: str,
    cni_args: Mapping[str, str] | None = None,
    command: str = "ADD",
) -> NetConf:
    """Build a NetConf from an already-decoded JSON object whose version was checked: every
    config error of the request is found here, before anything is changed.

    `cni_args` are the parsed CNI_ARGS (IP= and MAC= requests); `command` the verb, which
    decides what else is read (ipam.config.parse_ipam; the valid attachments for GC)."""
    problems: list[str] = []
    top = Fields(data, "", problems)
    args = cni_args or {}
    runtime = top.obj("runtimeConfig")
    name = top.get("name", str, "")
    cluster = parse_cluster(top, name)
    conf = NetConf(
        cni_version=cni_version,
        name=name,
        type=top.get("type", str, ""),
        dns=_dns(dns_fields) if (dns_fields := top.obj("dns")) else DNS(),
        ipam=parse_ipam(top, name, command, args.get("IP", ""), leased=cluster is not None),
        prev_result=_prev_result(data.get("prevResult"), cni_version, problems),
        runtime_mac=_mac_request(top, runtime, args.get("MAC", "")),
        valid_attachments=parse_valid_attachments(top) if command == "GC" else frozenset(),
        cluster=cluster,
        **_bridge_options(top),
        **_vlan_options(top),
        **_log_options(top),
    )
    if conf.disable_container_interface and conf.ipam is not None:
        problems.append('"disableContainerInterface" cannot be used with "ipam"')
    if cluster is not None and (conf.ipam is None or conf.ipam.host_local is None):
        problems.append('"cluster" needs "ipam" of type "host-local" (it allocates the lease)')
    if problems:
        raise invalid_config(problems)
    if command == "ADD":
        require_one_per_family(conf.ipam, cni_version)
    return conf


def _bridge_options(top: Fields) -> dict[str, Any]:
    bridge = top.get("bridge", str, DEFAULT_BRIDGE) or DEFAULT_BRIDGE
    if (why := ifname_problem(bridge)) is not None:
        top.problem("bridge", f"{bridge!r} is not a valid interface name: {why}")
    mtu = top.get("mtu", int, 0)
    if mtu and not 68 <= mtu <= 65535:
        top.problem("mtu", f"{mtu} is outside 68..65535")
    hairpin = top.get("hairpinMode", bool, False)
    promisc = top.get("promiscMode", bool, False)
    if hairpin and promisc:
        top.problems.append('"hairpinMode" and "promiscMode" cannot both be true')
    backend = top.get("ipMasqBackend", str, "")
    if backend not in MASQ_BACKENDS:
        top.problem("ipMasqBackend", f'{backend!r} is not "iptables" or "nftables"')
    is_default_gateway = top.get("isDefaultGateway", bool, False)
    return {
        "bridge": bridge,
        "mtu": mtu,
        "hairpin_mode": hairpin,
        "promisc_mode": promisc,
        "is_gateway": top.get("isGateway", bool, False) or is_default_gateway,
        "is_default_gateway": is_default_gateway,
        "force_address": top.get("forceAddress", bool, False),
        "ip_masq": top.get("ipMasq", bool, False),
        "ip_masq_backend": backend,
        "mac_spoof_check": top.get("macspoofchk", bool, False),
        "enable_dad": top.get("enabledad", bool, False),
        "disable_container_interface": top.get("disableContainerInterface", bool, False),
        "port_isolation": top.get("portIsolation", bool, False),
    }


def _log_options(top: Fields) -> dict[str, Any]:
    log_file = top.get("logFile", str, "")
    if log_file and not log_file.startswith("/"):
        # A plugin's working directory is the runtime's business: a relative path would move.
        top.problem("logFile", f"{log_file!r} is not an absolute path")
    level = top.get("logLevel", str, "") or "info"
    if level not in LOG_LEVELS:
        top.problem("logLevel", f"{level!r} is not one of " + ", ".join(map(repr, LOG_LEVELS)))
    return {"log_file": log_file, "log_level": level}


def _vlan_options(top: Fields) -> dict[str, Any]:
    vlan = top.get("vlan", int, 0)
    if not 0 <= vlan <= MAX_VLAN:
        top.problem("vlan", f"invalid VLAN ID {vlan} (must be between 0 and {MAX_VLAN})")
    trunk: list[tuple[int, int]] = []
    for entry in top.objects("vlanTrunk"):
        low, high = entry.get("minID", int, -1), entry.get("maxID", int, -1)
        single = entry.get("id", int, -1)
        if low != -1 or high != -1:
            if not (1 <= low <= high <= MAX_VLAN):
                entry.problem(
                    "minID",
                    f"incorrect trunk minID/maxID ({low}, {high}):"
                    f" need 1 <= minID <= maxID <= {MAX_VLAN}",
                )
                continue
            trunk.append((low, high))
        elif single != -1:
            if not 1 <= single <= MAX_VLAN:
                entry.problem("id", f"incorrect trunk id {single}: need 1..{MAX_VLAN}")
                continue
            trunk.append((single, single))
        else:
            entry.problem("id", 'a trunk entry needs "id" or "minID" and "maxID"')
    return {
        "vlan": vlan,
        "vlan_trunk": tuple(trunk),
        "preserve_default_vlan": top.get("preserveDefaultVlan", bool, True),
    }


def _mac_request(top: Fields, runtime: Fields | None, from_cni_args: str) -> str:
    """CNI_ARGS MAC < args.cni.mac < runtimeConfig.mac, as the reference ranks them."""
    mac, source = from_cni_args, "CNI_ARGS MAC"
    args = top.obj("args")
    cni = args.obj("cni") if args else None
    if cni is not None and (text := cni.get("mac", str, "")):
        mac, source = text, '"args.cni.mac"'
    if runtime is not None and (text := runtime.get("mac", str, "")):
        mac, source = text, '"runtimeConfig.mac"'
    return _mac(mac, source, top.problems)


def _mac(text: str, source: str, problems: list[str]) -> str:
    if not text:
        return ""
    parts = text.split(":")
    if len(parts) != 6 or not all(
        len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts
    ):
        problems.append(f"{source} {text!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
        return ""
    return text.lower()


def _dns(fields: Fields) -> DNS:
    return DNS(
        nameservers=fields.strings("nameservers"),
        domain=fields.get("domain", str, ""),
        search=fields.strings("search"),
        options=fields.strings("options"),
    )


def parse_prev_result(value: object, cni_version: str) -> Result | None:
    """A config's "prevResult" alone, as parse reads it (config_memo: the rest of a config
    parsed before, this request's prevResult now); InvalidConfig as parse raises it when the
    rest of the config has no problem."""
    problems: list[str] = []
    prev = _prev_result(value, cni_version, problems)
    if problems:
        raise invalid_config(problems)
    return prev


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
