"""Which subnet a node takes (pure): the node subnets of the cluster range, its own first.

Candidates come in a random order, so that nodes joining at once rarely try the same one; a
loser of the etcd transaction just moves on to the next candidate.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Collection, Iterator


def node_subnets(
    cluster_range: ipaddress.IPv4Network, subnet_len: int
) -> Iterator[ipaddress.IPv4Network]:
    return cluster_range.subnets(new_prefix=subnet_len)


def candidates(
    cluster_range: ipaddress.IPv4Network,
    subnet_len: int,
    taken: Collection[ipaddress.IPv4Network],
    preferred: ipaddress.IPv4Network | None = None,
    rng: random.Random | None = None,
) -> list[ipaddress.IPv4Network]:
    """Free subnets in the order to try them: `preferred` (the one this node had, from its
    local file) first when it is still free and still a subnet of the range."""
    free = [s for s in node_subnets(cluster_range, subnet_len) if s not in taken]
    (rng or random.Random()).shuffle(free)
    if preferred is not None and preferred in free:
        free.remove(preferred)
        free.insert(0, preferred)
    return free


def fits(subnet: ipaddress.IPv4Network, cluster_range: ipaddress.IPv4Network, length: int) -> bool:
    return subnet.prefixlen == length and subnet.subnet_of(cluster_range)
