"""Running a plugin executable as libcni does: retried while the file is being replaced."""

from __future__ import annotations

import errno
import subprocess
import time
from collections.abc import Mapping

# libcni retries "text file busy" five times, 1 s apart: six attempts in all.
BUSY_ATTEMPTS = 6
BUSY_DELAY_S = 1.0


def run_plugin(
    path: str, env: Mapping[str, str], stdin: bytes
) -> subprocess.CompletedProcess[bytes]:
    """What the plugin did; OSError at once for anything but ETXTBSY, or after the last try."""
    for attempt in range(1, BUSY_ATTEMPTS + 1):
        try:
            return subprocess.run(
                [path], input=stdin, env=dict(env), capture_output=True, check=False
            )
        except OSError as exc:
            if exc.errno != errno.ETXTBSY or attempt == BUSY_ATTEMPTS:
                raise
        time.sleep(BUSY_DELAY_S)  # being installed right now: it will be back
    raise AssertionError("unreachable: the last attempt returns or raises")
