"""EFS's errors, identifiers and limits, in one place (AWS's EFS API reference and quotas pages).

Every EFS error carries its code twice, as AWS sends it: in the `x-amzn-ErrorType` header and as
the body's `ErrorCode` member; the HTTP status is the one botocore's model gives the error shape.
"""

from __future__ import annotations

import re
import uuid

from botocore.model import NoShapeFoundError

from strata.protocol.errors import ServiceError
from strata.protocol.spec import service_model

FILE_SYSTEMS_PER_REGION = 1000
ACCESS_POINTS_PER_FILE_SYSTEM = 10000
SECURITY_GROUPS_PER_MOUNT_TARGET = 5
TAGS_PER_RESOURCE = 50
POLICY_MAX_BYTES = 20000
# Provisioned throughput: AWS's ceiling for bursting/provisioned file systems in most regions.
MAX_PROVISIONED_MIBPS = 3414.0
# Throughput mode changes and provisioned-throughput decreases: once per 24 hours.
THROUGHPUT_COOLDOWN_SECONDS = 86400.0
# A new, empty file system meters 6 KiB (the root directory's metadata), as on AWS.
EMPTY_SIZE = 6144

PERFORMANCE_MODES = ("generalPurpose", "maxIO")
THROUGHPUT_MODES = ("bursting", "provisioned", "elastic")
TRANSITION_DAYS = {
    "AFTER_1_DAY": 1,
    "AFTER_7_DAYS": 7,
    "AFTER_14_DAYS": 14,
    "AFTER_30_DAYS": 30,
    "AFTER_60_DAYS": 60,
    "AFTER_90_DAYS": 90,
    "AFTER_180_DAYS": 180,
    "AFTER_270_DAYS": 270,
    "AFTER_365_DAYS": 365,
}

_FS_ID = re.compile(r"^(?:arn:aws[-a-z]*:elasticfilesystem:[0-9a-z-:]+:file-system/)?(fs-[0-9a-f]{8,40})$")
_AP_ID = re.compile(r"^(?:arn:aws[-a-z]*:elasticfilesystem:[0-9a-z-:]+:access-point/)?(fsap-[0-9a-f]{8,40})$")


def error(code: str, message: str, **fields: object) -> ServiceError:
    """AWS's EFS error `code` with the status the model gives it."""
    try:
        status = service_model("efs").shape_for(code).metadata["error"]["httpStatusCode"]
    except (KeyError, NoShapeFoundError):  # a code the model lacks (none today): a client error
        status = 400
    return ServiceError(code, message, status, fields={"ErrorCode": code, **fields})


def bad_request(message: str) -> ServiceError:
    return error("BadRequest", message)


def new_id(prefix: str) -> str:
    """fs-, fsmt-, fsap- followed by 17 hex digits (AWS's long ids)."""
    return f"{prefix}-{uuid.uuid4().hex[:17]}"


def file_system_id(value: str | None) -> str:
    """A FileSystemId or file system ARN -> the id (BadRequest when it is neither)."""
    m = _FS_ID.match(value or "")
    if m is None:
        raise bad_request(f"invalid file system ID: {value}")
    return m.group(1)


def access_point_id(value: str | None) -> str:
    m = _AP_ID.match(value or "")
    if m is None:
        raise bad_request(f"invalid access point ID: {value}")
    return m.group(1)


def fs_not_found(fs_id: str) -> ServiceError:
    return error("FileSystemNotFound", f"File system '{fs_id}' does not exist.")


def check_tags(tags: list[dict] | None, existing: dict[str, str] | None = None) -> dict[str, str]:
    """Tags as a dict (keys in order); AWS's errors for reserved keys, lengths and the count."""
    out = dict(existing or {})
    for tag in tags or []:
        key, value = tag.get("Key") or "", tag.get("Value")
        if value is None:
            raise bad_request("Tag value is required")
        if not 1 <= len(key) <= 128:
            raise bad_request("Tag key must be between 1 and 128 characters long")
        if len(value) > 256:
            raise bad_request("Tag value must be at most 256 characters long")
        if key.lower().startswith("aws:"):
            raise bad_request("Tag keys starting with 'aws:' are reserved for AWS use")
        out[key] = value
    if len(out) > TAGS_PER_RESOURCE:
        raise bad_request(f"A resource can have at most {TAGS_PER_RESOURCE} tags")
    return out


def tag_list(tags: dict[str, str]) -> list[dict]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def page(items: list[dict], marker: str | None, limit: int) -> tuple[list[dict], str | None]:
    """A page of `items` (in their order) after the id `marker`; the next marker if more remain."""
    if marker:
        ids = [d["id"] for d in items]
        if marker not in ids:
            raise bad_request("Invalid pagination marker.")
        items = items[ids.index(marker) + 1 :]
    if len(items) <= limit:
        return items, None
    return items[:limit], items[limit - 1]["id"]
