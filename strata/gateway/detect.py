"""Which service a request is for, from what the request itself carries.

In order: the SigV4 credential scope (Authorization header or presigned query), the JSON
`X-Amz-Target` prefix (S3 Control, signed as S3, by its paths), a virtual-hosted S3 host name, and
finally S3 (the REST-XML fallback that
also receives unsigned browser POST uploads and anonymous requests). A request signed for a
service Strata does not serve is `unserved`, never S3.
"""

from __future__ import annotations

import re
from functools import cache
from typing import NamedTuple
from urllib.parse import parse_qs, quote

from strata.protocol.http import HttpRequest
from strata.protocol.spec import service_model
from strata.services.registry import BY_SIGNING_NAME, BY_TARGET_PREFIX, SERVICES

# S3 Control requests are signed for "s3" too; every one of them has a path under /v20180820/ and
# names its account in x-amz-account-id (a bucket named v20180820 alone would not tell them apart).
S3CONTROL_PATH = "/v20180820/"
_SCOPE = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request")
_VHOST = re.compile(r"^(?P<bucket>.+?)\.(?P<kind>s3|s3-accelerate|s3-accelerate\.dualstack)\.(?P<rest>.+)$")


class Detected(NamedTuple):  # a tuple: built on every request, at a seventh of a frozen dataclass's cost
    service: str
    region: str | None
    bucket_from_host: str | None = None
    unserved: str | None = None  # the signing name of a service Strata does not serve


def signing_scope(request: HttpRequest) -> tuple[str, str, str, str] | None:
    """(access key, date, region, signing service) from the Authorization header or presigned query."""
    auth = request.headers.get("authorization")
    if auth:
        m = _SCOPE.search(auth)
        return m.groups() if m else None  # type: ignore[return-value]
    if "X-Amz-Credential" in request.query_string:
        cred = request.query_dict().get("X-Amz-Credential", "")
        parts = cred.split("/")
        if len(parts) == 5 and parts[4] == "aws4_request":
            return parts[0], parts[1], parts[2], parts[3]
    return None


def bucket_from_host(host: str, s3_hosts: tuple[str, ...]) -> str | None:
    """The bucket of a virtual-hosted S3 request (`<bucket>.s3.<endpoint host>`), else None."""
    hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    hostname = hostname.lower()
    for suffix in s3_hosts:
        if hostname.endswith("." + suffix):
            return hostname[: -len(suffix) - 1]
    m = _VHOST.match(hostname)
    if m:
        return m.group("bucket")
    return None


@cache
def _by_api_version() -> dict[str, str]:
    """Query/ec2-protocol services by API version: every one of ours has a distinct version."""
    return {
        service_model(name).api_version: name
        for name in SERVICES
        if service_model(name).protocol in ("query", "ec2")
    }


def service_by_query_version(params: str) -> str | None:
    """The query-protocol service named by `Version` in a query string or form body, if any."""
    if "Version=" not in params or "Action=" not in params:
        return None
    version = parse_qs(params).get("Version", [""])[0]
    return _by_api_version().get(version)


def is_unsigned_form_post(request: HttpRequest) -> bool:
    """An unsigned POST of a form to `/`: a query-protocol call (S3 never takes a POST on `/`)."""
    return (
        request.method == "POST"
        and request.raw_path == "/"
        and (request.headers.get("content-type") or "").startswith("application/x-www-form-urlencoded")
    )


def detect(request: HttpRequest, s3_hosts: tuple[str, ...]) -> Detected:
    scope = signing_scope(request)
    if scope:
        service = BY_SIGNING_NAME.get(scope[3])
        target = request.headers.get("x-amz-target")
        if target:  # services sharing a signing name (dynamodb, dynamodbstreams) by their target
            by_target = BY_TARGET_PREFIX.get(target.split(".", 1)[0])
            if by_target and SERVICES[by_target].signing_name == scope[3]:
                service = by_target
        if (
            service == "s3"
            and request.raw_path.startswith(S3CONTROL_PATH)
            and "x-amz-account-id" in request.headers
        ):
            return Detected("s3control", scope[2])
        if service:
            return Detected(
                service, scope[2], bucket_from_host(request.host, s3_hosts) if service == "s3" else None
            )
    target = request.headers.get("x-amz-target")
    if target:
        service = BY_TARGET_PREFIX.get(target.split(".", 1)[0])
        if service:
            return Detected(service, scope[2] if scope else None)
    if scope:
        return Detected("-", scope[2], unserved=scope[3])
    service = service_by_query_version(request.query_string)
    if service:
        return Detected(service, None)
    return Detected("s3", None, bucket_from_host(request.host, s3_hosts))


def to_path_style(request: HttpRequest, bucket: str) -> None:
    """Rewrite a virtual-hosted S3 request to path style so one REST router serves both."""
    rest = request.raw_path if request.raw_path not in ("", "/") else ""
    request.route_path = "/" + quote(bucket, safe="") + rest
