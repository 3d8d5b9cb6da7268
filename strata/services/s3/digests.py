"""Integrity headers of buffered request documents (PutBucketTagging, DeleteObjects ...).

S3 checks a request body against its `Content-MD5` and `x-amz-checksum-<algorithm>` headers before
acting on it: BadDigest on a mismatch, InvalidDigest / InvalidRequest on a malformed value.
Streamed bodies (PutObject, UploadPart) are checked as they are stored (`ingest`); aws-chunked
trailers by the chunked decoder. A checksum header that is an input member of the operation
(CompleteMultipartUpload's whole-object checksum) is that member, not a body checksum.
"""

from __future__ import annotations

import base64
import functools
import hashlib

from strata.protocol.checksums import ALGORITHM_BY_HEADER, checksum_b64, is_valid_b64
from strata.protocol.errors import ServiceError
from strata.protocol.spec import service_model


@functools.cache
def _body_checksum_headers(operation: str) -> tuple[tuple[str, str], ...] | None:
    """(header, algorithm) pairs that checksum the body of `operation`; None when it streams."""
    try:
        op = service_model("s3").operation_model(operation)
    except Exception:  # noqa: BLE001 - an operation outside the model has no documents to check
        return None
    if op.has_streaming_input:
        return None
    shape = op.input_shape
    members = {
        m.serialization.get("name", "").lower()
        for m in (shape.members.values() if shape is not None else [])
        if m.serialization.get("location") == "header"
    }
    return tuple((h, a) for h, a in ALGORITHM_BY_HEADER.items() if h not in members)


def verify_body_digests(operation: str, headers: object, body: bytes) -> None:
    """Raise S3's error when a buffered body does not match the digests its headers announce."""
    checks = _body_checksum_headers(operation)
    if checks is None or not body:
        return
    md5 = headers.get("content-md5")  # type: ignore[attr-defined]
    if md5:
        try:
            raw = base64.b64decode(md5, validate=True)
        except ValueError:
            raw = b""
        if len(raw) != 16:
            raise ServiceError("InvalidDigest", "The Content-MD5 you specified was invalid.", 400)
        if hashlib.md5(body).digest() != raw:
            raise ServiceError(
                "BadDigest", "The Content-MD5 you specified did not match what we received.", 400
            )
    for header, algorithm in checks:
        value = headers.get(header)  # type: ignore[attr-defined]
        if not value:
            continue
        if not is_valid_b64(algorithm, value):
            raise ServiceError("InvalidRequest", f"Value for {header} header is invalid.", 400)
        if checksum_b64(algorithm, body) != value:
            raise ServiceError(
                "BadDigest", f"The {algorithm} you specified did not match the calculated checksum.", 400
            )
