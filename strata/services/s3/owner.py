"""ExpectedBucketOwner / ExpectedSourceBucketOwner, checked once for every operation.

Nearly every bucket and object operation accepts `x-amz-expected-bucket-owner` (and copies
`x-amz-source-expected-bucket-owner`): when sent and not the account that owns the bucket, S3
answers 403 AccessDenied before doing anything. Rather than repeat that in each operation,
`check_expected_owner` wraps every public operation method of the provider class.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from strata.protocol.errors import ServiceError
from strata.services.base import RequestContext
from strata.services.s3.objects import parse_copy_source

_NOT_OPERATIONS = {"start", "stop", "health"}


def _denied() -> ServiceError:
    return ServiceError("AccessDenied", "Access Denied", 403)


def _source_bucket(copy_source: str) -> str:
    return parse_copy_source(copy_source)[0]


def _check(provider: Any, ctx: RequestContext, req: dict) -> None:
    """AccessDenied when an expected owner is named and a named, existing bucket is not theirs.

    A bucket that does not exist is left to the operation (NoSuchBucket), as S3 does.
    """
    for member, bucket_of in (
        ("ExpectedBucketOwner", lambda r: r.get("Bucket")),
        ("ExpectedSourceBucketOwner", lambda r: r.get("CopySource") and _source_bucket(r["CopySource"])),
    ):
        expected = req.get(member)
        if not expected:
            continue
        name = bucket_of(req)
        row = provider.store.bucket(name) if name else None
        if row is not None and row.config.get("owner", ctx.account_id) != expected:
            raise _denied()


def check_expected_owner(cls: type) -> type:
    """Class decorator: every public operation method checks the expected bucket owner first."""
    for name, fn in inspect.getmembers(cls, inspect.isfunction):
        if name.startswith("_") or name in _NOT_OPERATIONS:
            continue
        setattr(cls, name, _wrap(fn))
    return cls


def _wrap(fn: Callable) -> Callable:
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_op(self: Any, ctx: RequestContext, req: dict) -> Any:
            _check(self, ctx, req)
            return await fn(self, ctx, req)

        return async_op

    @functools.wraps(fn)
    def op(self: Any, ctx: RequestContext, req: dict) -> Any:
        _check(self, ctx, req)
        return fn(self, ctx, req)

    return op
