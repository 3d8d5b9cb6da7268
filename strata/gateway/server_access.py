"""The gateway's half of S3 server access logging: one `Record` per answered request on a logged
bucket (strata.sim.server_access_logs keeps them; strata/services/s3/access_logs.py formats and
delivers them). Only called while some bucket is logged, and only reads what the gateway already
has: the request, the principal, the response's status and headers."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from strata.auth.principal import Principal
from strata.protocol.http import HttpRequest, HttpResponse
from strata.sim.clock import clock
from strata.sim.server_access_logs import Record, server_access_logs


def _header(response: HttpResponse, name: str) -> str:
    for n, v in response.headers:
        if n.lower() == name:
            return v
    return ""


def bucket_and_key(request: HttpRequest) -> dict:
    """Bucket and key from a path-style path, for requests refused before their parameters were
    parsed (a bad signature, an unknown access key): S3 logs those too."""
    bucket, _, key = request.routing_path.lstrip("/").partition("/")
    return {"Bucket": unquote(bucket), "Key": unquote(key)}


def _signature(request: HttpRequest) -> tuple[str, str]:
    """(signature version, authentication type) as S3's log fields name them ('-' when unsigned)."""
    auth = request.headers.get("authorization") or ""
    if auth.startswith("AWS4-"):
        return "SigV4", "AuthHeader"
    if auth.startswith("AWS "):
        return "SigV2", "AuthHeader"
    if "X-Amz-Signature=" in request.query_string:
        return "SigV4", "QueryString"
    if "Signature=" in request.query_string:
        return "SigV2", "QueryString"
    return "-", "-"


def record_s3_access(
    request: HttpRequest,
    response: HttpResponse,
    principal: Principal | None,
    params: dict,
    operation: str,
    request_id: str,
    error_code: str | None,
    result: Any,
    elapsed_ms: float,
    bytes_sent: int,
    bytes_received: int,
    access_point: dict | None,
) -> None:
    """Buffer the request when its bucket is logged (a dict lookup otherwise)."""
    bucket = str(params.get("Bucket") or "")
    if bucket not in server_access_logs.logged:
        return
    sig, auth = _signature(request)
    size = 0
    if type(result) is dict:  # a range's ContentRange ends with the whole object's size
        whole = str(result.get("ContentRange") or "").rpartition("/")[2]
        size = int(whole) if whole.isdigit() else int(result.get("ContentLength") or 0)
    if not size:
        size = bytes_received
    query = f"?{request.query_string}" if request.query_string else ""
    signed = principal is not None and principal.kind != "anonymous"
    server_access_logs.add(
        Record(
            at=clock.time(),
            bucket=bucket,
            remote_ip=request.client or "-",
            requester=principal.arn if signed and principal is not None else "-",
            request_id=request_id,
            operation=operation,
            method=request.method,
            key=str(params.get("Key") or ""),
            request_uri=f"{request.method} {request.raw_path}{query} HTTP/1.1",
            status=response.status,
            error_code=error_code or "",
            bytes_sent=bytes_sent,
            object_size=size,
            total_ms=elapsed_ms,
            referrer=request.headers.get("referer") or "",
            user_agent=request.headers.get("user-agent") or "",
            version_id=_header(response, "x-amz-version-id") or str(params.get("VersionId") or ""),
            signature_version=sig,
            auth_type=auth,
            host=request.host or request.headers.get("host") or "",
            tls=request.tls,
            access_point=access_point["Arn"] if access_point else "",
            acl_required=False,
        )
    )
