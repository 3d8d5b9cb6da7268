"""CloudWatch's request metrics counted over every gateway on one PostgreSQL.

Requests only add to in-memory tallies (strata.sim.request_stats: DynamoDB's per-table request
metrics; strata.sim.bucket_requests: S3's request metrics), as on one gateway. With `--metadata`
each gateway moves them to PostgreSQL once a second (`FLUSH`, a timer on its event loop; nothing
is sent while nothing was counted): one transaction inserting a row per tally key into the
`meter` store's `request_tallies`, and the meter's tally with it, so the DynamoDB capacity events
are there too. CloudWatch's publisher, on the engine host, takes (DELETE ... RETURNING) every row
once a simulated minute (`collect`), after moving its own, and adds the rows of one key up: a
minute's metrics are every gateway's requests.

Nothing is lost for a gateway that stays up: a tally that cannot be written is kept and written
with the next. A gateway killed (-9) loses what it counted since its last flush (at most about a
second of requests), as its meter's unwritten tally; a host killed between taking the rows and
storing the metrics loses that minute's. Rows a gateway writes after a publication are in the
next one, stamped with the minute they were counted in.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from strata.sim import bucket_requests as br
from strata.sim import request_stats as rs
from strata.sim.bucket_requests import bucket_requests
from strata.sim.meter import meter
from strata.sim.request_stats import request_stats

log = logging.getLogger("strata")
FLUSH = 1.0  # real seconds between a gateway's writes of its tallies
SCHEMA = """
CREATE TABLE IF NOT EXISTS request_tallies (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    tally TEXT NOT NULL
);
"""
_INSERT = "INSERT INTO request_tallies(kind, tally) VALUES (?, ?)"
# kind -> (the in-memory tally, positions that add up by min, by max; the others are sums)
_KINDS: dict[str, tuple[Any, int, int]] = {
    "requests": (request_stats, rs.MIN_MS, rs.MAX_MS),
    "buckets": (bucket_requests, br.LAT_MIN, br.LAT_MAX),
}

Tallies = dict[tuple, list[float]]


class SharedTallies:
    """This gateway's flusher, and the publisher's `collect`; see the module docstring."""

    def __init__(self, store: Any) -> None:
        self.store = store  # the `meter` PostgresStore (its schema holds SCHEMA)
        self._unwritten: list[tuple[str, str]] = []
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._every_second())

    async def _every_second(self) -> None:
        while True:
            await asyncio.sleep(FLUSH)
            try:
                await self.flush()
            except Exception as e:  # noqa: BLE001 - kept, written with the next flush
                log.warning("cannot write the request tallies to PostgreSQL: %s (kept for the next try)", e)

    def _take(self) -> list[tuple[str, str]]:
        """The tallies counted since the last take, as rows (on the event loop's thread: the
        tallies' `add` runs there)."""
        rows, self._unwritten = self._unwritten, []
        for kind, (tally, _low, _high) in _KINDS.items():
            rows += [(kind, json.dumps([list(k), t])) for k, t in tally.drain().items()]
        return rows

    async def flush(self) -> None:
        """Write what this gateway counted (and the meter's tally) to PostgreSQL."""
        rows = self._take()
        if not rows and not meter.unwritten:
            return  # (an idle gateway: not even a thread's wake-up)
        try:
            await asyncio.to_thread(self._write, rows)
        except BaseException:
            self._unwritten = rows + self._unwritten
            raise

    def _write(self, rows: list[tuple[str, str]]) -> None:
        meter.flush()  # no statement when nothing was metered
        if rows:
            with self.store.transaction():
                self.store.executemany(_INSERT, rows)

    async def collect(self) -> tuple[Tallies, Tallies]:
        """Every gateway's request tallies not yet published (DynamoDB's, S3's), taken."""
        await self.flush()
        rows = await asyncio.to_thread(self._delete)
        out: dict[str, Tallies] = {kind: {} for kind in _KINDS}
        for kind, text in rows:
            key, t = json.loads(text)
            _add(out[kind], tuple(key), t, *_KINDS[kind][1:])
        return out["requests"], out["buckets"]

    def _delete(self) -> list[tuple[str, str]]:
        with self.store.transaction() as c:
            return c.execute("DELETE FROM request_tallies RETURNING kind, tally").fetchall()

    def close(self) -> None:
        """At shutdown (on the event loop's thread): write what is left."""
        if self._task is not None:
            self._task.cancel()
        try:
            self._write(self._take())
        except Exception as e:  # noqa: BLE001 - shutting down: say what is lost
            log.warning("the last request tallies were not written: %s", e)


def _add(into: Tallies, key: tuple, t: list[float], low: int, high: int) -> None:
    mine = into.get(key)
    if mine is None:
        into[key] = t
        return
    for i, v in enumerate(t):
        mine[i] = min(mine[i], v) if i == low else max(mine[i], v) if i == high else mine[i] + v


tallies: SharedTallies | None = None  # with --metadata (strata.server.share)
