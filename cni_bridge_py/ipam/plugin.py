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
from cni_bridge_py.answer import Answer
from cni_bridge_py.cli import serve
from cni_bridge_py.errors import InvalidConfig
from cni_bridge_py.fields import Fields
from cni_bridge_py.ipam.allocator import Attachment
from cni_bridge_py.ipam.config import (
    IpamConf,
    invalid_config,
    parse_host_local,
    parse_valid_attachments,
    require_one_per_family,
)
from cni_bridge_py.request import Notes, Request
from cni_bridge_py.result import Result


def about() -> str:
    supported = ", ".join(versions.SUPPORTED_VERSIONS)
    return (
        f"CNI host-local IPAM plugin (cni-host-local-py) v{__version__}\n"
        f"CNI protocol versions supported: {supported}\n"
    )


def handle(env: Mapping[str, str], stdin: bytes) -> Answer:
    if not env.get("CNI_COMMAND"):
        return Answer(stderr=about())
    return front.handle(env, stdin, dispatch)


def load(request: Request) -> tuple[IpamConf, frozenset[tuple[str, str]]]:
    """What host-local reads of the main plugin's config: the network's name, the "ipam"
    section (whatever its "type" says, this plugin is host-local) with the runtime's
    additions, and for GC the valid attachments."""
    problems: list[str] = []
    top = Fields(request.config, "", problems)
    section = top.obj("ipam")
    if section is None:
        if problems:
            raise invalid_config(problems)
        raise InvalidConfig(
            "IPAM config missing 'ipam' key", 'the main plugin\'s config needs an "ipam" object'
        )
    adding = request.command == "ADD"
    settings = parse_host_local(section, top, adding=adding, cni_args_ip=request.args.get("IP", ""))
    valid = parse_valid_attachments(top) if request.command == "GC" else frozenset()
    if problems:
        raise invalid_config(problems)
    # The front checked "name".
    ipam = IpamConf(str(request.config["name"]), section.get("type", str, ""), settings)
    if adding:
        require_one_per_family(ipam, request.cni_version)
    return ipam, valid


def dispatch(request: Request, notes: Notes) -> str:
    ipam_conf, valid = load(request)
    # Loaded only for a real request: VERSION and argument errors never open the store.
    from cni_bridge_py.ipam.disk import DiskStore  # noqa: PLC0415
    from cni_bridge_py.ipam.engine import HostLocal  # noqa: PLC0415

    assert ipam_conf.host_local is not None
    ipam = HostLocal(ipam_conf.network, ipam_conf.host_local, DiskStore)
    who = Attachment(request.container_id, request.ifname)
    if request.command == "ADD":
        got = ipam.add(who)
        return Result(ips=got.ips, routes=got.routes, dns=got.dns).to_json(request.cni_version)
    if request.command == "DEL":
        ipam.delete(who)
    elif request.command == "CHECK":
        ipam.check(who)
    elif request.command == "GC":
        ipam.gc(valid)
    elif request.command == "STATUS":
        ipam.status()
    return ""


def main() -> int:
    return serve(handle)


if __name__ == "__main__":
    sys.exit(main())
