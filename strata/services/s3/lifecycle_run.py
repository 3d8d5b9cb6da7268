"""The `s3.lifecycle` rule of the scheduler: buckets' lifecycle configurations, executed.

Each run walks the objects of every bucket with a lifecycle configuration once (only the key
ranges its rules' prefixes name; the storage of other keys and buckets is metered by one SQL sum
each, storage_meter.py), a chunk of keys per group commit, and does to each key what
`Rules.plan_key` says S3 would have done by the target instant. The work therefore grows with the
number of objects, never with the days the clock jumped: a 365-day jump is one walk. Everything
is decided inside the write that applies it (a key written meanwhile is planned from its new
versions), and a run cut short by a stop or a kill is redone from the start by the scheduler,
which finds the work already done and does nothing twice.

Incomplete multipart uploads past AbortIncompleteMultipartUpload's days are aborted in the same
run, and Intelligent-Tiering objects get the access tier they are in (tiering_rules.py). Lifecycle transitions are metered as S3 bills them (a request per object transitioned), and
a version expired or moved on before its class's minimum duration is charged the rest
(charges.py), at the instant the action fell due.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from strata.services.s3.access_log_lines import lifecycle_records
from strata.services.s3.charges import charge_early_delete
from strata.services.s3.core import S3Core
from strata.services.s3.lifecycle_rules import DAY, Plan, Rules, Version
from strata.services.s3.lock_rules import lock_enabled, locked_until
from strata.services.s3.storage_meter import StorageTally
from strata.services.s3.store import NEW_VERSION, ObjectRow, prefix_end
from strata.services.s3.tiering_rules import FREQUENT, archive_after, tier_at, tier_spans
from strata.sim.meter import meter
from strata.sim.scheduler import scheduler
from strata.sim.server_access_logs import Record, server_access_logs
from strata.storage.shared import is_shared

CHUNK = 500  # object versions planned per group commit (STRATA_LIMIT_S3_LIFECYCLE_CHUNK)
UPLOADS_CHUNK = 500
TIER_CHUNK = 1000
SUM_CHUNK = 20_000  # object versions summed per store write


def _gaps(ranges: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    """The key ranges outside `ranges` (sorted, disjoint [start, end) ranges; [] is everything)."""
    out: list[tuple[str, str | None]] = []
    at: str | None = ""
    for start, end in ranges:
        if at is not None and start > at:
            out.append((at, start))
        at = end
        if at is None:
            break
    if at is not None:
        out.append((at, None))
    return out


def _merge(into: dict[str, int], counts: dict[str, int]) -> None:
    for k, v in counts.items():
        into[k] = into.get(k, 0) + v


class LifecycleRun(S3Core):
    async def start(self) -> None:
        # With several gateways on PostgreSQL, one of them (the scheduler's owner) runs it for all;
        # each writes the Intelligent-Tiering reads it served itself, every simulated minute and
        # at every advance (the owner's run writes only its own).
        shared = is_shared(self.store.db)
        scheduler.register("s3.lifecycle", self._run_lifecycle, every=DAY, shared=shared)
        if shared:
            scheduler.register("s3.accesses", self._write_accesses, every=60.0)

    async def _write_accesses(self, since: float, until: float) -> dict[str, int]:
        count = len(self._accesses)
        await self.store.db.write(self._flush_accesses)
        return {"written": count}

    async def _run_lifecycle(self, since: float, until: float) -> dict[str, int]:
        """Apply every bucket's lifecycle rules up to simulated time `until`, and meter every
        bucket's storage over (since, until] (storage_meter.py); what was done."""
        counts: dict[str, int] = {}
        await self.store.db.write(self._flush_accesses)  # Intelligent-Tiering reads so far
        after_bucket = ""
        while True:
            page = self.store.list_buckets(after=after_bucket, limit=1000)
            for bucket in page:
                await self._run_bucket(bucket.name, since, until, counts)
            if len(page) < 1000:
                return counts
            after_bucket = page[-1].name

    async def _run_bucket(self, name: str, since: float, until: float, counts: dict[str, int]) -> None:
        tally = StorageTally()
        bucket = self.store.bucket(name, cached=False)
        stored = bucket.config.get("lifecycle") if bucket is not None else None
        rules = Rules(stored) if stored else None
        walked = ([(p, prefix_end(p)) for p in rules.prefixes] or [("", None)]) if rules else []
        for start, end in walked:
            after: str | None = None
            while True:
                actions: list[Record] | None = [] if name in server_access_logs.logged else None
                after, freed, done = await self.store.db.write(
                    partial(self._lifecycle_chunk, name, start, end, after, since, until, tally, actions)
                )
                for record in actions or ():  # committed: now they are true (server access logs)
                    server_access_logs.add(record)
                self._free_blobs(freed)
                _merge(counts, done)
                if after is None:
                    break
        for start, end in _gaps(walked):  # keys no rule names: their classes stay put
            await self._sum_storage(name, start, end, since, until, tally)
        after_id = 0
        while after_id is not None:
            after_id, done = await self.store.db.write(
                partial(self._tier_chunk, name, after_id, since, until, tally)
            )
            _merge(counts, done)
        tally.record(name)
        if rules is not None and rules.aborting:
            await self._abort_uploads(name, rules, until, counts)

    async def _sum_storage(
        self, name: str, start: str, end: str | None, since: float, until: float, tally: StorageTally
    ) -> None:
        """Meter the storage of a key range by SQL sums, a chunk of keys per store write (off the
        event loop, and never holding other writes for long)."""

        def chunk(lo: str) -> str | None:
            hi = self.store.key_after(name, lo, end, SUM_CHUNK)
            for cls, byte_seconds, object_seconds in self.store.storage_sums(
                name, lo, hi or end, since, until
            ):
                tally.add_sums(cls, byte_seconds, object_seconds)
            return hi

        lo: str | None = start
        while lo is not None:
            lo = await self.store.db.write(partial(chunk, lo))

    def _lifecycle_chunk(
        self,
        name: str,
        start: str,
        end: str | None,
        after: str | None,
        since: float,
        until: float,
        tally: StorageTally,
        actions: list[Record] | None = None,
    ) -> tuple[str | None, list[str], dict[str, int]]:
        """Plan and apply one chunk of keys (inside a store write); (last key, freed blobs, counts).
        `actions` (a logged bucket) gets a server access log record per action."""
        bucket = self.store.bucket(name, cached=False)
        if bucket is None or not bucket.config.get("lifecycle"):
            return None, [], {}
        rules = Rules(bucket.config["lifecycle"])
        chunk = max(1, self.settings.limit("s3_lifecycle_chunk", CHUNK))
        # A lock-enabled bucket's versions are read with their attrs: a locked one stays.
        with_attrs = rules.uses_tags or lock_enabled(bucket)
        rows = self.store.lifecycle_rows(name, start, after, end, chunk, with_attrs)
        if not rows:
            return None, [], {}
        last = rows[-1][1]
        more = len(rows) == chunk
        if more:  # the last key's versions may go on past the chunk: take them all
            rows = [r for r in rows if r[1] != last]
            rows += self.store.key_rows(name, last, with_attrs)
        freed: list[str] = []
        counts: dict[str, int] = {}
        i = 0
        while i < len(rows):
            key = rows[i][1]
            j = i
            while j < len(rows) and rows[j][1] == key:
                j += 1
            versions = [
                Version(
                    r[0],
                    r[2],
                    bool(r[3]),
                    r[4],
                    r[5],
                    r[6],
                    r[9].get("tags") if r[9] and rules.uses_tags else None,
                    class_since=r[8],
                    locked_until=locked_until(r[9]) if r[9] else None,
                )
                for r in rows[i:j]
            ]
            blobs = {r[0]: r[7] for r in rows[i:j]}
            plan = rules.plan_key(key, versions, bucket.versioning, until)
            for v in versions:
                for cls, seconds in rules.storage_timeline(key, v, since, until):
                    if cls != "INTELLIGENT_TIERING":  # metered per access tier (_tier_chunk)
                        tally.add(cls, v.size, seconds)
            if plan.counts:
                freed += self._apply(name, key, plan, blobs, versions[0].id)
                if actions is not None:
                    actions += lifecycle_records(name, key, plan)
                _merge(counts, plan.counts)
            i = j
        for k, n in counts.items():
            if k.startswith("transitioned_to_"):
                meter.record("s3", f"LifecycleTransition-{k[16:]}", n, "request", bucket=name)
        return (last if more else None), freed, counts

    def _apply(
        self, name: str, key: str, plan: Plan, blobs: dict[int | None, Any], newest: int | None
    ) -> list[str]:
        store = self.store
        freed = []
        removed_latest = False
        for v in plan.delete:
            store.db.execute("DELETE FROM objects WHERE id = ?", (v.id,))
            if not v.dm:
                charge_early_delete(
                    name, v.storage_class, v.size, v.class_since or v.modified, v.removed_at or 0.0
                )
            removed_latest = removed_latest or v.id == newest
            blob = blobs.get(v.id)
            if blob and not store.blob_referenced(blob):
                freed.append(blob)
        for v in plan.moves:
            moved_at = v.moved_at or 0.0
            store.set_class(v.id or 0, v.target or v.storage_class, moved_at)
            charge_early_delete(name, v.storage_class, v.size, v.class_since or v.modified, moved_at)
        if plan.marker is not None:
            m = plan.marker
            row = ObjectRow(
                0, name, key, m.version_id or NEW_VERSION, True, True, None, 0, "", m.modified, "STANDARD", {}
            )
            freed += store.insert_version(row, replace_null=m.version_id == "null")
        elif removed_latest:
            store.make_newest_latest(name, key)
        return freed

    def _tier_chunk(
        self, name: str, after_id: int, since: float, until: float, tally: StorageTally
    ) -> tuple[int | None, dict[str, int]]:
        """Record the access tier of a chunk of Intelligent-Tiering versions at `until` and meter
        their storage per tier (inside a store write); (id to go on after, moves)."""
        bucket = self.store.bucket(name, cached=False)
        rows = self.store.tiered_rows(name, after_id, TIER_CHUNK)
        if bucket is None or not rows:
            return None, {}
        configs = self._tiering_configs(bucket)
        counts: dict[str, int] = {}
        for row_id, key, size, modified, attrs in rows:
            archive = archive_after(configs, key, attrs.get("tags"))
            accessed = attrs.get("accessed", modified)
            restore = attrs.get("restore") or {}
            if restore.get("access_tier") and restore["ready"] <= until:
                accessed = max(accessed, restore["ready"])
            tier = tier_at(size, accessed, until, archive)
            if tier != attrs.get("tier", FREQUENT):
                self.store.set_tier(row_id, tier)
                counts[f"tiered_to_{tier}"] = counts.get(f"tiered_to_{tier}", 0) + 1
            start = max(since, attrs.get("class_since", modified))
            if accessed > start:  # read in this span: how it was tiered before is not kept
                tally.add(f"INTELLIGENT_TIERING-{FREQUENT}", size, min(accessed, until) - start)
                start = accessed
            for t, seconds in tier_spans(size, accessed, start, until, archive):
                tally.add(f"INTELLIGENT_TIERING-{t}", size, seconds)
        return (rows[-1][0] if len(rows) == TIER_CHUNK else None), counts

    async def _abort_uploads(self, name: str, rules: Rules, until: float, counts: dict[str, int]) -> None:
        after = ""
        while True:
            page = self.store.uploads_page(name, after, UPLOADS_CHUNK)
            due = [
                u
                for u, key, initiated in page
                if (at := rules.abort_due(key, initiated)) is not None and at <= until
            ]
            if due:

                def abort(ids: list[str] = due) -> list[str]:
                    freed = []
                    for upload_id in ids:
                        if self.store.upload(upload_id) is not None:
                            freed += self.store.delete_upload(upload_id)
                    return freed

                self._free_blobs(await self.store.db.write(abort))
                _merge(counts, {"uploads_aborted": len(due)})
            if len(page) < UPLOADS_CHUNK:
                return
            after = page[-1][0]
