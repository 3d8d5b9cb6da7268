"""HTTP conditional requests and byte ranges as S3 evaluates them.

S3 follows RFC 7232 with two documented twists: when If-Match holds, a failing
If-Unmodified-Since is ignored (200); when If-None-Match fails, a holding If-Modified-Since is
ignored (304 only by the ETag). Ranges: one `bytes=` range; anything unparsable is ignored
(whole object, 200), a start beyond the end is InvalidRange (416).
"""

from __future__ import annotations

import re
from datetime import datetime

from strata.protocol.errors import ServiceError
from strata.services.s3.core import no_such_key
from strata.services.s3.store import ObjectRow

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _etag_matches(header: str, etag: str) -> bool:
    bare = etag.strip('"')
    for candidate in header.split(","):
        c = candidate.strip()
        if c.startswith("W/"):
            c = c[2:]
        if c == "*" or c.strip('"') == bare:
            return True
    return False


def _modified_after(modified: float, when: datetime) -> bool:
    # HTTP dates have whole seconds; compare at that precision.
    return int(modified) > int(when.timestamp())


def check_read_conditions(
    etag: str,
    modified: float,
    if_match: str | None,
    if_none_match: str | None,
    if_modified_since: datetime | None,
    if_unmodified_since: datetime | None,
    *,
    copy_source: bool = False,
) -> None:
    """Raise PreconditionFailed (412) or NotModified (304) per S3's rules.

    For x-amz-copy-source-if-* both failures are PreconditionFailed.
    """
    if if_match is not None:
        if not _etag_matches(if_match, etag):
            raise _failed("If-Match" if not copy_source else "x-amz-copy-source-If-Match")
    elif if_unmodified_since is not None and _modified_after(modified, if_unmodified_since):
        raise _failed("If-Unmodified-Since" if not copy_source else "x-amz-copy-source-If-Unmodified-Since")
    if if_none_match is not None:
        if _etag_matches(if_none_match, etag):
            if copy_source:
                raise _failed("x-amz-copy-source-If-None-Match")
            raise ServiceError("NotModified", "Not Modified", 304, headers={"ETag": etag})
    elif if_modified_since is not None and not _modified_after(modified, if_modified_since):
        if copy_source:
            raise _failed("x-amz-copy-source-If-Modified-Since")
        raise ServiceError("NotModified", "Not Modified", 304, headers={"ETag": etag})


def _failed(condition: str) -> ServiceError:
    return ServiceError(
        "PreconditionFailed",
        "At least one of the pre-conditions you specified did not hold",
        412,
        fields={"Condition": condition},
    )


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive, or None for the whole object; InvalidRange when unsatisfiable."""
    if not header:
        return None
    m = _RANGE.match(header.strip().replace(" ", ""))
    if not m:
        return None
    first_s, last_s = m.groups()
    if not first_s and not last_s:
        return None
    if not first_s:  # suffix range: the last N bytes
        n = int(last_s)
        if n == 0 or size == 0:
            raise invalid_range(header, size)
        return max(0, size - n), size - 1
    first = int(first_s)
    last = int(last_s) if last_s else size - 1
    if last_s and last < first:
        return None
    if first >= size:
        raise invalid_range(header, size)
    return first, min(last, size - 1)


def invalid_range(header: str, size: int) -> ServiceError:
    return ServiceError(
        "InvalidRange",
        "The requested range is not satisfiable",
        416,
        fields={"RangeRequested": header, "ActualObjectSize": str(size)},
        headers={"Content-Range": f"bytes */{size}"},
    )


def parse_copy_range(header: str, size: int) -> tuple[int, int]:
    """x-amz-copy-source-range (UploadPartCopy): must be `bytes=first-last` within the object."""
    m = _RANGE.match(header.strip())
    if not m or not m.group(1) or not m.group(2):
        raise ServiceError(
            "InvalidArgument",
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy",
            400,
            fields={"ArgumentName": "x-amz-copy-source-range", "ArgumentValue": header},
        )
    first, last = int(m.group(1)), int(m.group(2))
    if last < first or last >= size:
        raise ServiceError(
            "InvalidRange",
            "The requested range is not satisfiable",
            416,
            fields={"RangeRequested": header, "ActualObjectSize": str(size)},
        )
    return first, last


def write_condition(key: str, if_match: str | None, if_none_match: str | None):  # noqa: ANN202
    """The check a conditional write (If-Match / If-None-Match: *) runs against the current object."""
    if not if_match and not if_none_match:
        return None

    def check(current: ObjectRow | None) -> None:
        exists = current is not None and not current.dm
        if if_none_match:
            if if_none_match.strip() != "*":
                raise ServiceError(
                    "NotImplemented",
                    "A header you provided implies functionality that is not implemented",
                    501,
                    fields={"Header": "If-None-Match"},
                )
            if exists:
                raise ServiceError(
                    "PreconditionFailed",
                    "At least one of the pre-conditions you specified did not hold",
                    412,
                    fields={"Condition": "If-None-Match"},
                )
        if if_match:
            if not exists:
                raise no_such_key(key)
            assert current is not None
            check_read_conditions(current.etag, current.modified, if_match, None, None, None)

    return check
