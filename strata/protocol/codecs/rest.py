"""REST protocols (rest-xml, rest-json): URI labels, query strings, headers, status codes, payloads.

Operations are found by the router compiled from every `requestUri`. Input members come from the
`location` their model names (uri, querystring incl. map/list querystrings, header, `headers`
prefix maps such as S3's `x-amz-meta-`), the rest from the body: a `payload` member (a streaming
blob becomes a BodyStream, a structure is parsed by the subclass's body reader) or, without a
payload, the body members together. Output goes the same way in reverse.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from operator import itemgetter
from typing import Any

from botocore.model import OperationModel, ServiceModel, Shape

from strata.protocol.codecs.base import BaseCodec, ParseFn, SerializeFn, body_stream, content_length
from strata.protocol.codecs.eventstream import EventStreamWriter
from strata.protocol.codecs.values import (
    MalformedDocument,
    MalformedInput,
    b64decode,
    b64encode,
    bool_text,
    float_text,
    format_timestamp,
    int_text_reader,
    json_header_decode,
    json_header_encode,
    parse_bool_text,
    parse_float_text,
    split_header_list,
    to_datetime,
)
from strata.protocol.errors import ServiceError
from strata.protocol.http import FileBody, HttpRequest, HttpResponse
from strata.protocol.router import RestRouter

TextFn = Callable[[str], Any]
_FIRST = itemgetter(0)


_INTEGERS = ("integer", "long", "short", "byte")


def text_reader(shape: Shape, location: str) -> TextFn:
    """How to read one member from header/query/uri text."""
    kind = shape.type_name
    if kind == "list":
        item = text_reader(shape.member, location)
        if location == "header":
            return lambda text: [item(v) for v in split_header_list(text)]
        return item  # query lists are read value by value
    if kind in _INTEGERS:
        return int_text_reader(kind)
    if kind in ("float", "double"):
        return parse_float_text
    if kind == "boolean":
        return parse_bool_text
    if kind == "timestamp":
        return to_datetime
    if kind == "blob":
        return b64decode
    if shape.serialization.get("jsonvalue") and location == "header":
        return json_header_decode
    return str


def text_writer(shape: Shape, location: str) -> Callable[[Any], str]:
    """How to write one member as header/query text (timestamps: HTTP dates in headers)."""
    kind = shape.type_name
    if kind == "list":
        item = text_writer(shape.member, location)
        return lambda value: ",".join(item(v) for v in value if v is not None)
    if kind == "boolean":
        return bool_text
    if kind in ("float", "double"):
        return float_text
    if kind == "timestamp":
        fmt = shape.serialization.get("timestampFormat", "rfc822" if location == "header" else "iso8601")
        return lambda value: str(format_timestamp(value, fmt))
    if kind == "blob":
        return b64encode
    if shape.serialization.get("jsonvalue") and location == "header":
        return json_header_encode
    return str


class RestCodec(BaseCodec):
    """Shared REST logic; subclasses supply the body format and the error document."""

    body_content_type = ""

    def __init__(self, model: ServiceModel) -> None:
        super().__init__(model)
        self.router = RestRouter(model)

    # -- finding the operation ------------------------------------------------------------------
    def find_operation(self, request: HttpRequest) -> tuple[OperationModel, dict[str, str]]:
        query = request.query_dict()
        header_names = set(request.headers.keys())
        found = self.router.match(request.method, request.routing_path, query, header_names)
        if found is None:
            raise self.unknown_operation(request, query, header_names)
        return found

    def unknown_operation(
        self, request: HttpRequest, query: dict[str, str], header_names: set[str]
    ) -> ServiceError:
        return ServiceError(
            "UnknownOperationException", f"No operation matches {request.method} {request.routing_path}", 404
        )

    # -- body hooks (subclasses) ----------------------------------------------------------------
    @abstractmethod
    def body_reader(self, shape: Shape) -> Callable[[bytes], dict]: ...

    def payload_reader(self, member: Shape) -> Callable[[bytes], Any]:
        """Reads a structure payload member (the whole body); XML checks the root element too."""
        return self.body_reader(member)

    @abstractmethod
    def body_writer(self, shape: Shape, root: str | None) -> Callable[[dict], bytes]: ...

    # -- parsing --------------------------------------------------------------------------------
    def _compile_parser(self, op: OperationModel) -> ParseFn:
        shape = op.input_shape
        if shape is None:
            return lambda request, path_params: {}
        uri, query, query_maps, headers, header_maps = [], [], [], [], []
        for name, m in shape.members.items():
            location = m.serialization.get("location")
            wire = m.serialization.get("name", name)
            if location == "uri":
                uri.append((wire, name, text_reader(m, "uri")))
            elif location == "querystring":
                if m.type_name == "map":
                    query_maps.append((name, m.value.type_name == "list"))
                else:
                    query.append((wire, name, text_reader(m, "querystring"), m.type_name == "list"))
            elif location == "header":
                headers.append((wire.lower(), name, text_reader(m, "header"), m.type_name == "list"))
            elif location == "headers":
                header_maps.append((wire.lower(), name))
        # Keys the requestUri names (`?versioning`, `x-id`-style literals) never land in a query map.
        literal_query = op.http.get("requestUri", "").partition("?")[2]
        claimed_query = {wire for wire, *_ in query} | {
            k.partition("=")[0] for k in literal_query.split("&") if k
        }
        header_table = {wire: (name, fn, is_list) for wire, name, fn, is_list in headers}
        query_table = {wire: (name, fn, is_list) for wire, name, fn, is_list in query}
        read_body = self._compile_body_parser(op, shape)

        def parse(request: HttpRequest, path_params: dict[str, str]) -> dict:
            out: dict[str, Any] = {}
            for wire, name, fn in uri:
                value = path_params.get(wire)
                if value is not None:
                    out[name] = fn(value)
            if query_maps:
                multi: dict[str, list[str]] = {}
                for k, v in request.query:
                    multi.setdefault(k, []).append(v)
                for wire, name, fn, is_list in query:
                    values = multi.get(wire)
                    if values is not None:
                        out[name] = [fn(v) for v in values] if is_list else fn(values[0])
                for name, list_values in query_maps:
                    rest = {
                        k: (v if list_values else v[0]) for k, v in multi.items() if k not in claimed_query
                    }
                    if rest:
                        out[name] = rest
            elif query:
                # The request's few parameters, not the model's many: a list collects every
                # value, any other member reads its first.
                for k, v in request.query:
                    entry = query_table.get(k)
                    if entry is not None:
                        name, fn, is_list = entry
                        if is_list:
                            out.setdefault(name, []).append(fn(v))
                        elif name not in out:
                            out[name] = fn(v)
            # Iterate the request's few headers rather than the model's many header members.
            for key, value in request.headers.items():
                entry = header_table.get(key)
                if entry is not None:
                    name, fn, is_list = entry
                    if value != "" or not is_list:
                        out[name] = fn(value)
                    continue
                for prefix, name in header_maps:
                    if key.startswith(prefix):
                        out.setdefault(name, {})[key[len(prefix) :]] = value
            if read_body is not None:
                try:
                    read_body(request, out)
                except MalformedDocument:
                    raise
                except MalformedInput as e:
                    raise MalformedDocument(str(e)) from e
            return out

        return parse

    def _compile_body_parser(
        self, op: OperationModel, shape: Shape
    ) -> Callable[[HttpRequest, dict], None] | None:
        payload = shape.serialization.get("payload")
        if payload is not None:
            member = shape.members[payload]
            if member.type_name == "blob":
                # botocore (and so the gateway, via op.has_streaming_input) streams every blob
                # payload; the provider always gets a BodyStream, even over an already-read body.

                def read_stream(request: HttpRequest, out: dict) -> None:
                    out[payload] = body_stream(request)

                return read_stream
            if member.type_name == "string":

                def read_text(request: HttpRequest, out: dict) -> None:
                    if request.body:
                        try:
                            out[payload] = bytes(request.body).decode()
                        except UnicodeDecodeError as e:
                            raise MalformedInput("request body is not UTF-8") from e

                return read_text
            reader = self.payload_reader(member)
            required = payload in shape.required_members

            def read_payload(request: HttpRequest, out: dict) -> None:
                if request.body and request.body.strip():
                    out[payload] = reader(request.body)
                elif required:
                    raise MalformedDocument(f"the request has no {payload} document")

            return read_payload
        if not any("location" not in m.serialization for m in shape.members.values()):
            return None
        reader = self.body_reader(shape)

        def read_members(request: HttpRequest, out: dict) -> None:
            if request.body and request.body.strip():
                for k, v in reader(request.body).items():
                    out.setdefault(k, v)

        return read_members

    # -- serializing ----------------------------------------------------------------------------
    def response_headers(self, request_id: str) -> list[tuple[str, str]]:
        return [("x-amzn-RequestId", request_id)]

    def output_root(self, op: OperationModel, shape: Shape) -> str:
        return shape.serialization.get("name") or f"{op.name}Result"

    def _compile_serializer(self, op: OperationModel) -> SerializeFn:
        shape = op.output_shape
        status = int(op.http.get("responseCode", 200))
        head = op.http.get("method") == "HEAD"
        if shape is None:
            return lambda result, request_id: HttpResponse(status, self.response_headers(request_id), b"")
        # member name -> (its place in the model, wire name, writer, is a list, what the header
        # frames: 1 Content-Type, 2 Content-Length, 0 neither). A result names a few of the many
        # header members (GetObject's output has ~40): the serializer walks the result, not the
        # model, and puts what it found back in the model's order.
        headers: dict[str, tuple[int, str, Callable[[Any], str], bool, int]] = {}
        header_maps, status_member = [], None
        framing = {"content-type": 1, "content-length": 2}
        for name, m in shape.members.items():
            location = m.serialization.get("location")
            wire = m.serialization.get("name", name)
            if location == "header":
                writer = text_writer(m, "header")
                headers[name] = (
                    len(headers),
                    wire,
                    writer,
                    m.type_name == "list",
                    framing.get(wire.lower(), 0),
                )
            elif location == "headers":
                header_maps.append((wire, name))
            elif location == "statusCode":
                status_member = name
        write_body = self._compile_body_serializer(op, shape)

        def serialize(result: dict, request_id: str) -> HttpResponse:
            out = self.response_headers(request_id)
            framed = 0  # bits: 1 a Content-Type header member was written, 2 a Content-Length one
            found = [(headers[name], value) for name, value in result.items() if name in headers]
            if len(found) > 1:
                found.sort(key=_FIRST)  # by model place (unique: the rest is never compared)
            for (_, wire, fn, is_list, frames), value in found:
                if value is not None and not (is_list and not value):
                    out.append((wire, fn(value)))
                    framed |= frames
            for prefix, name in header_maps:
                for k, v in (result.get(name) or {}).items():
                    out.append((prefix + k, str(v)))
                    framed |= framing.get((prefix + k).lower(), 0)
            code = status
            if status_member is not None and result.get(status_member) is not None:
                code = int(result[status_member])
            body: Any = b""
            if write_body is not None:
                body, content_type = write_body(result)
                if content_type and not framed & 1:
                    out.append(("Content-Type", content_type))
            if head:
                body = b""
            elif not framed & 2:
                length = content_length(body)
                if length is not None:
                    out.append(("Content-Length", str(length)))
            return HttpResponse(code, out, body)

        return serialize

    def _compile_body_serializer(
        self, op: OperationModel, shape: Shape
    ) -> Callable[[dict], tuple[Any, str]] | None:
        payload = shape.serialization.get("payload")
        if payload is not None:
            member = shape.members[payload]
            if member.serialization.get("eventstream"):
                events = EventStreamWriter(member, self.body_writer, self.body_content_type)

                def write_events(result: dict) -> tuple[Any, str]:
                    return events.stream(result.get(payload) or ()), "application/vnd.amazon.eventstream"

                return write_events
            if member.type_name in ("blob", "string"):

                def write_raw(result: dict) -> tuple[Any, str]:
                    value = result.get(payload)
                    if value is None:
                        return b"", ""
                    if isinstance(value, str):
                        return value.encode(), ""
                    if isinstance(value, (bytes, bytearray, FileBody)):
                        return value, ""
                    return value, ""  # an async iterator of bytes, passed through

                return write_raw
            root = member.serialization.get("name") or payload
            writer = self.body_writer(member, root)

            def write_payload(result: dict) -> tuple[Any, str]:
                value = result.get(payload)
                if value is None:
                    return b"", ""
                return writer(value), self.body_content_type

            return write_payload
        if not any("location" not in m.serialization for m in shape.members.values()):
            return None
        writer = self.body_writer(shape, self.output_root(op, shape))
        return lambda result: (writer(result), self.body_content_type)
