"""STATUS (spec 1.1): succeed when ADD could succeed now; code 50 with the reason otherwise."""

from __future__ import annotations

from cni_bridge_py.config import NetConf
from cni_bridge_py.errors import PluginUnavailable
from cni_bridge_py.ports import Ports
from cni_bridge_py.request import Request


def status(request: Request, conf: NetConf, ports: Ports) -> None:
    ports.ipam(conf.ipam, request).status()
    if conf.ip_masq and ports.masq(conf.ip_masq_backend) is None:
        wanted = conf.ip_masq_backend or "iptables or nftables"
        raise PluginUnavailable(
            f"ipMasq is set but no usable masquerade backend ({wanted}) exists on this host",
            "install iptables or nftables, or set ipMasq false",
        )
    bridge = ports.host.link(conf.bridge)
    if bridge is not None and bridge.kind != "bridge":
        raise PluginUnavailable(
            f"{conf.bridge!r} exists but is not a bridge, so ADD would fail",
            'remove that link or choose another "bridge" name',
        )
