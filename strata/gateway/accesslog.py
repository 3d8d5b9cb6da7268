"""One line per request: time, service, operation, status, duration, request id.

Lines are buffered and written in batches (at most every 0.2 s, or at 64 KiB): a write(2) per
request would cost more than serving a small request. Timestamps are the simulated clock's, so a
log read after `strata clock advance 30d` tells the time the cloud believed it was.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time as _time

from strata.sim.clock import clock

_FLUSH_SECONDS = 0.2
_FLUSH_BYTES = 64 * 1024


class AccessLog:
    def __init__(self, fd: int | None = None, enabled: bool = True) -> None:
        self.enabled = enabled
        self._fd = fd if fd is not None else sys.stderr.fileno()
        self._lines: list[str] = []
        self._size = 0
        self._scheduled = False
        self._second = -1
        self._stamp = ""

    def record(self, service: str, operation: str, status: int, duration_ms: float, request_id: str) -> None:
        if not self.enabled:
            return
        now = clock.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(second))
        line = f"{self._stamp}.{int((now - second) * 1000):03d}Z access {service} {operation} {status} {duration_ms:.1f}ms {request_id}\n"
        self._lines.append(line)
        self._size += len(line)
        if self._size >= _FLUSH_BYTES:
            self.flush()
        elif not self._scheduled:
            try:
                asyncio.get_running_loop().call_later(_FLUSH_SECONDS, self.flush)
                self._scheduled = True
            except RuntimeError:  # no loop (called from a thread): write now
                self.flush()

    def flush(self) -> None:
        self._scheduled = False
        if not self._lines:
            return
        data = "".join(self._lines).encode("utf-8", "replace")
        self._lines.clear()
        self._size = 0
        try:
            os.write(self._fd, data)
        except OSError:
            pass
