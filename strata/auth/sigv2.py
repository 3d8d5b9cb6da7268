"""S3's legacy Signature Version 2 (HMAC-SHA1): presigned URLs and `Authorization: AWS key:sig`.

boto3 still presigns S3 URLs and POST policies with SigV2 unless the client is configured with
`signature_version="s3v4"`, so `s3.generate_presigned_url(...)` on a default client produces
`?AWSAccessKeyId=..&Signature=..&Expires=..`. The string to sign:

    METHOD \\n Content-MD5 \\n Content-Type \\n Date-or-Expires \\n
    x-amz-* headers (lower-case, sorted, "name:value\\n") + /bucket/key[?sub-resources]

Only S3 speaks SigV2; the body is not covered by the signature (S3 checks Content-MD5 itself).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import unquote

from strata.auth.canonical import signatures_match
from strata.auth.credentials import CredentialStore
from strata.auth.principal import Principal
from strata.protocol.errors import ServiceError
from strata.protocol.http import HttpRequest

# Query parameters that are part of the signed resource (botocore's HmacV1Auth list).
SUB_RESOURCES = frozenset(
    """accelerate acl cors defaultObjectAcl location logging partNumber policy requestPayment torrent
    versioning versionId versions website uploads uploadId response-content-type response-content-language
    response-expires response-cache-control response-content-disposition response-content-encoding delete
    lifecycle tagging restore storageClass notification replication analytics metrics inventory select
    select-type object-lock""".split()
)
MAX_SKEW = 15 * 60


def sign_v2(secret: str, string_to_sign: str) -> str:
    digest = hmac.digest(secret.encode("utf-8"), string_to_sign.encode("utf-8"), "sha1")
    return base64.b64encode(digest).decode("ascii")


def _raw_query(query_string: str) -> list[tuple[str, str | None]]:
    """Query pairs percent-decoded without turning '+' into a space (base64 signatures keep '+')."""
    pairs: list[tuple[str, str | None]] = []
    for part in query_string.split("&"):
        if not part:
            continue
        name, sep, value = part.partition("=")
        pairs.append((unquote(name), unquote(value) if sep else None))
    return pairs


def string_to_sign(request: HttpRequest, date: str, query: list[tuple[str, str | None]]) -> str:
    headers = request.headers
    extra = {k.lower(): v for k, v in query if v is not None}

    def value(name: str) -> str:
        found = headers.get(name)
        if found is None:
            found = extra.get(name, "")
        return found.strip()

    amz: dict[str, str] = {}
    for name, raw in headers.raw_items():
        if name.startswith("x-amz-"):
            amz[name] = f"{amz[name]},{raw.strip()}" if name in amz else raw.strip()
    for name, raw in extra.items():
        if name.startswith("x-amz-") and name not in amz:
            amz[name] = raw.strip()
    lines = [request.method, value("content-md5"), value("content-type"), date]
    lines += [f"{name}:{amz[name]}" for name in sorted(amz)]
    resource = request.routing_path or "/"
    subs = sorted((k, v) for k, v in query if k in SUB_RESOURCES)
    if subs:
        resource += "?" + "&".join(k if v is None else f"{k}={v}" for k, v in subs)
    lines.append(resource)
    return "\n".join(lines)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _mismatch(access_key: str, to_sign: str, provided: str) -> ServiceError:
    return ServiceError(
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
        403,
        fields={"AWSAccessKeyId": access_key, "StringToSign": to_sign, "SignatureProvided": provided},
    )


def verify_query(request: HttpRequest, store: CredentialStore, now: float) -> Principal:
    """A SigV2 presigned URL (AWSAccessKeyId, Signature, Expires)."""
    query = _raw_query(request.query_string)
    params = {k: v or "" for k, v in query}
    access_key, provided, expires_text = (
        params.get("AWSAccessKeyId"),
        params.get("Signature"),
        params.get("Expires"),
    )
    if not access_key or not provided or not expires_text:
        raise ServiceError(
            "AccessDenied",
            "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters",
            403,
        )
    if not expires_text.isdigit():
        raise ServiceError(
            "AccessDenied", "Invalid date (should be seconds since epoch): " + expires_text, 403
        )
    secret, principal = store.resolve_s3(access_key, params.get("x-amz-security-token"))
    to_sign = string_to_sign(request, expires_text, query)
    if not signatures_match(sign_v2(secret, to_sign), provided):
        raise _mismatch(access_key, to_sign, provided)
    expires = int(expires_text)
    if now > expires:
        raise ServiceError(
            "AccessDenied",
            "Request has expired",
            403,
            fields={"Expires": _iso(expires), "ServerTime": _iso(now)},
        )
    return principal


def verify_header(request: HttpRequest, credential: str, store: CredentialStore, now: float) -> Principal:
    """`Authorization: AWS <key>:<signature>` with a Date or x-amz-date header."""
    access_key, sep, provided = credential.partition(":")
    if not sep or not access_key or not provided:
        raise ServiceError(
            "InvalidArgument",
            "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature",
            400,
            fields={"ArgumentName": "Authorization", "ArgumentValue": "AWS " + credential},
        )
    amz_date = request.headers.get("x-amz-date")
    date_header = request.headers.get("date")
    when = amz_date or date_header
    try:
        epoch = parsedate_to_datetime(when).timestamp() if when else None
    except (TypeError, ValueError):
        epoch = None
    if epoch is None:
        raise ServiceError(
            "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header", 403
        )
    secret, principal = store.resolve_s3(access_key, request.headers.get("x-amz-security-token"))
    query = _raw_query(request.query_string)
    # With x-amz-date present the Date line is empty (the header itself is among the x-amz-* lines).
    to_sign = string_to_sign(request, "" if amz_date else (date_header or ""), query)
    if not signatures_match(sign_v2(secret, to_sign), provided):
        raise _mismatch(access_key, to_sign, provided)
    if abs(now - epoch) > MAX_SKEW:
        raise ServiceError(
            "RequestTimeTooSkewed",
            "The difference between the request time and the current time is too large.",
            403,
            fields={
                "RequestTime": when or "",
                "ServerTime": _iso(now),
                "MaxAllowedSkewMilliseconds": "900000",
            },
        )
    return principal


def policy_signature_v2(secret: str, policy_b64: str) -> str:
    """The SigV2 POST policy signature: base64(HMAC-SHA1(secret, base64 policy))."""
    return base64.b64encode(
        hmac.new(secret.encode("utf-8"), policy_b64.encode("ascii"), hashlib.sha1).digest()
    ).decode()
