"""etcd v3 through etcd3gw (its JSON gateway over requests): the only importer of etcd3gw.

etcd3gw talks to one endpoint; a cluster has several. Each call goes to the endpoint that
answered last and, when it cannot answer (down, no leader, timed out), to the next one: a
killed member costs one failed request, not an outage. When none answers, StoreUnavailable.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, TypeVar
from urllib.parse import urlsplit

import etcd3gw
import requests
from etcd3gw import exceptions as etcd_errors
from etcd3gw.lease import Lease
from etcd3gw.utils import _encode, _increment_last_byte
from etcd3gw.watch import Watcher

from cni_bridge_py.cluster.ports import Entry, StoreUnavailable

__all__ = ["ChangeWatch", "Entry", "Etcd", "StoreUnavailable"]

# etcd 3.4 and later serve the gateway under /v3/: naming it saves a discovery request.
API_PATH = "/v3/"
# A member that does not answer within this is treated as down for this call.
REQUEST_TIMEOUT = 2.0

log = logging.getLogger("cni-bridge-py.node")
T = TypeVar("T")


class Etcd:
    def __init__(self, endpoints: tuple[str, ...], timeout: float = REQUEST_TIMEOUT) -> None:
        self.endpoints = endpoints
        self._timeout = timeout
        self._clients = [_client(url, timeout) for url in endpoints]
        self._current = 0

    def _call(self, doing: str, work: Any) -> Any:
        """`work(client)` on the current endpoint, then on each other one in turn."""
        failures = []
        for step in range(len(self._clients)):
            index = (self._current + step) % len(self._clients)
            try:
                answer = work(self._clients[index])
            except (etcd_errors.Etcd3Exception, requests.RequestException, ValueError) as exc:
                # ValueError: a half-sent JSON answer from a member going down.
                failures.append(f"{self.endpoints[index]}: {_short(exc)}")
                continue
            if index != self._current:
                log.info("etcd: now using %s", self.endpoints[index])
                self._current = index
            return answer
        raise StoreUnavailable(f"{doing}: " + "; ".join(failures))

    # ---- leases ----
    def grant(self, ttl: int) -> int:
        lease = self._call("granting a lease", lambda c: c.lease(ttl))
        return int(lease.id)

    def keep_alive(self, lease_id: int) -> int:
        """The lease's new TTL, or -1 when it has expired (its keys are gone)."""
        return int(self._call("refreshing the lease", lambda c: Lease(lease_id, c).refresh()))

    def time_to_live(self, lease_id: int) -> tuple[int, int]:
        """(remaining, granted) seconds; remaining is -1 for an expired lease."""

        def ask(client: Any) -> tuple[int, int]:
            answer = client.post(client.get_url("/kv/lease/timetolive"), json={"ID": lease_id})
            return int(answer.get("TTL", -1)), int(answer.get("grantedTTL", 0))

        remaining, granted = self._call("reading a lease", ask)
        return int(remaining), int(granted)

    # ---- keys ----
    def list(self, prefix: str) -> list[Entry]:
        items = self._call(f"listing {prefix}", lambda c: c.get_prefix(prefix))
        return [
            Entry(
                key=_text(meta["key"]),
                value=_bytes(value),
                mod_revision=int(meta.get("mod_revision", 0)),
                lease=int(meta.get("lease", 0)),
            )
            for value, meta in items
        ]

    def create(self, key: str, value: str, lease_id: int) -> bool:
        """Put `key` only if it does not exist (one transaction): False when it did."""
        return self._txn(key, value, lease_id, {"target": "CREATE", "create_revision": 0})

    def replace(self, key: str, value: str, lease_id: int, mod_revision: int) -> bool:
        """Put `key` only if nobody changed it since `mod_revision` (a restarted node takes
        its own key over with its new lease)."""
        return self._txn(key, value, lease_id, {"target": "MOD", "mod_revision": mod_revision})

    def _txn(self, key: str, value: str, lease_id: int, compare: dict[str, Any]) -> bool:
        txn = {
            "compare": [{"key": _encode(key), "result": "EQUAL", **compare}],
            "success": [
                {"request_put": {"key": _encode(key), "value": _encode(value), "lease": lease_id}}
            ],
            "failure": [],
        }
        answer = self._call(f"writing {key}", lambda c: c.transaction(txn))
        return bool(answer.get("succeeded", False))

    def delete(self, key: str) -> None:
        self._call(f"deleting {key}", lambda c: c.delete(key))

    def watch(self, prefix: str, wake: threading.Event) -> ChangeWatch:
        return ChangeWatch(self.endpoints, prefix, wake, self._timeout)


# A watch stream is made anew this often: a stream whose member died ends without telling
# us (etcd3gw reads it in a worker thread), so a dead one is replaced within this time.
WATCH_RENEWAL = 10.0


class ChangeWatch:
    """Sets `wake` as soon as a key under `prefix` changes: the service then syncs at once
    instead of at its next interval. Only an accelerator: the service's listing each
    interval stays the truth, so a missed event costs at most one interval.

    Its own clients (a requests session is not shared between threads), its own thread;
    close() ends the stream, so no etcd3gw worker is left reading it at exit (futurist joins
    its workers then)."""

    def __init__(
        self, endpoints: tuple[str, ...], prefix: str, wake: threading.Event, timeout: float
    ) -> None:
        self._clients = [_client(url, timeout) for url in endpoints]
        self._prefix = prefix
        self._wake = wake
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="etcd-watch", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closing.set()
        self._thread.join(REQUEST_TIMEOUT + 1)

    def _run(self) -> None:
        turn = 0
        while not self._closing.is_set():
            client = self._clients[turn % len(self._clients)]
            try:
                watcher = Watcher(
                    client,
                    self._prefix,
                    lambda _event: self._wake.set(),
                    range_end=_increment_last_byte(self._prefix),
                )
            except (requests.RequestException, etcd_errors.Etcd3Exception, OSError):
                turn += 1  # that member is down: the next one, after a pause
                self._closing.wait(1.0)
                continue
            try:
                self._closing.wait(WATCH_RENEWAL)
            finally:
                watcher.stop()


def _client(url: str, timeout: float) -> Any:
    parts = urlsplit(url)
    return etcd3gw.client(
        host=parts.hostname or "localhost",
        port=parts.port or 2379,
        protocol=parts.scheme or "http",
        timeout=timeout,
        api_path=API_PATH,
    )


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    # requests' connection errors quote the whole urllib3 chain.
    if "Connection refused" in text:
        return "connection refused"
    if "timed out" in text.lower():
        return "timed out"
    return text[:200]


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode()
