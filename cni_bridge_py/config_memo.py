"""A resident process's parsed network configs, kept under an exact image of their inputs.

Every request of a network sends the same config: ADD and DEL the same bytes, CHECK the same
but for its prevResult. config.parse is pure and costs ~50 us here, ~0.18 ms in an agent
between requests (the code is cold), so the agent parses a config once and then only each
request's prevResult. What is kept is what parse returned, without prevResult, under an image
of everything it read: the config but prevResult, the CNI version, the verb and CNI_ARGS.
A config that does not parse is never kept: it is parsed, and refused, every time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cni_bridge_py import config
from cni_bridge_py.record import replace
from cni_bridge_py.request import Request

LIMIT = 256  # networks are few; a churn of configs only costs re-parsing


class ParsedConfigs:
    """config.parse for one request after another. Threads share it: a lookup or a store is
    one dict operation, and two threads parsing the same config keep equal results."""

    def __init__(self, limit: int = LIMIT) -> None:
        self._limit = limit
        self._kept: dict[object, config.NetConf] = {}

    def parse(self, request: Request) -> config.NetConf:
        data = request.config
        rest = {k: v for k, v in data.items() if k != "prevResult"}
        key = (request.cni_version, request.command, image(request.args), image(rest))
        conf = self._kept.get(key)
        if conf is None:
            # The whole config, prevResult too: a refusal names every problem, as always.
            conf = config.parse(data, request.cni_version, request.args, request.command)
            if len(self._kept) >= self._limit:
                self._kept.clear()
            self._kept[key] = conf if conf.prev_result is None else replace(conf, prev_result=None)
            return conf
        if "prevResult" not in data:
            return conf
        return replace(
            conf, prev_result=config.parse_prev_result(data["prevResult"], request.cni_version)
        )


def image(value: Any) -> object:
    """A hashable image of decoded JSON, equal only for equal JSON: each value carries its
    type, since Python takes True == 1 == 1.0, and a config's `true` and `1` parse apart."""
    if isinstance(value, Mapping):
        return (dict, tuple((key, image(item)) for key, item in value.items()))
    if isinstance(value, list):
        return (list, tuple(image(item) for item in value))
    if isinstance(value, float):
        return (float, repr(value))  # -0.0 == 0.0, yet they print apart
    return (type(value), value)
