"""A stand-in agent on a unix socket: records each request and answers with a canned reply, as
the real agent would, so the front's side is tested without the verbs."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from types import TracebackType

from cni_bridge_py.agent.protocol import (
    AgentRequest,
    decode_request,
    encode_answer,
    read_frame,
)

CANNED = b'{"from":"agent"}'


class FakeAgent:
    def __init__(self, path: Path, stdout: bytes = CANNED) -> None:
        self.path = path
        self.stdout = stdout
        self.seen: list[AgentRequest] = []
        self._listener = socket.socket(socket.AF_UNIX)
        self._listener.bind(str(path))
        self._listener.listen(8)
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with conn:
                self.seen.append(decode_request(read_frame(conn)))
                conn.sendall(encode_answer(0, self.stdout, b""))

    def __enter__(self) -> FakeAgent:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # shutdown wakes the thread blocked in accept(); close alone would not
        self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(5)
