"""STATUS succeeds when an ADD could succeed now, and answers code 50 with the reason when not."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from cni_bridge_py.errors import PluginUnavailable
from cni_bridge_py.ipam.config import DEFAULT_DATA_DIR
from tests.doubles.ipam import ReadOnlyStore
from tests.doubles.world import World
from tests.unit.verbs.support import netconf, run


def status_conf(**top: Any) -> dict[str, Any]:
    return netconf(cniVersion="1.1.0", **top)


def unavailable(world: World, conf: dict[str, Any]) -> tuple[int, str]:
    with pytest.raises(PluginUnavailable) as caught:
        run(world, "STATUS", conf)
    return caught.value.code, caught.value.msg


def test_status_on_a_fresh_host(world: World) -> None:
    assert run(world, "STATUS", status_conf()) == ""
    assert world.calls.log == []


def test_status_with_the_bridge_already_there(world: World) -> None:
    world.host.put("cni0", "bridge")
    assert run(world, "STATUS", status_conf()) == ""


def test_status_in_l2_mode(world: World) -> None:
    conf = status_conf(isGateway=False, isDefaultGateway=False, ipMasq=False)
    del conf["ipam"]
    assert run(world, "STATUS", conf) == ""
    assert world.stores == {}


def test_a_store_that_cannot_take_a_reservation(world: World) -> None:
    world.stores[(DEFAULT_DATA_DIR, "testnet")] = ReadOnlyStore()
    assert unavailable(world, status_conf()) == (
        50,
        "host-local cannot record reservations: the IPAM data dir is not writable",
    )


def test_a_full_range(world: World) -> None:
    conf = status_conf(ipam={"type": "host-local", "subnet": "10.0.0.0/30"})
    world.store("testnet").reserve("red", "eth0", ipaddress.ip_address("10.0.0.2"), 0)
    assert unavailable(world, conf) == (
        50,
        "no IP addresses available in range set 0: 10.0.0.1-10.0.0.2",
    )


def test_masquerade_without_any_backend() -> None:
    world = World(masq=())
    assert unavailable(world, status_conf()) == (
        50,
        "ipMasq is set but no usable masquerade backend (iptables or nftables) exists on this host",
    )


def test_masquerade_with_the_configured_backend_missing() -> None:
    world = World(masq=("iptables",))
    assert unavailable(world, status_conf(ipMasqBackend="nftables")) == (
        50,
        "ipMasq is set but no usable masquerade backend (nftables) exists on this host",
    )


def test_the_bridge_name_taken_by_another_kind(world: World) -> None:
    world.host.put("cni0", "dummy")
    assert unavailable(world, status_conf()) == (
        50,
        "'cni0' exists but is not a bridge, so ADD would fail",
    )
