"""Where a validated request runs: in the resident agent when one answers, else right here."""

from __future__ import annotations

from cni_bridge_py import agent_client, config
from cni_bridge_py.front import Request, Response


def agent_or_here(request: Request) -> str | Response:
    # Config errors are answered by the front, without a round trip: the agent only ever
    # sees requests that parse.
    config.parse(request.config, request.cni_version, request.args)
    answer = agent_client.forward(request.environ, request.stdin, request.cni_version)
    if answer is not None:
        return answer
    from cni_bridge_py.verbs import dispatch  # noqa: PLC0415 - loads pyroute2: one-shot only

    return dispatch(request)
