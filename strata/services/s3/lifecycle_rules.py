"""S3 lifecycle rules as S3 applies them: which objects a rule names, and when each action falls due.

A stored configuration (lifecycle.py validates it) is compiled once into `Rules`. Due times follow
S3: a rule's Days count from the object's creation (for noncurrent actions, from when it became
noncurrent) and land on the next midnight UTC, which is when S3's daily lifecycle run acts; a
Date is a midnight already, and an object created after it is acted on at the first midnight of
its life.

`plan_key` works out, for the versions of one key and a simulated instant `until`, everything
S3 would have done to them by then, in the order it would have happened: expirations (deletion,
or a delete marker stamped with the instant it fell due), noncurrent expirations, removal of
expired delete markers, and the storage class each surviving version ends in. It depends only on
the versions and `until`, so running it again changes nothing, and one jump of a year plans what
365 daily runs would have done.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import formatdate
from typing import Any

DAY = 86400.0
# Objects below this size are not transitioned unless a rule's filter names a smaller
# ObjectSizeGreaterThan (S3's TransitionDefaultMinimumObjectSize `all_storage_classes_128K`).
SMALL_OBJECT = 128 * 1024
MIN_SIZE_DEFAULT = "all_storage_classes_128K"
MIN_SIZE_SETTINGS = (MIN_SIZE_DEFAULT, "varies_by_storage_class")
# Classes `varies_by_storage_class` lets small objects transition to.
SMALL_OBJECT_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})
# S3's transition waterfall: an object only moves to a class further down.
RANK = {
    "STANDARD": 0,
    "REDUCED_REDUNDANCY": 0,
    "STANDARD_IA": 1,
    "INTELLIGENT_TIERING": 2,
    "ONEZONE_IA": 3,
    "GLACIER_IR": 4,
    "GLACIER": 5,
    "DEEP_ARCHIVE": 6,
}
INFREQUENT_ACCESS = frozenset({"STANDARD_IA", "ONEZONE_IA"})


def next_midnight(ts: float) -> float:
    """The first midnight UTC at or after `ts` (S3 rounds every due time up to one)."""
    return math.ceil(ts / DAY) * DAY


def stamp(value: Any) -> float:
    """A rule's Date (stored as epoch seconds, or a datetime from the wire) as epoch seconds."""
    return value.timestamp() if isinstance(value, datetime) else float(value)


@dataclass(frozen=True)
class Rule:
    id: str
    prefix: str
    tags: tuple[tuple[str, str], ...]
    greater: int | None  # ObjectSizeGreaterThan
    less: int | None  # ObjectSizeLessThan
    expiration_days: int | None
    expiration_date: float | None
    delete_marker: bool  # ExpiredObjectDeleteMarker
    transitions: tuple[tuple[int | None, float | None, str], ...]  # (days, date, class)
    noncurrent_transitions: tuple[tuple[int, int | None, str], ...]  # (days, newer, class)
    noncurrent_days: int | None
    noncurrent_newer: int | None
    abort_days: int | None

    def matches(self, key: str, size: int, tags: dict[str, str] | None, marker: bool = False) -> bool:
        if not key.startswith(self.prefix):
            return False
        if marker:  # a delete marker has no size or tags: only prefix rules name it
            return not self.tags and self.greater is None and self.less is None
        if self.greater is not None and not size > self.greater:
            return False
        if self.less is not None and not size < self.less:
            return False
        if self.tags:
            have = tags or {}
            return all(have.get(k) == v for k, v in self.tags)
        return True

    def expires_at(self, created: float) -> float | None:
        if self.expiration_days is not None:
            return next_midnight(created + self.expiration_days * DAY)
        if self.expiration_date is not None:
            return max(self.expiration_date, next_midnight(created))
        return None

    def transition_targets(
        self, created: float, size: int, small_to_archive: bool
    ) -> list[tuple[float, str]]:
        """(due, class) of this rule's transitions of an object of `size` created at `created`."""
        out = []
        for days, date, cls in self.transitions:
            if not self._size_allows(size, cls, small_to_archive):
                continue
            if days is not None:
                due = next_midnight(created + days * DAY)
            else:
                due = max(date or 0.0, next_midnight(created))
                if cls in INFREQUENT_ACCESS:  # S3 keeps an object 30 days before IA
                    due = max(due, next_midnight(created + 30 * DAY))
            out.append((due, cls))
        return out

    def _size_allows(self, size: int, cls: str, small_to_archive: bool) -> bool:
        if self.greater is not None or size >= SMALL_OBJECT:
            return True
        return small_to_archive and cls in SMALL_OBJECT_CLASSES


@dataclass
class Version:
    """One version of a key as the planner sees it (newest first in a key's list)."""

    id: int | None  # None: a delete marker the plan adds
    version_id: str
    dm: bool
    size: int
    modified: float
    storage_class: str
    tags: dict[str, str] | None = None
    noncurrent_since: float | None = None  # None while current
    target: str | None = None  # the class the plan moves it to
    class_since: float | None = None  # when it entered storage_class (None: at creation)
    moved_at: float | None = None  # when the plan's transition fell due
    removed_at: float | None = None  # when the plan's removal fell due
    noncurrent_moves: list[tuple[float, str]] | None = None  # (due, class) once noncurrent
    matching: list[Rule] | None = None  # the rules naming it (computed once per plan)
    current_moves: list[tuple[float, str]] | None = None  # (due, class) of current transitions
    locked_until: float | None = None  # Object Lock: not removable before (inf: legal hold)


@dataclass
class Plan:
    """What lifecycle does to one key by `until`."""

    delete: list[Version] = field(default_factory=list)  # existing versions removed
    marker: Version | None = None  # a delete marker to add (stamped when it fell due)
    moves: list[Version] = field(default_factory=list)  # versions whose class changes (v.target)
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n


class Rules:
    """A bucket's enabled lifecycle rules, compiled from the stored configuration."""

    def __init__(self, stored: dict[str, Any]) -> None:
        self.rules = [compile_rule(r) for r in stored.get("Rules", []) if r.get("Status") == "Enabled"]
        self.small_to_archive = stored.get("TransitionDefaultMinimumObjectSize") == "varies_by_storage_class"
        self.uses_tags = any(r.tags for r in self.rules)
        self.expiring = [r for r in self.rules if r.expires_at(0.0) is not None]
        self.aborting = [r for r in self.rules if r.abort_days is not None]
        # The key ranges worth scanning: everything, unless every rule names a prefix.
        prefixes = sorted({r.prefix for r in self.rules})
        self.prefixes = (
            []
            if "" in prefixes
            else [p for p in prefixes if not any(p != q and p.startswith(q) for q in prefixes)]
        )

    def expiration(
        self, key: str, size: int, tags: dict[str, str] | None, created: float
    ) -> tuple[float, str] | None:
        """(when, rule id) the current version will expire: the earliest matching rule."""
        best: tuple[float, str] | None = None
        for r in self.expiring:
            if r.matches(key, size, tags):
                at = r.expires_at(created)
                if at is not None and (best is None or at < best[0]):
                    best = (at, r.id)
        return best

    def expiration_header(
        self, key: str, size: int, tags: dict[str, str] | None, created: float
    ) -> str | None:
        """The `x-amz-expiration` value S3 sends for an object a rule will expire."""
        found = self.expiration(key, size, tags, created)
        if found is None:
            return None
        return f'expiry-date="{formatdate(found[0], usegmt=True)}", rule-id="{found[1]}"'

    def abort_due(self, key: str, initiated: float) -> float | None:
        due = None
        for r in self.aborting:
            if key.startswith(r.prefix):
                at = next_midnight(initiated + (r.abort_days or 0) * DAY)
                due = at if due is None else min(due, at)
        return due

    # -- planning --------------------------------------------------------------------------------

    def plan_key(self, key: str, versions: list[Version], versioning: str, until: float) -> Plan:
        """Everything lifecycle does to one key's versions (newest first) by `until`."""
        plan = Plan()
        live = list(versions)
        for i in range(1, len(live)):
            if live[i].noncurrent_since is None:
                live[i].noncurrent_since = live[i - 1].modified
        last_removal: float | None = None
        for _ in range(2 * len(live) + 4):  # each step removes or adds a version: bounded
            event = self._next_event(key, live, last_removal, until)
            if event is None:
                break
            at, kind, index = event
            if kind == "expire":
                current = live[0]
                if not versioning:
                    self._remove(plan, live, 0, at)
                else:
                    current.noncurrent_since = at
                    marker = Version(
                        None, "null" if versioning == "Suspended" else "", True, 0, at, "STANDARD"
                    )
                    if versioning == "Suspended":  # the marker replaces the null version
                        for j in range(len(live) - 1, -1, -1):
                            if live[j].version_id == "null":
                                self._remove(plan, live, j, at)
                    live.insert(0, marker)
                plan.count("expired")
            elif kind == "noncurrent":
                self._remove(plan, live, index, at)
                last_removal = at
                plan.count("noncurrent_expired")
            else:  # an expired delete marker
                self._remove(plan, live, 0, at)
                plan.count("delete_markers_removed")
        if live and live[0].id is None:
            plan.marker = live[0]
        newer = 0  # noncurrent versions newer than live[i]
        for i, v in enumerate(live):
            if i > 0 and v.noncurrent_since is not None:
                v.noncurrent_moves = self._noncurrent_moves(key, v, live, i, newer)
                newer += not v.dm
            if v.dm or v.id is None:
                continue
            target, moved_at = self._class_at(key, v, until)
            if target != v.storage_class:
                v.target, v.moved_at = target, moved_at
                plan.moves.append(v)
                plan.count(f"transitioned_to_{target}")
        return plan

    def storage_timeline(self, key: str, v: Version, since: float, until: float) -> list[tuple[str, float]]:
        """(class, seconds) a version planned by `plan_key` was stored in each class in (since, until]."""
        start = max(since, v.modified)
        end = min(until, v.removed_at) if v.removed_at is not None else until
        if end <= start or v.dm:
            return []
        current_end = end if v.noncurrent_since is None else min(end, v.noncurrent_since)
        changes = [(due, cls) for due, cls in self._current_moves(key, v) if start < due <= current_end]
        for r in self._rules_for(key, v):
            if v.noncurrent_since is not None and v.noncurrent_moves is None:  # removed by the plan
                for days, _keep, cls in r.noncurrent_transitions:
                    due = next_midnight(v.noncurrent_since + days * DAY)
                    if start < due <= end and r._size_allows(v.size, cls, self.small_to_archive):
                        changes.append((due, cls))
        changes += [(due, cls) for due, cls in v.noncurrent_moves or () if start < due <= end]
        out: list[tuple[str, float]] = []
        cls, at = v.storage_class, start
        for due, target in sorted(changes):
            if RANK[target] > RANK.get(cls, 0):
                out.append((cls, due - at))
                cls, at = target, due
        out.append((cls, end - at))
        return out

    def _rules_for(self, key: str, v: Version) -> list[Rule]:
        if v.matching is None:
            v.matching = [r for r in self.rules if r.matches(key, v.size, v.tags, marker=v.dm)]
        return v.matching

    def _current_moves(self, key: str, v: Version) -> list[tuple[float, str]]:
        if v.current_moves is None:
            v.current_moves = [
                move
                for r in self._rules_for(key, v)
                if r.transitions
                for move in r.transition_targets(v.modified, v.size, self.small_to_archive)
            ]
        return v.current_moves

    def _remove(self, plan: Plan, live: list[Version], index: int, at: float) -> None:
        v = live.pop(index)
        v.removed_at = at
        if v.id is not None:
            plan.delete.append(v)

    def _next_event(
        self, key: str, live: list[Version], last_removal: float | None, until: float
    ) -> tuple[float, str, int] | None:
        best: tuple[float, str, int] | None = None
        if not live:
            return None
        current = live[0]
        if not current.dm:
            found = self.expiration(key, current.size, current.tags, current.modified)
            if found is not None and found[0] <= until:
                best = (found[0], "expire", 0)
        elif len(live) == 1:
            due = self._marker_due(key, current, last_removal)
            if due is not None and due <= until:
                best = (due, "marker", 0)
        newer = 0  # noncurrent versions newer than live[i]
        for i in range(1, len(live)):
            v = live[i]
            due = self._noncurrent_expiry(key, live, i, newer)
            if due is not None and v.locked_until is not None:  # S3 expires it once unlocked
                due = max(due, v.locked_until)
            if due is not None and due <= until and (best is None or due < best[0]):
                best = (due, "noncurrent", i)
            if not v.dm:
                newer += 1
        return best

    def _marker_due(self, key: str, marker: Version, last_removal: float | None) -> float | None:
        """When an expired delete marker (the only version left) goes."""
        alone = next_midnight(max(marker.modified, last_removal or 0.0))
        due = None
        for r in self.rules:
            if not r.matches(key, 0, None, marker=True):
                continue
            if r.delete_marker:
                at = alone
            elif r.expiration_days is not None:  # S3 also clears markers old enough for Days
                at = max(alone, next_midnight(marker.modified + r.expiration_days * DAY))
            else:
                continue
            due = at if due is None else min(due, at)
        return due

    def _noncurrent_expiry(self, key: str, live: list[Version], i: int, newer: int) -> float | None:
        v = live[i]
        since = v.noncurrent_since if v.noncurrent_since is not None else v.modified
        due = None
        for r in self._rules_for(key, v):
            if r.noncurrent_days is None:
                continue
            at = next_midnight(since + r.noncurrent_days * DAY)
            if r.noncurrent_newer is not None:
                if newer < r.noncurrent_newer:
                    continue
                at = max(at, next_midnight(self._newer_since(live, i, r.noncurrent_newer)))
            due = at if due is None else min(due, at)
        return due

    @staticmethod
    def _newer_since(live: list[Version], i: int, n: int) -> float:
        """When live[i] got its n-th newer noncurrent version (the retained ones are full)."""
        seen = 0
        for j in range(i - 1, 0, -1):
            if not live[j].dm:
                seen += 1
                if seen == n:
                    return live[j].noncurrent_since or live[j].modified
        return live[i].noncurrent_since or live[i].modified

    def _class_at(self, key: str, v: Version, until: float) -> tuple[str, float | None]:
        """The class a version is in at `until` — the furthest down the waterfall any due
        transition reached (current-version transitions only while it was current) — and when
        that transition fell due."""
        best, at = v.storage_class, None
        rank = RANK.get(best, 0)
        current_until = until if v.noncurrent_since is None else min(until, v.noncurrent_since)
        for due, cls in self._current_moves(key, v):
            if due <= current_until and RANK[cls] > rank:
                best, rank, at = cls, RANK[cls], due
        for due, cls in v.noncurrent_moves or ():
            if due <= until and RANK[cls] > rank:
                best, rank, at = cls, RANK[cls], due
        return best, at

    def _noncurrent_moves(
        self, key: str, v: Version, live: list[Version], i: int, newer: int
    ) -> list[tuple[float, str]]:
        """(due, class) of the noncurrent transitions of live[i], which has `newer` noncurrent
        versions newer than it (NewerNoncurrentVersions keeps that many where they are)."""
        out = []
        since = v.noncurrent_since or v.modified
        for r in self._rules_for(key, v):
            for days, keep, cls in r.noncurrent_transitions:
                if not r._size_allows(v.size, cls, self.small_to_archive):
                    continue
                due = next_midnight(since + days * DAY)
                if keep is not None:
                    if newer < keep:
                        continue
                    due = max(due, next_midnight(self._newer_since(live, i, keep)))
                out.append((due, cls))
        return out


def compile_rule(r: dict[str, Any]) -> Rule:
    """A stored rule (the shape GetBucketLifecycleConfiguration returns, dates as epoch seconds)."""
    f = r.get("Filter")
    prefix = r.get("Prefix", "") or ""
    tags: list[tuple[str, str]] = []
    greater = less = None
    if f:
        node = f.get("And") or f
        prefix = node.get("Prefix", "") or ""
        for t in ([node["Tag"]] if node.get("Tag") else []) + list(node.get("Tags") or []):
            tags.append((t["Key"], t.get("Value", "")))
        greater, less = node.get("ObjectSizeGreaterThan"), node.get("ObjectSizeLessThan")
    exp = r.get("Expiration") or {}
    nce = r.get("NoncurrentVersionExpiration") or {}
    abort = r.get("AbortIncompleteMultipartUpload") or {}
    return Rule(
        id=r.get("ID", ""),
        prefix=prefix,
        tags=tuple(tags),
        greater=greater,
        less=less,
        expiration_days=exp.get("Days"),
        expiration_date=stamp(exp["Date"]) if exp.get("Date") is not None else None,
        delete_marker=bool(exp.get("ExpiredObjectDeleteMarker")),
        transitions=tuple(
            (t.get("Days"), stamp(t["Date"]) if t.get("Date") is not None else None, t["StorageClass"])
            for t in r.get("Transitions") or []
        ),
        noncurrent_transitions=tuple(
            (t["NoncurrentDays"], t.get("NewerNoncurrentVersions"), t["StorageClass"])
            for t in r.get("NoncurrentVersionTransitions") or []
        ),
        noncurrent_days=nce.get("NoncurrentDays"),
        noncurrent_newer=nce.get("NewerNoncurrentVersions"),
        abort_days=abort.get("DaysAfterInitiation"),
    )
