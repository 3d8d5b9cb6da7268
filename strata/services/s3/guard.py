"""What every S3 operation does around its own work, in one wrapper (`guarded`).

- ExpectedBucketOwner / ExpectedSourceBucketOwner: nearly every bucket and object operation
  accepts `x-amz-expected-bucket-owner` (copies also `x-amz-source-expected-bucket-owner`); when
  sent and not the account that owns the bucket, S3 answers 403 AccessDenied before doing
  anything.
- Content-MD5 / x-amz-checksum-* of a buffered request document (`digests`): BadDigest when the
  body does not match.
- Keys XML 1.0 cannot carry: a key may hold control characters (U+0001...), but an XML response
  cannot, not even as `&#x1;` (which S3 sends, and strict parsers such as botocore's reject).
  Operations that merely echo the request's key (CreateMultipartUpload, CompleteMultipartUpload,
  ListParts, and errors naming the key) leave such a key out instead, so the response parses;
  the client has the key already. Listings url-encode instead (see listing.answer_encoding).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.s3.access_point_authz import check_access_point_operation
from strata.services.s3.digests import verify_body_digests
from strata.services.s3.listing import xml_safe
from strata.services.s3.objects import parse_copy_source

_NOT_OPERATIONS = {
    "start",
    "stop",
    "health",
    "resource_account",
    "resource_policy",
    "related_requests",
    "condition_key",
    "further_resources",
    "further_resources_members",
    "cors_preflight",
    "cors_headers",
}


def _denied() -> ServiceError:
    return ServiceError("AccessDenied", "Access Denied", 403)


def _check(provider: Any, ctx: RequestContext, req: dict) -> None:
    """AccessDenied when an expected owner is named and a named, existing bucket is not theirs.

    A bucket that does not exist is left to the operation (NoSuchBucket), as S3 does. (Two dict
    lookups when neither header is sent: this runs on every request.) A buffered body is first
    checked against its digest headers.
    """
    if ctx.http.body:
        verify_body_digests(ctx.operation, ctx.http.headers, ctx.http.body)
    if "_DataAccessPoint" in req:
        check_access_point_operation(ctx, req)
    expected = req.get("ExpectedBucketOwner")
    if expected:
        _check_owner(provider, ctx, req.get("Bucket"), expected)
    expected = req.get("ExpectedSourceBucketOwner")
    if expected and req.get("CopySource"):
        _check_owner(
            provider, ctx, provider._source_bucket(parse_copy_source(req["CopySource"])[0])[0], expected
        )


def _check_owner(provider: Any, ctx: RequestContext, bucket: str | None, expected: str) -> None:
    row = provider.store.bucket(bucket) if bucket else None
    if row is not None and row.config.get("owner", ctx.account_id) != expected:
        raise _denied()


def _xml_safe(out: Any) -> Any:
    if type(out) is dict and "Key" in out and isinstance(out["Key"], str) and not xml_safe(out["Key"]):
        out = {k: v for k, v in out.items() if k != "Key"}
    return out


def _xml_safe_error(e: ServiceError) -> None:
    if isinstance(e.fields, dict) and isinstance(e.fields.get("Key"), str) and not xml_safe(e.fields["Key"]):
        e.fields = {k: v for k, v in e.fields.items() if k != "Key"}


def guarded(cls: type) -> type:
    """Class decorator: every public operation method runs inside the checks above."""
    for name, fn in inspect.getmembers(cls, inspect.isfunction):
        if name.startswith("_") or name in _NOT_OPERATIONS:
            continue
        setattr(cls, name, _wrap(fn))
    return cls


def _wrap(fn: Callable) -> Callable:
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_op(self: Any, ctx: RequestContext, req: dict) -> Any:
            try:
                _check(self, ctx, req)
                return _xml_safe(await fn(self, ctx, req))
            except ServiceError as e:
                _xml_safe_error(e)
                raise

        return async_op

    @functools.wraps(fn)
    def op(self: Any, ctx: RequestContext, req: dict) -> Any:
        try:
            _check(self, ctx, req)
            return _xml_safe(fn(self, ctx, req))
        except ServiceError as e:
            _xml_safe_error(e)
            raise

    return op
