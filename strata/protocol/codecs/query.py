"""The query protocol (RDS, ElastiCache, STS, IAM) and its ec2 variant.

Requests are form parameters (query string and/or `application/x-www-form-urlencoded` body):
`Action` names the operation, nested members are dotted keys. Lists are `Name.member.N` (or
`Name.N` when flattened, and always for ec2), maps `Name.entry.N.key/value`. ec2 names members by
`queryName`, else the capitalised `locationName`, else the member name.

Responses are XML: `<OpResponse xmlns=...><OpResult>...</OpResult><ResponseMetadata><RequestId>`
for query, `<OpResponse xmlns=...><requestId>...` for ec2. Errors: `<ErrorResponse><Error>` for
query, `<Response><Errors><Error>...</Errors><RequestID>` for ec2.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from botocore.model import OperationModel, ServiceModel, Shape

from strata.protocol.codecs.base import BaseCodec, ParseFn, SerializeFn
from strata.protocol.codecs.compile import Fn, ShapeCompiler
from strata.protocol.codecs.required import Path, coral_message
from strata.protocol.codecs.rest_xml import xml_error_fields
from strata.protocol.codecs.values import (
    MalformedInput,
    b64decode,
    int_text_reader,
    parse_bool_text,
    parse_float_text,
    to_datetime,
)
from strata.protocol.codecs.xml_shapes import XmlWriter
from strata.protocol.errors import ServiceError
from strata.protocol.http import HttpRequest, HttpResponse
from strata.protocol.xml import XML_DECLARATION, escape_text, xmlns_attr

Tree = dict[str, Any]


def form_params(request: HttpRequest) -> dict[str, str]:
    """Query-string parameters overlaid with a form-encoded body (the body wins)."""
    params = dict(request.query)
    if request.body:
        content_type = (request.headers.get("content-type") or "").lower()
        if not content_type or "x-www-form-urlencoded" in content_type:
            try:
                params.update(parse_qsl(bytes(request.body).decode(), keep_blank_values=True))
            except UnicodeDecodeError as e:
                raise MalformedInput("request body is not UTF-8") from e
    return params


def params_tree(params: dict[str, str]) -> Tree:
    """`{"A.member.1.B": "x"}` -> `{"A": {"member": {"1": {"B": "x"}}}}`."""
    tree: Tree = {}
    for key, value in params.items():
        node = tree
        *parents, last = key.split(".")
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        if not isinstance(node.get(last), dict):
            node[last] = value
    return tree


def _indexed(node: Any) -> list[Any]:
    """`{"1": a, "2": b}` (or "" for an empty list) -> [a, b] in index order."""
    if node == "" or node is None:
        return []
    if not isinstance(node, dict):
        raise MalformedInput("expected an indexed list")
    try:
        return [node[k] for k in sorted(node, key=int)]
    except ValueError as e:
        raise MalformedInput("list index is not a number") from e


def _scalar(convert: Fn) -> Fn:
    def read(node: Any) -> Any:
        if not isinstance(node, str):
            raise MalformedInput("expected a single value")
        return convert(node)

    return read


_SCALARS: dict[str, Fn] = {
    "integer": int_text_reader("integer"),
    "long": int_text_reader("long"),
    "float": parse_float_text,
    "double": parse_float_text,
    "boolean": parse_bool_text,
    "timestamp": to_datetime,
    "blob": b64decode,
}


class QueryReader(ShapeCompiler):
    """Shape -> function(params tree node) -> Python value."""

    def __init__(self, ec2: bool) -> None:
        super().__init__()
        self.ec2 = ec2

    def wire_name(self, member: Shape, name: str) -> str:
        ser = member.serialization
        if self.ec2:
            if "queryName" in ser:
                return ser["queryName"]
            if "name" in ser:
                return ser["name"][:1].upper() + ser["name"][1:]
            return name
        if member.type_name == "list" and ser.get("flattened") and member.member.serialization.get("name"):
            return member.member.serialization["name"]
        return ser.get("name", name)

    def build(self, shape: Shape) -> Fn:
        kind = shape.type_name
        if kind == "structure":
            members = [(self.wire_name(m, name), name, self.get(m)) for name, m in shape.members.items()]

            def read_structure(node: Any) -> dict:
                if node == "":
                    return {}
                if not isinstance(node, dict):
                    raise MalformedInput(f"expected nested parameters for {shape.name}")
                return {name: fn(node[wire]) for wire, name, fn in members if wire in node}

            return read_structure
        if kind == "list":
            item = self.get(shape.member)
            if self.ec2 or shape.serialization.get("flattened"):
                return lambda node: [item(v) for v in _indexed(node)]
            item_name = shape.member.serialization.get("name", "member")

            def read_list(node: Any) -> list:
                if isinstance(node, dict):
                    node = node.get(item_name, "")
                return [item(v) for v in _indexed(node)]

            return read_list
        if kind == "map":
            key_name = (
                self.wire_name(shape.key, "key") if self.ec2 else shape.key.serialization.get("name", "key")
            )
            value_name = (
                self.wire_name(shape.value, "value")
                if self.ec2
                else shape.value.serialization.get("name", "value")
            )
            read_key, read_value = self.get(shape.key), self.get(shape.value)
            flat = bool(shape.serialization.get("flattened"))

            def read_map(node: Any) -> dict:
                if isinstance(node, dict) and not flat:
                    node = node.get("entry", "")
                out = {}
                for entry in _indexed(node):
                    if not isinstance(entry, dict) or key_name not in entry:
                        raise MalformedInput("map entry without a key")
                    out[read_key(entry[key_name])] = (
                        read_value(entry[value_name]) if value_name in entry else None
                    )
                return out

            return read_map
        return _scalar(_SCALARS.get(kind, str))


class QueryCodec(BaseCodec):
    protocol = "query"
    ec2 = False
    content_type = "text/xml"

    def __init__(self, model: ServiceModel) -> None:
        super().__init__(model)
        self.reader = QueryReader(self.ec2)
        self.writer = XmlWriter()
        self.xmlns = xmlns_attr(model.metadata.get("xmlNamespace"))

    def find_operation(self, request: HttpRequest) -> tuple[OperationModel, dict[str, str]]:
        try:
            action = form_params(request).get("Action")
        except MalformedInput as e:
            raise self.malformed(str(e)) from e
        if not action:
            raise ServiceError("MissingAction", "The request must contain the parameter Action.", 400)
        op = self.operation(action)
        if op is None:
            raise ServiceError(
                "InvalidAction", f"The action {action} is not valid for this web service.", 400
            )
        return op, {}

    def malformed(self, message: str, document: bool = False) -> ServiceError:
        return ServiceError("InvalidParameterValue", message, 400)

    def missing(self, op: OperationModel, path: Path, params: dict | None = None) -> ServiceError:
        if len(path) == 1:
            return ServiceError("MissingParameter", f"The request must contain the parameter {path[0]}", 400)
        return ServiceError("ValidationError", coral_message(path), 400)

    def _compile_parser(self, op: OperationModel) -> ParseFn:
        shape = op.input_shape
        if shape is None:
            return lambda request, path_params: {}
        read = self.reader.get(shape)
        return lambda request, path_params: read(params_tree(form_params(request)))

    def _response(self, status: int, body: str, request_id: str) -> HttpResponse:
        data = body.encode()
        headers = [
            ("x-amzn-RequestId", request_id),
            ("Content-Type", self.content_type),
            ("Content-Length", str(len(data))),
        ]
        return HttpResponse(status, headers, data)

    def _compile_serializer(self, op: OperationModel) -> SerializeFn:
        shape = op.output_shape
        root = f"{op.name}Response"
        xmlns = self.xmlns
        write = self.writer.get(shape) if shape is not None else None
        wrapper = shape.serialization.get("resultWrapper") if shape is not None else None

        def serialize(result: dict, request_id: str) -> HttpResponse:
            metadata = (
                f"<ResponseMetadata><RequestId>{escape_text(request_id)}</RequestId></ResponseMetadata>"
            )
            parts = [XML_DECLARATION]
            if write is None:
                parts.append(f"<{root}{xmlns}>{metadata}</{root}>")
            elif wrapper:
                parts.append(f"<{root}{xmlns}>")
                write(parts, wrapper, result)
                parts.append(f"{metadata}</{root}>")
            else:
                write(parts, root, result, xmlns)
                parts.insert(len(parts) - 1, metadata)
            return self._response(200, "".join(parts), request_id)

        return serialize

    def _render_error(self, op: OperationModel | None, error: ServiceError, request_id: str) -> HttpResponse:
        fields = xml_error_fields(
            self.writer, self.error_shape(error.code), error.fields, {"Code", "Message"}
        )
        kind = "Sender" if error.sender_fault else "Receiver"
        body = (
            f"{XML_DECLARATION}<ErrorResponse{self.xmlns}><Error><Type>{kind}</Type>"
            f"<Code>{escape_text(error.code)}</Code><Message>{escape_text(error.message)}</Message>{fields}"
            f"</Error><RequestId>{escape_text(request_id)}</RequestId></ErrorResponse>"
        )
        return self._response(error.status, body, request_id)


class Ec2Codec(QueryCodec):
    protocol = "ec2"
    ec2 = True

    def _compile_serializer(self, op: OperationModel) -> SerializeFn:
        shape = op.output_shape
        root = f"{op.name}Response"
        xmlns = self.xmlns
        write = self.writer.get(shape) if shape is not None else None

        def serialize(result: dict, request_id: str) -> HttpResponse:
            request_tag = f"<requestId>{escape_text(request_id)}</requestId>"
            parts = [XML_DECLARATION]
            if write is None:
                parts.append(f"<{root}{xmlns}>{request_tag}</{root}>")
            else:
                write(parts, root, result, xmlns)
                parts.insert(2, request_tag)
            return self._response(200, "".join(parts), request_id)

        return serialize

    def _render_error(self, op: OperationModel | None, error: ServiceError, request_id: str) -> HttpResponse:
        fields = xml_error_fields(
            self.writer, self.error_shape(error.code), error.fields, {"Code", "Message"}
        )
        body = (
            f"{XML_DECLARATION}<Response><Errors><Error><Code>{escape_text(error.code)}</Code>"
            f"<Message>{escape_text(error.message)}</Message>{fields}</Error></Errors>"
            f"<RequestID>{escape_text(request_id)}</RequestID></Response>"
        )
        return self._response(error.status, body, request_id)
