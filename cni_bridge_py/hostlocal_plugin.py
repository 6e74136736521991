"""cni-host-local-py: host-local IPAM as an executable of its own, for any main plugin.

A main plugin (the reference ptp or macvlan, or ours) names it in its config,
"ipam": {"type": "cni-host-local-py", "ranges": ..., "dataDir": ...}, and runs it from CNI_PATH.
It keeps the same front as cni-bridge-py (environment and config validation, VERSION, error
JSON) and the same store code and files as the reference host-local, so both can share a data
dir. ADD prints the IPAM result (no interfaces, no "interface" index); DEL, CHECK, GC (of its
reservations, keeping cni.dev/valid-attachments) and STATUS print nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from cni_bridge_py import __version__, front
from cni_bridge_py import version as versions
from cni_bridge_py.cli import serve
from cni_bridge_py.config import NetConf
from cni_bridge_py.errors import InvalidConfig
from cni_bridge_py.fields import Fields
from cni_bridge_py.ipam.config import (
    IpamConf,
    has_runtime_ranges,
    invalid_config,
    parse_host_local,
    requested_ips,
)
from cni_bridge_py.result import Result


def about() -> str:
    supported = ", ".join(versions.SUPPORTED_VERSIONS)
    return (
        f"CNI host-local IPAM plugin (cni-host-local-py) v{__version__}\n"
        f"CNI protocol versions supported: {supported}\n"
    )


def handle(env: Mapping[str, str], stdin: bytes) -> front.Response:
    if not env.get("CNI_COMMAND"):
        return front.Response(stderr=about())
    return front.handle(env, stdin, dispatch)


def load(request: front.Request) -> NetConf:
    """What host-local reads from the main plugin's config: the network name, the "ipam"
    section and the requested addresses (ipRanges and args are read per verb)."""
    problems: list[str] = []
    top = Fields(request.config, "", problems)
    section = top.obj("ipam")
    if section is None:
        if problems:
            raise invalid_config(problems)
        raise InvalidConfig(
            "IPAM config missing 'ipam' key", 'the main plugin\'s config needs an "ipam" object'
        )
    settings = parse_host_local(section, has_runtime_ranges(request.config))
    wanted = requested_ips(request.args.get("IP", ""), problems)
    if problems:
        raise invalid_config(problems)
    return NetConf(
        cni_version=request.cni_version,
        name=str(request.config["name"]),  # checked by the front
        ipam=IpamConf(section.get("type", str, ""), settings),
        requested_ips=wanted,
    )


def dispatch(request: front.Request) -> str:
    conf = load(request)
    assert conf.ipam is not None and conf.ipam.host_local is not None
    # Loaded only for a real request: VERSION and argument errors never open the store.
    from cni_bridge_py.ipam.disk import DiskStore  # noqa: PLC0415
    from cni_bridge_py.ipam.engine import HostLocal  # noqa: PLC0415

    ipam = HostLocal(conf.ipam.host_local, DiskStore)
    if request.command == "ADD":
        got = ipam.add(request, conf)
        return Result(ips=got.ips, routes=got.routes, dns=got.dns).to_json(conf.cni_version)
    if request.command == "DEL":
        ipam.delete(request, conf)
    elif request.command == "CHECK":
        ipam.check(request, conf)
    elif request.command == "GC":
        ipam.gc(request, conf)
    elif request.command == "STATUS":
        ipam.status(request, conf)
    return ""


def main() -> int:
    return serve(handle)


if __name__ == "__main__":
    sys.exit(main())
