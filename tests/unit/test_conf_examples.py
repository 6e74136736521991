"""The example configs in conf/ are valid for our plugin (and stay so)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cni_bridge_py import config

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
EXAMPLES = sorted(CONF_DIR.glob("*.conflist"))


def test_there_are_examples() -> None:
    assert any(p.name == "mynet.conflist" for p in EXAMPLES)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_parses(path: Path) -> None:
    conflist = json.loads(path.read_text())
    ours = [p for p in conflist["plugins"] if p["type"] == "cni-bridge-py"]
    assert ours, "each example starts with our plugin"
    for plugin in ours:
        conf = config.parse({**plugin, "name": conflist["name"]}, conflist["cniVersion"])
        assert conf.name == conflist["name"]


def test_seed_network_is_the_tutorial_one() -> None:
    conflist = json.loads((CONF_DIR / "mynet.conflist").read_text())
    conf = config.parse({**conflist["plugins"][0], "name": "mynet"}, conflist["cniVersion"])
    assert conf.bridge == "v-net-0" and conf.is_gateway and conf.ip_masq
    assert conf.ipam is not None and conf.ipam.host_local is not None
    [range_set] = conf.ipam.host_local.range_sets
    assert str(range_set.ranges[0].subnet) == "192.168.15.0/24"
    assert str(range_set.ranges[0].gateway) == "192.168.15.5"
