"""Whether a chain exists in iptables-nft's nat table, asked in process: iptables-nft keeps
its tables as the nftables tables `ip nat` and `ip6 nat`, which libnftables lists without a
process. A DEL whose chain is absent has nothing to remove in that family (nothing can jump
to a chain that does not exist), so it spawns no iptables process at all: the usual case for
the iptables teardown of a DEL on a network that masquerades with nftables, or a repeated DEL.
"""

from __future__ import annotations

_FAMILIES = {4: "ip", 6: "ip6"}
_MISSING = "No such file or directory"


def chain_exists(family: int, chain: str) -> bool | None:
    """True or False as the kernel says; None when libnftables cannot tell (not loadable, no
    nf_tables, a name it cannot parse): then the caller does as without a probe."""
    from cni_bridge_py.firewall.nft_lib import load  # noqa: PLC0415 - ctypes only when asked

    library = load()
    if library is None:
        return None
    outcome = library.run(f"list chain {_FAMILIES[family]} nat {chain}")
    if outcome.ok:
        return True
    return False if _MISSING in outcome.error else None
