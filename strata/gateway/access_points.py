"""Requests through S3 access points, routed to their bucket before anything else looks at them.

Two forms arrive (strata.services.s3control.access_points keeps the access points):
- `<name>-<account-id>.<endpoint host>`: where the SDKs send a call whose Bucket is an access
  point ARN (`.s3-accesspoint.<region>.amazonaws.com` on AWS; with endpoint_url, its host). The
  first label names the access point only when that access point exists, so a bucket reached
  virtual-hosted is never taken for one.
- an alias, `<name>-<random>-s3alias`, wherever a bucket name goes (path-style or virtual-hosted).
- the ARN itself as the path's first part (`/arn:aws:s3:<region>:<account>:accesspoint/<name>/<key>`,
  its `:` and `/` as sent or percent-encoded): what clients without the SDKs' endpoint rules send.

The request is rewritten to path style on the access point's bucket (SigV4 still verifies the
path the client signed), and the operation's parameters get `_DataAccessPoint` (its ARN, account,
name and network origin): what the S3 provider's authorization hook and the bucket policy's
`s3:DataAccessPoint*` condition keys read.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from strata.gateway.hosts import host_name
from strata.protocol.http import HttpRequest

MEMBER = "_DataAccessPoint"
_HOST_LABEL = re.compile(r"^([a-z0-9][a-z0-9-]{1,48}[a-z0-9])-(\d{12})$")
_ALIAS_SUFFIX = "-s3alias"
_C, _S = "(?::|%3A)", "(?:/|%2F)"
_ARN_PATH = re.compile(
    rf"^/arn{_C}aws[a-z-]*{_C}s3{_C}[a-z0-9-]*{_C}(\d{{12}}){_C}accesspoint(?:{_C}|{_S})([a-z0-9-]+)(/.*)?$",
    re.IGNORECASE,
)


def route(control: Any, request: HttpRequest, bucket_from_host: str | None) -> dict[str, str] | None:
    """The access point the request goes through ({Arn, Account, Name, NetworkOrigin}), its path
    rewritten onto the bucket; None when it names no access point (nothing is changed)."""
    if control is None or not control._has_access_points():
        return None
    doc = None
    path = request.routing_path
    if bucket_from_host is None:
        name = host_name(request.host)
        label, dot, _ = name.partition(".")
        m = _HOST_LABEL.match(label) if dot else None
        if m:
            doc = control._access_point(m.group(2), m.group(1))
            if doc is not None:
                rest = path if path not in ("", "/") else ""
                request.route_path = "/" + quote(doc["bucket"], safe="") + rest
    if doc is None and path[1:4].lower() == "arn":
        m = _ARN_PATH.match(path)
        if m:
            doc = control._access_point(m.group(1), m.group(2))
            if doc is not None:
                request.route_path = "/" + quote(doc["bucket"], safe="") + (m.group(3) or "")
    if doc is None:
        first, sep, rest = path[1:].partition("/")
        if first.endswith(_ALIAS_SUFFIX):
            doc = control._access_point_by_alias(first)
            if doc is not None:
                request.route_path = "/" + quote(doc["bucket"], safe="") + sep + rest
    if doc is None:
        return None
    return {"Arn": doc["arn"], "Account": doc["account"], "Name": doc["name"], "NetworkOrigin": "Internet"}
