"""SigV4 canonicalisation: the canonical request and the string to sign, built as AWS builds them.

Two URI rules exist. S3 signs the path exactly as the client sent it (already percent-encoded once,
no normalisation), so `/a//b/../c%2Fd` is signed as is. Every other service normalises the path
(dot segments and empty segments removed) and percent-encodes it a second time (`%` -> `%25`).
The query string is always decoded and re-encoded with RFC 3986 unreserved characters kept, then
sorted by name and value.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from functools import lru_cache
from urllib.parse import quote, unquote_to_bytes

from strata.protocol.http import HttpRequest

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

_UNRESERVED = re.compile(r"[A-Za-z0-9\-_.~]*\Z").match
_SPACES = re.compile(r"\s{2,}|^\s|\s$").search


def signatures_match(expected: str, provided: str) -> bool:
    """Constant-time comparison of a signature we computed with whatever text a client sent.

    `hmac.compare_digest` raises TypeError for a str with non-ASCII characters, which a client
    may put in any signature field: compare bytes, so such a signature is simply wrong.
    """
    return hmac.compare_digest(expected.encode(), provided.encode("utf-8", "surrogatepass"))


def uri_encode(value: str | bytes, safe: str = "") -> str:
    """RFC 3986 encoding as SigV4 wants it: unreserved kept, everything else %XX upper-case."""
    return quote(value, safe=safe + "-_.~")


@lru_cache(maxsize=4096)
def _reencode_short(component: str) -> str:
    # Clients repeat components (credential scope, expiry, signed-headers list): remember them.
    return quote(unquote_to_bytes(component), safe="-_.~")


def _reencode(component: str) -> str:
    if _UNRESERVED(component):
        return component
    if len(component) <= 256:  # only short ones are remembered: the cache stays small
        return _reencode_short(component)
    return quote(unquote_to_bytes(component), safe="-_.~")


def canonical_query(query_string: str, skip: str | None = None) -> str:
    """Sorted, uniformly encoded `name=value` pairs; `skip` names a parameter left out (X-Amz-Signature)."""
    if not query_string:
        return ""
    pairs = []
    for part in query_string.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if skip is not None and name == skip:
            continue
        pairs.append((_reencode(name), _reencode(value)))
    pairs.sort()
    return "&".join([f"{n}={v}" for n, v in pairs])


def remove_dot_segments(path: str) -> str:
    """RFC 3986 dot-segment removal that also collapses empty segments, as AWS services expect."""
    out: list[str] = []
    for segment in path.split("/"):
        if not segment or segment == ".":
            continue
        if segment == "..":
            if out:
                out.pop()
        else:
            out.append(segment)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and out else ""
    return first + "/".join(out) + last


def canonical_uri(raw_path: str, s3: bool) -> str:
    if s3:
        return raw_path or "/"
    if not raw_path or raw_path == "/":  # every json/query-protocol request
        return "/"
    return quote(remove_dot_segments(raw_path), safe="/~")


def s3_reencoded_uri(raw_path: str) -> str:
    """The S3 path decoded and re-encoded strictly: a fallback for clients that leave `!`, `'`,
    `(` ... unescaped or use lower-case hex (AWS itself canonicalises from the decoded key)."""
    return quote(unquote_to_bytes(raw_path or "/"), safe="/-_.~")


def header_value(value: str) -> str:
    """Trimmed, with runs of whitespace collapsed to one space."""
    if " " not in value and value.isprintable():  # no whitespace at all: most signed values
        return value
    if _SPACES(value):
        return " ".join(value.split())
    return value


def canonical_headers(request: HttpRequest, signed: list[str]) -> str:
    headers = request.headers
    lines = []
    for name in signed:
        value = headers.get(name)
        if value is None:
            value = request.host if name == "host" else ""
        lines.append(f"{name}:{header_value(value)}\n")
    return "".join(lines)


def canonical_request(
    request: HttpRequest, uri: str, query: str, signed: list[str], signed_str: str, payload_hash: str
) -> str:
    return "\n".join(
        (request.method, uri, query, canonical_headers(request, signed), signed_str, payload_hash)
    )


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"
