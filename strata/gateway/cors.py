"""CORS on the wire for S3 (the bucket's rules and their matching: strata.services.s3.cors).

- A preflight (`OPTIONS` to a bucket or object) is the one S3 request served unsigned whatever
  the bucket's policy: browsers send it without credentials, and it reveals nothing but the CORS
  rules' answer. It never reaches an operation; it answers 200 with the Access-Control-* headers
  of the first matching rule, or S3's error.
- An actual request carrying `Origin` gets the matching rule's headers on its response, success
  or error (S3 adds them to both, so a browser can read the error).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote

from strata.protocol.http import HttpRequest, HttpResponse

log = logging.getLogger("strata")


def _bucket_and_key(request: HttpRequest) -> tuple[str, str]:
    bucket, _, key = request.routing_path.lstrip("/").partition("/")
    return unquote(bucket), unquote(key)


def preflight(provider: Any, request: HttpRequest, response_headers: list[tuple[str, str]]) -> HttpResponse:
    """The 200 answer of an allowed preflight; raises ServiceError as S3 answers a refused one."""
    bucket, key = _bucket_and_key(request)
    h = request.headers
    allowed = provider.cors_preflight(
        bucket,
        key,
        h.get("origin"),
        h.get("access-control-request-method"),
        h.get("access-control-request-headers"),
    )
    return HttpResponse(200, [*response_headers, *allowed, ("Content-Length", "0")], b"")


def decorate(provider: Any, request: HttpRequest, response: HttpResponse) -> None:
    """Add the CORS headers of the bucket's first rule matching the request's Origin and method."""
    origin = request.headers.get("origin")
    if not origin or provider is None:
        return
    bucket, _ = _bucket_and_key(request)
    if not bucket:
        return
    try:
        response.headers.extend(provider.cors_headers(bucket, origin, request.method))
    except Exception:  # noqa: BLE001 - the response stands without CORS headers
        log.exception("CORS headers for %s", bucket)
