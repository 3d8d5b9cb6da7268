"""Put/Get/DeleteBucketLifecycleConfiguration, validated as S3 validates them.

The configuration is kept in the bucket's config (dates as epoch seconds, each rule with its ID:
S3 makes one up when a rule has none) and returned as it was given. The rules run from the
scheduler (lifecycle_run.py); lifecycle_rules.py says what they do and when. The checks and their
messages are S3's: MalformedXML for what the schema forbids, InvalidArgument and InvalidRequest
with S3's texts for the rest (Days of a transition to STANDARD_IA/ONEZONE_IA at least 30, the
transition waterfall with 30 days in an IA class and 90 in GLACIER_IR/GLACIER before the next,
an expiration after every transition, no mixing of Date and Days in one rule).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.s3.core import S3Core
from strata.services.s3.lifecycle_rules import (
    DAY,
    INFREQUENT_ACCESS,
    MIN_SIZE_DEFAULT,
    MIN_SIZE_SETTINGS,
    RANK,
    stamp,
)
from strata.services.s3.names import MAX_TAG_KEY, MAX_TAG_VALUE

MAX_RULES = 1000
MAX_ID = 255
MAX_SIZE = 1099511627776000  # the largest ObjectSize filter S3 accepts
# Days an object must stay in a class before a rule may move it further down the waterfall.
MIN_STAY = {"STANDARD_IA": 30, "ONEZONE_IA": 30, "GLACIER_IR": 90, "GLACIER": 90}


def malformed() -> ServiceError:
    return ServiceError(
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema",
        400,
    )


def invalid_argument(message: str, name: str | None = None, value: Any = None) -> ServiceError:
    fields = {"ArgumentName": name, "ArgumentValue": str(value)} if name else None
    return ServiceError("InvalidArgument", message, 400, fields=fields)


def invalid_request(message: str) -> ServiceError:
    return ServiceError("InvalidRequest", message, 400)


def no_lifecycle(bucket: str) -> ServiceError:
    return ServiceError(
        "NoSuchLifecycleConfiguration",
        "The lifecycle configuration does not exist",
        404,
        fields={"BucketName": bucket},
    )


def _describe(rule: dict) -> str:
    """How S3 names a rule's filter in its messages: `filter '(prefix=logs/)'`."""
    if "Filter" not in rule:
        return f"prefix '{rule.get('Prefix', '')}'"
    f = rule.get("Filter") or {}
    node = f.get("And") or f
    parts = []
    if node.get("Prefix") is not None:
        parts.append(f"prefix={node['Prefix']}")
    for t in ([node["Tag"]] if node.get("Tag") else []) + list(node.get("Tags") or []):
        parts.append(f"tag: key={t.get('Key')}, value={t.get('Value', '')}")
    if node.get("ObjectSizeGreaterThan") is not None:
        parts.append(f"size>{node['ObjectSizeGreaterThan']}")
    if node.get("ObjectSizeLessThan") is not None:
        parts.append(f"size<{node['ObjectSizeLessThan']}")
    return f"filter '({' and '.join(parts)})'"


def _midnight(value: Any) -> float:
    ts = stamp(value)
    if ts % DAY:
        raise invalid_argument("'Date' must be at midnight GMT", "Date", value)
    return ts


def _filter(rule: dict) -> tuple[bool, bool]:
    """Check a rule's Filter; (uses tags, uses sizes)."""
    f = rule.get("Filter") or {}
    given = [k for k in ("Prefix", "Tag", "And", "ObjectSizeGreaterThan", "ObjectSizeLessThan") if k in f]
    if len(given) > 1:
        raise malformed()
    node = f.get("And") if "And" in f else f
    if node is None:
        raise malformed()
    tags = ([node["Tag"]] if node.get("Tag") is not None else []) + list(node.get("Tags") or [])
    if (
        "And" in f
        and len(tags)
        + sum(node.get(k) is not None for k in ("Prefix", "ObjectSizeGreaterThan", "ObjectSizeLessThan"))
        < 2
    ):
        raise malformed()
    keys = set()
    for t in tags:
        key, value = t.get("Key"), t.get("Value")
        if key is None or value is None:
            raise malformed()
        if key in keys:
            raise invalid_request("Duplicate Tag Keys are not allowed.")
        keys.add(key)
        if not 1 <= len(key) <= MAX_TAG_KEY:
            raise invalid_request("A Tag's Key must be a length between 1 and 128.")
        if len(value) > MAX_TAG_VALUE:
            raise invalid_request("A Tag's Value must be a length between 0 and 256.")
    greater, less = node.get("ObjectSizeGreaterThan"), node.get("ObjectSizeLessThan")
    if greater is not None and not 0 <= greater <= MAX_SIZE:
        raise invalid_request(f"'ObjectSizeGreaterThan' should be between 0 and {MAX_SIZE}.")
    if less is not None and not 1 <= less <= MAX_SIZE:
        raise invalid_request(f"'ObjectSizeLessThan' should be between 1 and {MAX_SIZE}.")
    if greater is not None and less is not None and greater >= less:
        raise invalid_request("'ObjectSizeLessThan' has to be a value greater than 'ObjectSizeGreaterThan'.")
    return bool(tags), greater is not None or less is not None


def _positive(value: Any, field: str, action: str) -> None:
    if value is None:
        raise malformed()
    if value <= 0:
        raise invalid_argument(f"'{field}' for {action} action must be a positive integer", field, value)


def _class(value: Any) -> str:
    if value not in RANK or value in ("STANDARD", "REDUCED_REDUNDANCY"):
        raise malformed()
    return value


def _transition_order(rule: dict, steps: list[tuple[float, str]], action: str, field: str) -> None:
    """Transitions go down the waterfall, later, and after the minimum stay in each class."""
    what = _describe(rule)
    ordered = sorted(steps, key=lambda s: RANK[s[1]])
    for (warm_at, warm), (cold_at, cold) in zip(ordered, ordered[1:], strict=False):
        gap = (cold_at - warm_at) / (DAY if field == "Date" else 1)
        if gap <= 0:
            raise invalid_argument(
                f"'{field}' in the '{action}' action for StorageClass '{cold}' for {what} must be greater "
                f"than '{field}' in the '{action}' action for StorageClass '{warm}' for {what}",
                field,
                cold_at,
            )
        stay = MIN_STAY.get(warm, 0)
        if gap < stay:
            raise invalid_argument(
                f"'{field}' in the '{action}' action for StorageClass '{cold}' for {what} must be {stay} "
                f"days more than '{what}' in the '{action}' action for StorageClass '{warm}'",
                field,
                cold_at,
            )


def check_rule(rule: dict, v2: bool) -> dict:
    """Validate one rule; the rule as stored (dates as epoch seconds)."""
    if rule.get("Status") not in ("Enabled", "Disabled"):
        raise malformed()
    has_filter, has_prefix = "Filter" in rule, "Prefix" in rule
    if has_filter and has_prefix:
        raise invalid_request(
            "Base level prefix cannot be used in Lifecycle V2, prefixes are only supported in the Filter."
        )
    if not has_filter and not has_prefix:
        raise malformed()
    if has_filter != v2:
        raise invalid_request("Filter element can only be used in Lifecycle V2.")
    tags, sizes = _filter(rule) if has_filter else (False, False)
    actions = ("Expiration", "Transitions", "NoncurrentVersionTransitions", "NoncurrentVersionExpiration")
    if not any(rule.get(a) for a in (*actions, "AbortIncompleteMultipartUpload")):
        raise invalid_request("At least one action needs to be specified in a rule")
    out = {k: v for k, v in rule.items() if v is not None}
    what = _describe(rule)

    exp = rule.get("Expiration")
    exp_kind = None
    if exp is not None:
        given = [k for k in ("Date", "Days", "ExpiredObjectDeleteMarker") if exp.get(k) is not None]
        if len(given) != 1:
            raise malformed()
        exp_kind = given[0]
        if exp_kind == "Days":
            _positive(exp["Days"], "Days", "Expiration")
        elif exp_kind == "Date":
            out["Expiration"] = {"Date": _midnight(exp["Date"])}
        else:
            for used, name in ((tags, "Tags"), (sizes, "Object Size")):
                if used:
                    raise invalid_request(f"ExpiredObjectDeleteMarker cannot be specified with {name}.")

    steps: list[tuple[float, str]] = []
    kinds = set()
    stored = []
    seen: set[str] = set()
    for t in rule.get("Transitions") or []:
        cls = _class(t.get("StorageClass"))
        if (t.get("Days") is None) == (t.get("Date") is None):
            raise malformed()
        if cls in seen:
            raise invalid_request(
                f"'StorageClass' must be different for 'Transition' actions in same 'Rule' with {what}"
            )
        seen.add(cls)
        if t.get("Days") is not None:
            days = t["Days"]
            if days < 0:
                raise invalid_argument("'Days' in Transition action must be nonnegative", "Days", days)
            if days < 30 and cls in INFREQUENT_ACCESS:
                raise invalid_argument(
                    f"'Days' in Transition action must be greater than or equal to 30 for storageClass '{cls}'",
                    "Days",
                    days,
                )
            kinds.add("Days")
            steps.append((float(days), cls))
            stored.append({"Days": days, "StorageClass": cls})
        else:
            at = _midnight(t["Date"])
            kinds.add("Date")
            steps.append((at, cls))
            stored.append({"Date": at, "StorageClass": cls})
    if stored:
        out["Transitions"] = stored
    if len(kinds) > 1:
        raise invalid_request(
            f"Found mixed 'Date' and 'Days' based Transition actions in lifecycle rule for {what}"
        )
    if kinds and exp_kind in ("Date", "Days") and kinds != {exp_kind}:
        raise invalid_request(
            f"Found mixed 'Date' and 'Days' based Expiration and Transition actions in lifecycle rule for {what}"
        )
    if steps:
        field = next(iter(kinds))
        _transition_order(rule, steps, "Transition", field)
        if exp_kind in ("Date", "Days"):
            expires = float(exp["Days"]) if exp_kind == "Days" else out["Expiration"]["Date"]
            if expires <= max(at for at, _ in steps):
                raise invalid_argument(
                    f"'{field}' in the Expiration action for {what} must be greater than '{field}' in the "
                    "Transition action",
                    field,
                    exp[exp_kind],
                )

    nce = rule.get("NoncurrentVersionExpiration")
    if nce is not None:
        _positive(nce.get("NoncurrentDays"), "NoncurrentDays", "NoncurrentVersionExpiration")
        if nce.get("NewerNoncurrentVersions") is not None:
            if not v2:
                raise invalid_request("NewerNoncurrentVersions element can only be used in Lifecycle V2.")
            _positive(
                nce["NewerNoncurrentVersions"], "NewerNoncurrentVersions", "NoncurrentVersionExpiration"
            )
    nc_steps: list[tuple[float, str]] = []
    seen = set()
    for t in rule.get("NoncurrentVersionTransitions") or []:
        cls = _class(t.get("StorageClass"))
        days = t.get("NoncurrentDays")
        if days is None:
            raise malformed()
        if days < 0:
            raise invalid_argument(
                "'NoncurrentDays' in NoncurrentVersionTransition action must be nonnegative",
                "NoncurrentDays",
                days,
            )
        if days < 30 and cls in INFREQUENT_ACCESS:
            raise invalid_argument(
                "'NoncurrentDays' in NoncurrentVersionTransition action must be greater than or equal to 30 "
                f"for storageClass '{cls}'",
                "NoncurrentDays",
                days,
            )
        if cls in seen:
            raise invalid_request(
                f"'StorageClass' must be different for 'NoncurrentVersionTransition' actions in same 'Rule' with {what}"
            )
        seen.add(cls)
        if t.get("NewerNoncurrentVersions") is not None:
            if not v2:
                raise invalid_request("NewerNoncurrentVersions element can only be used in Lifecycle V2.")
            _positive(t["NewerNoncurrentVersions"], "NewerNoncurrentVersions", "NoncurrentVersionTransition")
        nc_steps.append((float(days), cls))
    if nc_steps:
        _transition_order(rule, nc_steps, "NoncurrentVersionTransition", "NoncurrentDays")
        if nce is not None and nce["NoncurrentDays"] <= max(d for d, _ in nc_steps):
            raise invalid_argument(
                f"'NoncurrentDays' in the NoncurrentVersionExpiration action for {what} must be greater than "
                "'NoncurrentDays' in the NoncurrentVersionTransition action",
                "NoncurrentDays",
                nce["NoncurrentDays"],
            )

    abort = rule.get("AbortIncompleteMultipartUpload")
    if abort is not None:
        _positive(abort.get("DaysAfterInitiation"), "DaysAfterInitiation", "AbortIncompleteMultipartUpload")
        for used, name in ((tags, "Tags"), (sizes, "Object Size")):
            if used:
                raise invalid_request(f"AbortIncompleteMultipartUpload cannot be specified with {name}.")
    return out


def check_configuration(config: dict | None, min_size: str | None) -> dict:
    """Validate a LifecycleConfiguration; the document to store."""
    rules = (config or {}).get("Rules")
    if not rules:
        raise malformed()
    if len(rules) > MAX_RULES:
        raise invalid_request(
            f"The number of lifecycle rules must not exceed the allowed limit of {MAX_RULES} rules."
        )
    if min_size is not None and min_size not in MIN_SIZE_SETTINGS:
        raise invalid_request("Invalid TransitionDefaultMinimumObjectSize found")
    ids: set[str] = set()
    for rule in rules:
        rid = rule.get("ID") or ""
        if len(rid) > MAX_ID:
            raise invalid_argument(f"ID length should not exceed allowed limit of {MAX_ID}", "ID", rid)
        if rid and rid in ids:
            raise invalid_argument("Rule ID must be unique. Found same ID for more than one rule", "ID", rid)
        ids.add(rid)
    v2 = "Filter" in rules[0]
    stored = []
    for rule in rules:
        checked = check_rule(rule, v2)
        if not checked.get("ID"):
            checked["ID"] = _new_id(ids)
        stored.append(checked)
    return {"Rules": stored, "TransitionDefaultMinimumObjectSize": min_size or MIN_SIZE_DEFAULT}


def _new_id(taken: set[str]) -> str:
    while True:
        rid = uuid.uuid4().hex
        if rid not in taken:
            taken.add(rid)
            return rid


def to_wire(stored: dict) -> dict:
    """The stored configuration as GetBucketLifecycleConfiguration returns it (dates as datetimes)."""
    rules = []
    for rule in stored["Rules"]:
        r = dict(rule)
        if r.get("Expiration", {}).get("Date") is not None:
            r["Expiration"] = {"Date": datetime.fromtimestamp(r["Expiration"]["Date"], UTC)}
        if r.get("Transitions"):
            r["Transitions"] = [
                {**t, "Date": datetime.fromtimestamp(t["Date"], UTC)} if "Date" in t else t
                for t in r["Transitions"]
            ]
        rules.append(r)
    return {
        "Rules": rules,
        "TransitionDefaultMinimumObjectSize": stored["TransitionDefaultMinimumObjectSize"],
    }


class LifecycleOperations(S3Core):
    async def put_bucket_lifecycle_configuration(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        self._require_bucket(req["Bucket"])
        doc = check_configuration(
            req.get("LifecycleConfiguration"), req.get("TransitionDefaultMinimumObjectSize")
        )

        def write() -> None:
            bucket = self._bucket_for_write(req["Bucket"])
            self.store.set_bucket_field(bucket.name, "config", {**bucket.config, "lifecycle": doc})

        await self._write(write, bucket=req["Bucket"])
        return {"TransitionDefaultMinimumObjectSize": doc["TransitionDefaultMinimumObjectSize"]}

    def get_bucket_lifecycle_configuration(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        bucket = self._require_bucket(req["Bucket"])
        stored = bucket.config.get("lifecycle")
        if not stored:
            raise no_lifecycle(bucket.name)
        return to_wire(stored)

    async def delete_bucket_lifecycle(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        self._require_bucket(req["Bucket"])

        def write() -> None:
            bucket = self._bucket_for_write(req["Bucket"])
            config = {k: v for k, v in bucket.config.items() if k != "lifecycle"}
            self.store.set_bucket_field(bucket.name, "config", config)

        await self._write(write, bucket=req["Bucket"])
        return {}
