"""Requests for an AWS service Strata does not serve: a 501 that names the service.

The credential scope names the service (`monitoring` for CloudWatch, `ce`, `fis`, ...). Without
this, such a request fell through to S3 (the fallback for anything unrecognised) and got an S3
answer such as 405 MethodNotAllowed, which no client of that service can make sense of.

The error is written in the protocol the calling SDK reads, told from the request itself (CBOR
for a `smithy-protocol: rpc-v2-cbor` request, JSON for an `X-Amz-Target` one, query XML for a
form post) or, for REST requests, from the botocore model of the same name when there is one
(rest-xml for Route 53 or CloudFront, rest-json otherwise). botocore turns every one of them into
`ClientError` with code `NotImplemented` and this message; 501 is not retried.
"""

from __future__ import annotations

import json
from functools import cache

import botocore.session
from botocore.exceptions import UnknownServiceError

from strata.protocol.http import HttpRequest, HttpResponse
from strata.protocol.xml import XML_DECLARATION, escape_text
from strata.services.registry import SERVICES

CODE = "NotImplemented"
STATUS = 501


def message(signing_name: str) -> str:
    served = ", ".join(sorted(SERVICES))
    return f"Strata does not serve the AWS service '{signing_name}'; it serves {served}"


@cache
def _model_protocol(signing_name: str) -> str | None:
    """The protocol of the botocore model named like the signing name, if there is one."""
    if len(signing_name) > 64 or not signing_name.replace("-", "").isalnum():
        return None
    try:
        return botocore.session.get_session().get_service_model(signing_name).protocol
    except UnknownServiceError:
        return None


def _cbor_text(text: str) -> bytes:
    data = text.encode()
    n = len(data)
    if n < 24:
        head = bytes([0x60 | n])
    elif n < 256:
        head = bytes([0x78, n])
    else:
        head = bytes([0x79]) + n.to_bytes(2, "big")
    return head + data


def _cbor_error(code: str, text: str) -> bytes:
    """A CBOR map of two text strings (RFC 8949 major types 5 and 3): `__type` and `message`."""
    return bytes([0xA2]) + _cbor_text("__type") + _cbor_text(code) + _cbor_text("message") + _cbor_text(text)


def unserved_response(request: HttpRequest, signing_name: str, request_id: str) -> HttpResponse:
    """The 501 for a request whose credential scope names a service Strata does not serve."""
    text = message(signing_name)
    headers = [("x-amzn-requestid", request_id), ("x-amz-request-id", request_id)]
    if (request.headers.get("smithy-protocol") or "").lower() == "rpc-v2-cbor":
        headers += [("content-type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")]
        return HttpResponse(STATUS, headers, _cbor_error(CODE, text))
    content_type = (request.headers.get("content-type") or "").lower()
    protocol = _model_protocol(signing_name)
    if request.headers.get("x-amz-target") is not None:
        protocol = "json"
    elif content_type.startswith("application/x-www-form-urlencoded") or "Action=" in request.query_string:
        protocol = "query"
    if protocol in ("query", "ec2", "rest-xml"):
        body = (
            f"{XML_DECLARATION}<ErrorResponse><Error><Type>Sender</Type><Code>{CODE}</Code>"
            f"<Message>{escape_text(text)}</Message></Error>"
            f"<RequestId>{escape_text(request_id)}</RequestId></ErrorResponse>"
        )
        return HttpResponse(STATUS, [*headers, ("content-type", "text/xml")], body.encode())
    json_type = content_type if content_type.startswith("application/x-amz-json") else "application/json"
    body_json = json.dumps({"__type": CODE, "message": text}).encode()
    return HttpResponse(
        STATUS, [*headers, ("content-type", json_type), ("x-amzn-errortype", CODE)], body_json
    )
