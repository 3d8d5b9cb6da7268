"""S3 names, limits and fixed vocabularies: bucket-name rules, key rules, storage classes.

One place for every fact S3 fixes, so the topic modules import them instead of retyping them.
Limits AWS fixes but tests want small are read through `Settings.limit` (see `Limits`).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from strata.config import Settings
from strata.protocol.errors import ServiceError

STORAGE_CLASSES = frozenset(
    {
        "STANDARD",
        "REDUCED_REDUNDANCY",
        "STANDARD_IA",
        "ONEZONE_IA",
        "INTELLIGENT_TIERING",
        "GLACIER",
        "DEEP_ARCHIVE",
        "OUTPOSTS",
        "GLACIER_IR",
        "SNOW",
        "EXPRESS_ONEZONE",
    }
)
# Minimum storage duration per class, in days: an object removed sooner is billed the rest.
MIN_STORAGE_DAYS = {"STANDARD_IA": 30, "ONEZONE_IA": 30, "GLACIER_IR": 90, "GLACIER": 90, "DEEP_ARCHIVE": 180}
# S3 bills at least this many bytes per object in these classes.
MIN_BILLABLE_SIZE = {"STANDARD_IA": 128 * 1024, "ONEZONE_IA": 128 * 1024, "GLACIER_IR": 128 * 1024}
# Per-object overhead S3 bills for archived objects: 32 KiB at the class's rate ("self") and
# 8 KiB at STANDARD's.
ARCHIVE_OVERHEAD = {
    "GLACIER": {"self": 32 * 1024, "STANDARD": 8 * 1024},
    "DEEP_ARCHIVE": {"self": 32 * 1024, "STANDARD": 8 * 1024},
}
# Archived classes: the bytes are not readable until restored.
ARCHIVED_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})

# Regions CreateBucket accepts as a LocationConstraint (plus the region the server runs in).
KNOWN_REGIONS = frozenset(
    """af-south-1 ap-east-1 ap-northeast-1 ap-northeast-2 ap-northeast-3 ap-south-1 ap-south-2
    ap-southeast-1 ap-southeast-2 ap-southeast-3 ap-southeast-4 ap-southeast-5 ca-central-1 ca-west-1
    cn-north-1 cn-northwest-1 eu-central-1 eu-central-2 eu-north-1 eu-south-1 eu-south-2 eu-west-1
    eu-west-2 eu-west-3 il-central-1 me-central-1 me-south-1 mx-central-1 sa-east-1 us-east-1 us-east-2
    us-gov-east-1 us-gov-west-1 us-west-1 us-west-2 EU""".split()
)

MAX_KEY_BYTES = 1024
MAX_TAGS = 10
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
MAX_USER_METADATA_BYTES = 2048

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class Limits:
    """Size limits of S3 (AWS's values by default; overridable with STRATA_LIMIT_S3_*)."""

    min_part_size: int
    max_part_size: int
    max_put_size: int
    max_object_size: int
    max_parts: int
    # Objects up to this size live in their metadata row (one group-committed write, no file).
    inline_max: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            min_part_size=settings.limit("s3_min_part_size", 5 * 1024**2),
            max_part_size=settings.limit("s3_max_part_size", 5 * 1024**3),
            max_put_size=settings.limit("s3_max_put_size", 5 * 1024**3),
            max_object_size=settings.limit("s3_max_object_size", 5 * 1024**4),
            max_parts=settings.limit("s3_max_parts", 10_000),
            inline_max=settings.limit("s3_inline_max_size", 64 * 1024),
        )


def check_bucket_name(name: str) -> None:
    """Raise InvalidBucketName unless `name` follows the general-purpose bucket naming rules."""
    ok = bool(_BUCKET_RE.match(name)) and ".." not in name and ".-" not in name and "-." not in name
    if ok:
        try:
            ipaddress.IPv4Address(name)
            ok = False
        except ValueError:
            pass
    if ok and (
        name.startswith(("xn--", "sthree-", "amzn-s3-demo-"))
        or name.endswith(("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"))
    ):
        ok = False
    if not ok:
        raise ServiceError(
            "InvalidBucketName", "The specified bucket is not valid.", 400, fields={"BucketName": name}
        )


def check_key(key: str) -> None:
    """Keys are any UTF-8 up to 1024 bytes; they never reach a file path."""
    if not key:
        raise ServiceError("InvalidArgument", "Key must not be empty", 400)
    n = len(key.encode("utf-8", "surrogatepass"))
    if n > MAX_KEY_BYTES:
        raise ServiceError(
            "KeyTooLongError",
            "Your key is too long",
            400,
            fields={"MaxSizeAllowed": str(MAX_KEY_BYTES), "Size": str(n)},
        )


def check_storage_class(storage_class: str | None) -> str:
    if not storage_class:
        return "STANDARD"
    if storage_class not in STORAGE_CLASSES:
        raise ServiceError(
            "InvalidStorageClass",
            "The storage class you specified is not valid",
            400,
            fields={"StorageClassRequested": storage_class},
        )
    return storage_class


def check_tags(tags: list[dict]) -> dict[str, str]:
    """Validate a TagSet (list of {Key, Value}) and return it as an ordered dict."""
    if len(tags) > MAX_TAGS:
        raise ServiceError("BadRequest", "Object tags cannot be greater than 10", 400)
    out: dict[str, str] = {}
    for t in tags:
        k, v = t.get("Key", ""), t.get("Value", "")
        if k in out:
            raise ServiceError("InvalidTag", "Cannot provide multiple Tags with the same key", 400)
        if not k or len(k) > MAX_TAG_KEY:
            raise ServiceError("InvalidTag", "The TagKey you have provided is invalid", 400)
        if len(v) > MAX_TAG_VALUE:
            raise ServiceError("InvalidTag", "The TagValue you have provided is invalid", 400)
        if k.startswith("aws:"):
            raise ServiceError("InvalidTag", "Your TagKey cannot be prefixed with aws:", 400)
        out[k] = v
    return out


def parse_tagging_header(value: str) -> dict[str, str]:
    """The `x-amz-tagging` header: URL-query encoded `k1=v1&k2=v2`."""
    from urllib.parse import parse_qsl

    try:
        pairs = parse_qsl(value, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise ServiceError(
            "InvalidArgument",
            "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates.",
            400,
        ) from None
    return check_tags([{"Key": k, "Value": v} for k, v in pairs])
