"""host-local's "resolvConf": a resolv.conf-format file read into the result's "dns"."""

from __future__ import annotations

from cni_bridge_py.errors import IOFailure
from cni_bridge_py.result import DNS

# A resolv.conf is a few lines; anything bigger is not one.
MAX_BYTES = 1 << 20


def parse_resolv_conf(text: str) -> DNS:
    """nameserver, domain, search and options lines, as the reference reads them: later
    "domain" lines win, the others accumulate; comments (# or ;) and other keys are skipped."""
    nameservers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    domain = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        words = line.split()
        if len(words) < 2:
            continue
        key, values = words[0], words[1:]
        if key == "nameserver":
            nameservers.append(values[0])
        elif key == "domain":
            domain = values[0]
        elif key == "search":
            search.extend(values)
        elif key == "options":
            options.extend(values)
    return DNS(tuple(nameservers), domain, tuple(search), tuple(options))


def read_resolv_conf(path: str) -> DNS:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES)
    except OSError as exc:
        raise IOFailure(
            f"cannot read the IPAM resolvConf file {path}",
            f'{exc.strerror or exc}; fix "ipam.resolvConf" or create the file',
        ) from exc
    return parse_resolv_conf(data.decode(errors="replace"))
