"""What the PartiQL operations answer besides items: NextToken, per-statement errors, capacity.

NextToken carries the LastEvaluatedKey of a Query/Scan page and a digest of the statement, so a
token is refused with another statement ("NextToken does not match request") and a forged one is
"Invalid NextToken" rather than a crash.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from strata.protocol.errors import ServiceError
from strata.services.dynamodb.errors import validation

_KEY_TYPES = ("S", "N", "B")


def _digest(statement: str) -> str:
    return hashlib.sha256(statement.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def next_token(statement: str, last_key: dict | None, part: int = 0) -> str:
    """A token for the page after `last_key` (None: from the start) of the statement's `part`-th
    read (a SELECT on `pk IN (...)` reads one partition after another)."""
    key = {}
    for name, av in (last_key or {}).items():
        ((t, v),) = av.items()
        key[name] = [t, base64.b64encode(v).decode() if t == "B" else v]
    body = json.dumps({"s": _digest(statement), "p": part, "k": key}, separators=(",", ":"))
    return base64.urlsafe_b64encode(body.encode()).decode()


def start_key(statement: str, token: str) -> tuple[int, dict | None]:
    """The (read, ExclusiveStartKey) a NextToken stands for."""
    try:
        body = json.loads(base64.urlsafe_b64decode(token.encode()))
        digest, key, part = body["s"], body["k"], body["p"]
        if not isinstance(part, int) or part < 0:
            raise ValueError(part)
        out = {}
        for name, (t, v) in key.items():
            if t not in _KEY_TYPES or not isinstance(name, str) or not isinstance(v, str):
                raise ValueError(t)
            out[name] = {t: base64.b64decode(v, validate=True) if t == "B" else v}
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error, UnicodeError):
        raise validation("Invalid NextToken") from None
    if digest != _digest(statement):
        raise validation("NextToken does not match request")
    return part, out or None


# Exception codes as BatchStatementError codes (the enum of the model).
_BATCH_CODES = {
    "ConditionalCheckFailedException": "ConditionalCheckFailed",
    "ItemCollectionSizeLimitExceededException": "ItemCollectionSizeLimitExceeded",
    "RequestLimitExceeded": "RequestLimitExceeded",
    "ValidationException": "ValidationError",
    "ProvisionedThroughputExceededException": "ProvisionedThroughputExceeded",
    "TransactionConflictException": "TransactionConflict",
    "ThrottlingException": "ThrottlingError",
    "InternalServerError": "InternalServerError",
    "ResourceNotFoundException": "ResourceNotFound",
    "AccessDeniedException": "AccessDenied",
    "DuplicateItemException": "DuplicateItem",
}


def batch_error(e: ServiceError) -> dict:
    """A statement's error as a BatchStatementError."""
    out: dict = {"Code": _BATCH_CODES.get(e.code, "ValidationError"), "Message": e.message}
    if e.fields.get("Item") is not None:
        out["Item"] = e.fields["Item"]
    return out


def duplicate_item() -> ServiceError:
    return ServiceError("DuplicateItemException", "Duplicate primary key exists in table", 400)


def merge_capacity(reports: list[dict]) -> list[dict]:
    """ConsumedCapacity entries of several item operations, summed per table."""
    by_table: dict[str, dict] = {}
    for r in reports:
        into = by_table.get(r["TableName"])
        if into is None:
            by_table[r["TableName"]] = json.loads(json.dumps(r))
            continue
        into["CapacityUnits"] += r["CapacityUnits"]
        if "Table" in r:
            into.setdefault("Table", {"CapacityUnits": 0.0})["CapacityUnits"] += r["Table"]["CapacityUnits"]
        for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            for name, units in r.get(kind, {}).items():
                slot = into.setdefault(kind, {}).setdefault(name, {"CapacityUnits": 0.0})
                slot["CapacityUnits"] += units["CapacityUnits"]
    return list(by_table.values())
