"""S3's request rates per prefix, felt: 3,500 PUT/COPY/POST/DELETE and 5,500 GET/HEAD requests a
second per partitioned prefix, above which S3 answers 503 SlowDown (AWS's documented limits;
`--s3-request-limits` or STRATA_S3_REQUEST_LIMITS=on turns them on, off by default).

A prefix here is a bucket and the key up to its last `/` (S3 partitions busy prefixes further on
its own; Strata keeps to the documented per-prefix figures). Each (prefix, kind) has a token
bucket on the monotonic clock holding at most one second of its rate, so a burst up to the rate
passes and a sustained excess is refused. The rates are overridable for tests
(STRATA_LIMIT_S3_PREFIX_WRITE_RATE, STRATA_LIMIT_S3_PREFIX_READ_RATE).
"""

from __future__ import annotations

import threading

from strata.sim.clock import clock

WRITE_RATE = 3500  # PUT/COPY/POST/DELETE per second per prefix
READ_RATE = 5500  # GET/HEAD per second per prefix
MAX_TRACKED = 10_000  # prefixes remembered before idle (full) buckets are forgotten


SLOW_DOWN = ("SlowDown", "Please reduce your request rate.", 503)  # (code, message, status)


class PrefixLimits:
    def __init__(self, write_rate: int = WRITE_RATE, read_rate: int = READ_RATE) -> None:
        self.rates = {"write": float(write_rate), "read": float(read_rate)}
        self._buckets: dict[tuple[str, str, str], list[float]] = {}  # -> [tokens, at]
        self._lock = threading.Lock()

    def admit(self, method: str, params: dict) -> bool:
        """Take one request of `method` on the request's prefix; False (answer SLOW_DOWN) when
        the prefix has none left."""
        bucket = params.get("Bucket")
        if not bucket:
            return True  # ListBuckets and the like: no prefix
        key = params.get("Key") or ""
        kind = "read" if method in ("GET", "HEAD") else "write"
        rate = self.rates[kind]
        name = (bucket, key[: key.rfind("/") + 1], kind)
        now = clock.monotonic()
        with self._lock:
            state = self._buckets.get(name)
            if state is None:
                if len(self._buckets) >= MAX_TRACKED:
                    self._forget_idle(now)
                state = self._buckets[name] = [rate, now]
            state[0] = min(rate, state[0] + (now - state[1]) * rate)
            state[1] = now
            if state[0] < 1:
                return False
            state[0] -= 1
            return True

    def _forget_idle(self, now: float) -> None:
        self._buckets = {
            name: s
            for name, s in self._buckets.items()
            if s[0] + (now - s[1]) * self.rates[name[2]] < self.rates[name[2]]
        }
