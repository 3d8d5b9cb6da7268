"""The json protocol (DynamoDB, KMS, CloudWatch): `X-Amz-Target` names the operation, the body is
the input.

Responses are `application/x-amz-json-<jsonVersion>` with `x-amzn-RequestId`; errors are
`{"__type": "<prefix>#Code", "message": ...}` where the prefix is model metadata
(`x-strata-errorTypePrefix`, e.g. DynamoDB's `com.amazonaws.dynamodb.v20120810#`) and the
message key follows the error shape's own member name (`message` or `Message`).

A service that moved from the query protocol (`awsQueryCompatible` in its model: CloudWatch) names
the error shape in `__type` and its old query code in `x-amzn-query-error: <Code>;<Sender|Receiver>`,
which SDKs read so that code written against the query protocol sees the codes it always saw.
"""

from __future__ import annotations

import json
import re
import zlib
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from botocore.model import OperationModel, ServiceModel, Shape

from strata.protocol.codecs.base import BaseCodec, ParseFn, SerializeFn
from strata.protocol.codecs.json_shapes import JsonReader, JsonWriter
from strata.protocol.codecs.required import Path
from strata.protocol.codecs.values import MalformedDocument, b64encode, format_timestamp
from strata.protocol.constraints import validation_errors, validation_message
from strata.protocol.errors import ServiceError
from strata.protocol.http import HttpRequest, HttpResponse

# A run of 19+ digits, found in a copy of the body with every digit made "0": a translate and a
# substring search are C loops over the bytes (a regex scan of a 400 KB item took ~12 ms).
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_RUN = b"0" * 19
_ZEROS = re.compile(rb"0+")
# What may stand just before the first digit of a run that is part of a number token (its sign,
# a fraction or exponent, a separator, whitespace); before a run inside a string stands anything
# (its opening quote, a letter ...).
_BEFORE_NUMBER = frozenset(b"+-.eE:[, \t\n\r")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]").search
_LONE_SURROGATE = re.compile("[\ud800-\udfff]").search


def load_json_object(body: bytes) -> dict:
    """A request body as a JSON object; empty means `{}`.

    orjson first (a fifth of json's cost on a small request); what it refuses but the standard
    library reads (NaN literals, a BOM, blank bodies) goes the slow way, and so does any body that
    may hold a number of 19+ digits (orjson reads integers beyond 64 bits as floats; json keeps
    them exact), so the accepted language and the values are exactly json's.
    """
    if not body:
        return {}
    try:
        digits = body.translate(_DIGITS_AS_ZERO)
        if _LONG_RUN in digits and _may_hold_long_number(body, digits):
            raise orjson.JSONDecodeError("long number", "", 0)
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        if not body.strip():
            return {}
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise MalformedDocument("request body is not valid JSON") from e
        if _SURROGATE_ESCAPE(body) and _has_lone_surrogate(doc):
            # json reads "\ud800" into a str no UTF-8 can carry (orjson refuses it): such text
            # could be neither stored nor answered, so the document is not valid.
            raise MalformedDocument(
                "request body is not valid JSON: unpaired surrogate in a string"
            ) from None
    if not isinstance(doc, dict):
        raise MalformedDocument("request body must be a JSON object")
    return doc


def _may_hold_long_number(body: bytes, digits: bytes) -> bool:
    """Whether a number of 19 or more digits may stand in the document (outside strings);
    `digits` is the body with every digit made "0".

    A run of digits that begins inside a string (a DynamoDB number is the string of
    `{"N": "12345678901234567890123"}`, digits after most letters) is text orjson reads like json.
    Conservative: a run after a separator, a sign or whitespace counts, in a string or not.
    """
    at = digits.find(_LONG_RUN)
    while at >= 0:
        if at == 0 or body[at - 1] in _BEFORE_NUMBER:
            return True
        end = _ZEROS.match(digits, at)
        at = digits.find(_LONG_RUN, end.end() if end is not None else at + 19)
    return False


def _has_lone_surrogate(doc: Any) -> bool:
    """Whether any string (key or value) in a decoded JSON document holds an unpaired surrogate."""
    stack = [doc]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if _LONE_SURROGATE(value):
                return True
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


def _json_default(value: Any) -> Any:
    """Values a provider may hand back where the model has a plain type (only called for those)."""
    if isinstance(value, Decimal):
        return str(value)  # DynamoDB numbers are strings on the wire
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, datetime):
        return format_timestamp(value, "unixtimestamp")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return b64encode(bytes(value))
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


# datetimes and dataclasses go through _json_default as they do with json.dumps.
_ORJSON_OPTS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def dump_json(value: Any) -> bytes:
    """Compact UTF-8 JSON; orjson, with json.dumps for what orjson refuses (integers beyond 64
    bits, non-string keys)."""
    try:
        return orjson.dumps(value, default=_json_default, option=_ORJSON_OPTS)
    except orjson.JSONEncodeError:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_json_default)
        try:
            return text.encode()
        except UnicodeEncodeError:
            # An unpaired surrogate (say, echoed in an error message): escape it (\ud800 style).
            return json.dumps(value, separators=(",", ":"), default=_json_default).encode()


def json_error_body(
    writer: JsonWriter, shape: Shape | None, error: ServiceError, type_name: str | None
) -> dict[str, Any]:
    """The JSON error document: message under the error shape's own key, then modeled fields."""
    members = shape.members if shape is not None else {}
    message_key = "Message" if "Message" in members and "message" not in members else "message"
    body: dict[str, Any] = {}
    if type_name is not None:
        body["__type"] = type_name
    body[message_key] = error.message
    if "ErrorCode" in members and "ErrorCode" not in error.fields:
        body["ErrorCode"] = error.code  # EFS-style error shapes repeat the code in the body
    fields = {k: v for k, v in error.fields.items() if v is not None and k not in ("message", "Message")}
    if fields:
        if shape is not None:
            body.update(writer.get(shape)(fields))
            for k, v in fields.items():  # fields the shape does not model still reach the client
                if k not in members:
                    body.setdefault(k, v)
        else:
            body.update(fields)
    return body


class JsonCodec(BaseCodec):
    protocol = "json"

    def __init__(self, model: ServiceModel) -> None:
        super().__init__(model)
        self.target_prefix = model.metadata.get("targetPrefix", "")
        self.content_type = f"application/x-amz-json-{model.metadata.get('jsonVersion', '1.0')}"
        self.error_prefix = model.metadata.get("x-strata-errorTypePrefix", "")
        # DynamoDB sends a CRC32 of every body; SDKs verify it when present (x-strata-crc32Header).
        self.crc32 = bool(model.metadata.get("x-strata-crc32Header"))
        self.query_compatible = "awsQueryCompatible" in model.metadata
        self.reader = JsonReader(skip_located=False)
        self.writer = JsonWriter(skip_located=False)

    def find_operation(self, request: HttpRequest) -> tuple[OperationModel, dict[str, str]]:
        target = request.headers.get("x-amz-target") or ""
        prefix, _, name = target.rpartition(".")
        op = self.operation(name) if prefix == self.target_prefix else None
        if op is None:
            raise ServiceError(
                "UnknownOperationException", f"Unknown operation {target or '(no X-Amz-Target)'}", 400
            )
        return op, {}

    def malformed(self, message: str, document: bool = False) -> ServiceError:
        return ServiceError("SerializationException", message, 400)

    def missing(self, op: OperationModel, path: Path, params: dict | None = None) -> ServiceError:
        # A JSON (Coral) service lists the missing member among every other broken constraint
        # of the request, in the order of the input shape's members: "2 validation errors ...".
        errors = validation_errors(op.input_shape, params) if params is not None else []
        if errors:
            return ServiceError("ValidationException", validation_message(errors), 400)
        return super().missing(op, path)

    def _compile_parser(self, op: OperationModel) -> ParseFn:
        shape = op.input_shape
        if shape is None:
            return lambda request, path_params: {}
        read = self.reader.get(shape)
        return lambda request, path_params: read(load_json_object(request.body))

    def _compile_serializer(self, op: OperationModel) -> SerializeFn:
        shape = op.output_shape
        write = self.writer.get(shape) if shape is not None else (lambda result: {})
        content_type = self.content_type
        crc32 = self.crc32

        def serialize(result: dict, request_id: str) -> HttpResponse:
            body = dump_json(write(result))
            headers = [
                ("x-amzn-RequestId", request_id),
                ("Content-Type", content_type),
                ("Content-Length", str(len(body))),
            ]
            if crc32:
                headers.append(("x-amz-crc32", str(zlib.crc32(body))))
            return HttpResponse(200, headers, body)

        return serialize

    def _render_error(self, op: OperationModel | None, error: ServiceError, request_id: str) -> HttpResponse:
        shape = self.error_shape(error.code)
        type_name = error.code
        if self.query_compatible and shape is not None:
            type_name = shape.name
        doc = json_error_body(self.writer, shape, error, self.error_prefix + type_name)
        body = dump_json(doc)
        headers = [
            ("x-amzn-RequestId", request_id),
            ("Content-Type", self.content_type),
            ("Content-Length", str(len(body))),
        ]
        if self.query_compatible:
            fault = "Sender" if error.sender_fault else "Receiver"
            headers.append(("x-amzn-query-error", f"{error.code};{fault}"))
        if self.crc32:
            headers.append(("x-amz-crc32", str(zlib.crc32(body))))
        return HttpResponse(error.status, headers, body)
