"""S3 Intelligent-Tiering: objects of class INTELLIGENT_TIERING move between access tiers by how
they are used, on the simulated clock.

An object not accessed for 30 days is in the Infrequent Access tier, after 90 days in Archive
Instant Access; an access (GET, or a restore) brings it back to Frequent Access. A bucket's
Intelligent-Tiering configurations (Put/Get/List/DeleteBucketIntelligentTieringConfiguration)
opt the objects they name into the archive tiers after their Days without access (Archive
Access: 90-730, Deep Archive Access: 180-730); an object there cannot be read (GET answers
InvalidObjectState with its AccessTier; HEAD shows `x-amz-archive-status`) until RestoreObject
brings it back, which takes the tier's retrieval time. Objects below 128 KiB stay in Frequent
Access, as in S3.

The tier is derived from when the object was last accessed (`attrs["accessed"]`, else its
creation) and the configurations, so it is right at every instant whatever ran; the scheduler's
run records each object's tier (`attrs["tier"]`) and reports the moves. Accesses are kept in
memory and written at each run and at stop (a kill -9 loses the accesses since the last run:
those objects may show a colder tier than they should until they are read again).
"""

from __future__ import annotations

DAY = 86400.0
SMALL = 128 * 1024  # objects below this size are not monitored: always Frequent Access
FREQUENT, INFREQUENT, ARCHIVE_INSTANT = "FREQUENT_ACCESS", "INFREQUENT_ACCESS", "ARCHIVE_INSTANT_ACCESS"
ARCHIVE, DEEP_ARCHIVE = "ARCHIVE_ACCESS", "DEEP_ARCHIVE_ACCESS"
AUTOMATIC = ((90 * DAY, ARCHIVE_INSTANT), (30 * DAY, INFREQUENT))  # idle time -> tier, coldest first
ARCHIVE_DAYS = {ARCHIVE: (90, 730), DEEP_ARCHIVE: (180, 730)}
ARCHIVE_TIERS = frozenset(ARCHIVE_DAYS)
RETRIEVAL = {ARCHIVE: 3 * 3600.0, DEEP_ARCHIVE: 12 * 3600.0}  # Standard retrieval, lower bound
MAX_CONFIGURATIONS = 1000


def filter_tags(node: dict) -> list[tuple[str, str]]:
    tags = ([node["Tag"]] if node.get("Tag") is not None else []) + list(node.get("Tags") or [])
    return [(t.get("Key", ""), t.get("Value", "")) for t in tags]


def archive_after(configs: dict[str, dict], key: str, tags: dict[str, str] | None) -> list[tuple[float, str]]:
    """(idle seconds, archive tier) the enabled configurations naming this object opt it into."""
    out: dict[str, float] = {}
    for config in configs.values():
        if config.get("Status") != "Enabled":
            continue
        f = config.get("Filter") or {}
        node = f.get("And") or f
        if not key.startswith(node.get("Prefix") or ""):
            continue
        have = tags or {}
        if not all(have.get(k) == v for k, v in filter_tags(node)):
            continue
        for t in config.get("Tierings") or []:
            at = t["Days"] * DAY
            out[t["AccessTier"]] = min(at, out.get(t["AccessTier"], at))
    return sorted(((at, tier) for tier, at in out.items()), reverse=True)


def tier_at(size: int, accessed: float, now: float, archive: list[tuple[float, str]]) -> str:
    """The access tier of an Intelligent-Tiering object last accessed at `accessed`."""
    if size < SMALL:
        return FREQUENT
    idle = now - accessed
    for after, tier in [*archive, *AUTOMATIC]:
        if idle >= after:
            return tier
    return FREQUENT


def tier_spans(
    size: int, accessed: float, start: float, end: float, archive: list[tuple[float, str]]
) -> list[tuple[str, float]]:
    """(tier, seconds) an object not accessed since `accessed` spent in each tier in [start, end]."""
    marks = sorted({0.0, *(after for after, _ in AUTOMATIC), *(after for after, _ in archive)})
    out = []
    for i, mark in enumerate(marks):
        lo = max(start, accessed + mark)
        hi = min(end, accessed + marks[i + 1]) if i + 1 < len(marks) else end
        if hi > lo:
            out.append((tier_at(size, accessed, accessed + mark, archive), hi - lo))
    return out
