"""What every codec shares: per-operation plans compiled on first use, error shapes, body streams.

A subclass implements `_compile_parser(op)` and `_compile_serializer(op)`, each returning a plain
function; `parse` and `serialize` look the function up by operation name and call it, so the model
is walked once per operation for the life of the process. Malformed input surfaces from those
functions as `MalformedInput` and becomes the protocol's own error via `malformed(message)`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from typing import Any

from botocore.model import OperationModel, ServiceModel, Shape

from strata.protocol.codecs.required import Path, RequiredIndex, coral_message
from strata.protocol.codecs.values import MalformedDocument, MalformedInput
from strata.protocol.errors import ServiceError
from strata.protocol.http import BodyStream, HttpRequest, HttpResponse

ParseFn = Callable[[HttpRequest, dict[str, str]], dict]
SerializeFn = Callable[[dict, str], HttpResponse]


class BaseCodec(ABC):
    """Plan caches and error-shape lookups; the wire details live in the protocol subclasses."""

    protocol = ""

    def __init__(self, model: ServiceModel) -> None:
        self.model = model
        self.service = model.service_name
        # operation -> (its parser, the top-level members it requires, whether any deeper one is)
        self._parsers: dict[str, tuple[ParseFn, tuple[str, ...], bool]] = {}
        self._serializers: dict[str, SerializeFn] = {}
        self._operations = {name: model.operation_model(name) for name in model.operation_names}
        self.required = RequiredIndex(collections=self.protocol in ("json", "rest-json"))
        self.error_shapes: dict[str, Shape] = {}
        for shape in model.error_shapes:
            self.error_shapes[shape.error_code or shape.name] = shape
            self.error_shapes.setdefault(shape.name, shape)

    # -- the Codec protocol -------------------------------------------------------------------
    @abstractmethod
    def find_operation(self, request: HttpRequest) -> tuple[OperationModel, dict[str, str]]: ...

    def parse(self, op: OperationModel, request: HttpRequest, path_params: dict[str, str]) -> dict:
        compiled = self._parsers.get(op.name)
        if compiled is None:
            present, walk = self.required.top(op.input_shape)
            compiled = self._parsers[op.name] = (self._compile_parser(op), present, walk)
        fn, present, walk = compiled
        try:
            params = fn(request, path_params)
        except MalformedInput as e:
            raise self.malformed(str(e), document=isinstance(e, MalformedDocument)) from e
        except RecursionError as e:  # absurdly deep nesting in a request document
            raise self.malformed("request nested too deeply", document=True) from e
        # Required members: the top level's here, deeper ones (a Tag without its Key) by the walk.
        for name in present:
            if params.get(name) is None:
                raise self.missing(op, (name,), params)
        if walk:
            missing = self.required.first_missing(op.input_shape, params)
            if missing is not None:
                raise self.missing(op, missing, params)
        return params

    def serialize(self, op: OperationModel, result: dict | None, request_id: str) -> HttpResponse:
        fn = self._serializers.get(op.name)
        if fn is None:
            fn = self._serializers[op.name] = self._compile_serializer(op)
        return fn(result or {}, request_id)

    def serialize_error(
        self, op: OperationModel | None, error: ServiceError, request_id: str
    ) -> HttpResponse:
        response = self._render_error(op, error, request_id)
        for name, value in error.headers.items():
            response.headers.append((name, value))
        if error.status == 304:
            # Not Modified never has a body; clients read the code from the status ("304").
            response.body = b""
            response.headers = [
                (k, v) for k, v in response.headers if k.lower() not in ("content-length", "content-type")
            ]
        elif op is not None and op.http.get("method") == "HEAD":
            response.body = b""
        return response

    # -- for subclasses -----------------------------------------------------------------------
    def operation(self, name: str) -> OperationModel | None:
        return self._operations.get(name)

    def malformed(self, message: str, document: bool = False) -> ServiceError:
        """The protocol's answer to input that does not match the model (`document`: in the body)."""
        return ServiceError("ValidationError", message, 400)

    def missing(self, op: OperationModel, path: Path, params: dict | None = None) -> ServiceError:
        """The protocol's answer to a request without a member the model requires (at `path`;
        `params`: the whole parsed request)."""
        return ServiceError("ValidationException", coral_message(path), 400)

    @abstractmethod
    def _compile_parser(self, op: OperationModel) -> ParseFn: ...

    @abstractmethod
    def _compile_serializer(self, op: OperationModel) -> SerializeFn: ...

    @abstractmethod
    def _render_error(
        self, op: OperationModel | None, error: ServiceError, request_id: str
    ) -> HttpResponse: ...

    def error_shape(self, code: str) -> Shape | None:
        return self.error_shapes.get(code)


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


def body_stream(request: HttpRequest) -> BodyStream:
    """The request body as a stream: the gateway's stream, or the bytes it already read."""
    if request.stream is not None:
        return request.stream
    return BodyStream(_one_chunk(request.body), len(request.body))


def content_length(body: Any) -> int | None:
    """The length of a response body when it is known without reading it."""
    if isinstance(body, (bytes, bytearray)):
        return len(body)
    length = getattr(body, "length", None)
    if length is not None:
        return length
    path = getattr(body, "path", None)
    if path is not None:
        try:
            return path.stat().st_size - body.offset
        except OSError:
            return None
    return None
