"""Object Lock's rules, apart from the operations (object_lock.py): what a request's lock
headers and the bucket's default give a new version, when a version may be removed, what GET
and HEAD report. Pure functions of stored state and the simulated time they are given."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from strata.protocol.errors import ServiceError
from strata.services.s3.store import BucketRow, ObjectRow

MODES = ("GOVERNANCE", "COMPLIANCE")
DAY = 86400.0
MAX_DAYS = 36500  # S3's longest default retention: 100 years
MAX_YEARS = 100
LOCK_ATTRS = ("retention", "legal_hold")  # where a version keeps its lock
_LOCK_HEADERS = ("ObjectLockMode", "ObjectLockRetainUntilDate", "ObjectLockLegalHoldStatus")


def malformed() -> ServiceError:
    return ServiceError(
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema",
        400,
    )


def invalid(message: str) -> ServiceError:
    return ServiceError("InvalidArgument", message, 400)


def missing_configuration() -> ServiceError:
    return ServiceError("InvalidRequest", "Bucket is missing Object Lock Configuration", 400)


def protected() -> ServiceError:
    return ServiceError("AccessDenied", "Access Denied because object protected by object lock.", 403)


def lock_enabled(bucket: BucketRow) -> bool:
    return bool((bucket.config.get("object_lock") or {}).get("enabled"))


def locked_until(attrs: dict[str, Any]) -> float | None:
    """Until when a version cannot be removed (inf under a legal hold; None: not locked)."""
    if attrs.get("legal_hold") == "ON":
        return math.inf
    retention = attrs.get("retention")
    return retention["until"] if retention else None


def timestamp(value: Any) -> float:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    raise invalid("The retain until date must be a valid date")


def _add_years(at: float, years: int) -> float:
    d = datetime.fromtimestamp(at, UTC)
    try:
        return d.replace(year=d.year + years).timestamp()
    except ValueError:  # 29 February in a year that has none
        return d.replace(year=d.year + years, day=28).timestamp()


def default_retention(bucket: BucketRow, now: float) -> dict[str, Any] | None:
    """The retention the bucket's default rule gives a version written at `now` (None: no rule)."""
    rule = (bucket.config.get("object_lock") or {}).get("rule")
    if not rule:
        return None
    if rule.get("Years"):
        until = _add_years(now, int(rule["Years"]))
    else:
        until = now + int(rule["Days"]) * DAY
    return {"Mode": rule["Mode"], "until": until}


def lock_attrs(bucket: BucketRow, req: dict, now: float, *, defaults: bool = True) -> dict[str, Any]:
    """The lock attrs of a version a PutObject/CopyObject/CreateMultipartUpload request writes:
    its own retention and legal hold headers, else the bucket's default retention ({} for none).

    InvalidRequest when the headers are sent to a bucket without Object Lock; InvalidArgument
    for a half-given retention, an unknown mode or status, or a date not in the future. With
    `defaults=False` the bucket's default is left for later (a multipart upload gets it when it
    completes, as the object is created then).
    """
    mode, until, hold = (req.get(h) for h in _LOCK_HEADERS)
    if not lock_enabled(bucket):
        if mode or until or hold:
            raise missing_configuration()
        return {}
    out: dict[str, Any] = {}
    if mode or until:
        if not (mode and until):
            raise invalid(
                "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied"
            )
        if mode not in MODES:
            raise invalid("Unknown wormMode directive.")
        at = timestamp(until)
        if at <= now:
            raise invalid("The retain until date must be in the future!")
        out["retention"] = {"Mode": mode, "until": at}
    elif defaults:
        retention = default_retention(bucket, now)
        if retention is not None:
            out["retention"] = retention
    if hold:
        if hold not in ("ON", "OFF"):
            raise invalid("Legal Hold must be either of 'ON' or 'OFF'")
        out["legal_hold"] = hold
    return out


def require_integrity_header(req: dict) -> None:
    """S3 wants an integrity check on any upload that Object Lock protects: Content-MD5 or an
    x-amz-checksum-* / x-amz-sdk-checksum-algorithm header (SDKs send one by themselves)."""
    if req.get("ContentMD5") or req.get("ChecksumAlgorithm"):
        return
    if any(k.startswith("Checksum") and k != "ChecksumMode" and req.get(k) for k in req):
        return
    raise ServiceError(
        "InvalidRequest",
        "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters",
        400,
    )


def _to_datetime(ts: float) -> datetime:
    return datetime.fromtimestamp(int(ts * 1000) / 1000, UTC)


def lock_headers(attrs: dict[str, Any]) -> dict[str, Any]:
    """The x-amz-object-lock-* members GET and HEAD report for a version."""
    out: dict[str, Any] = {}
    retention = attrs.get("retention")
    if retention:
        out["ObjectLockMode"] = retention["Mode"]
        out["ObjectLockRetainUntilDate"] = _to_datetime(retention["until"])
    if attrs.get("legal_hold"):
        out["ObjectLockLegalHoldStatus"] = attrs["legal_hold"]
    return out


def check_removable(row: ObjectRow, bypass: bool, now: float) -> None:
    """AccessDenied unless the version may be deleted now: no legal hold, and no retention in
    force (GOVERNANCE gives way to `bypass`, which the authorizer has allowed by then)."""
    if row.dm:
        return
    if row.attrs.get("legal_hold") == "ON":
        raise protected()
    retention = row.attrs.get("retention")
    if retention and retention["until"] > now:
        if retention["Mode"] == "COMPLIANCE" or not bypass:
            raise protected()


def rule_of(config: dict) -> dict[str, Any] | None:
    """The stored default rule of an ObjectLockConfiguration document (validated as S3 does)."""
    if config.get("ObjectLockEnabled") != "Enabled":
        raise malformed()
    rule = config.get("Rule")
    if rule is None:
        return None
    default = rule.get("DefaultRetention") if isinstance(rule, dict) else None
    if not isinstance(default, dict):
        raise malformed()
    if default.get("DefaultEventHold"):
        raise ServiceError("NotImplemented", "DefaultEventHold is not implemented by Strata", 501)
    mode, days, years = default.get("Mode"), default.get("Days"), default.get("Years")
    if mode not in MODES or (days is None) == (years is None):
        raise malformed()
    period, limit = (days, MAX_DAYS) if days is not None else (years, MAX_YEARS)
    if period <= 0:
        raise invalid("Default retention period must be a positive integer value.")
    if period > limit:
        raise invalid("Default retention period is too large.")
    return {"Mode": mode, "Days": days} if days is not None else {"Mode": mode, "Years": years}
