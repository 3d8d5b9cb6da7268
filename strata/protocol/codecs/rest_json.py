"""The rest-json protocol (EFS, EBS direct APIs): REST routing, JSON bodies.

Errors carry the code in the `x-amzn-ErrorType` header and a JSON body with the message (under the
error shape's own key) and any modeled fields.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.model import OperationModel, ServiceModel, Shape

from strata.protocol.codecs.json_rpc import dump_json, json_error_body, load_json_object
from strata.protocol.codecs.json_shapes import JsonReader, JsonWriter
from strata.protocol.codecs.rest import RestCodec
from strata.protocol.errors import ServiceError
from strata.protocol.http import HttpResponse


class RestJsonCodec(RestCodec):
    protocol = "rest-json"
    body_content_type = "application/json"

    def __init__(self, model: ServiceModel) -> None:
        super().__init__(model)
        self.reader = JsonReader(skip_located=True)
        self.writer = JsonWriter(skip_located=True)

    def malformed(self, message: str, document: bool = False) -> ServiceError:
        return ServiceError("SerializationException", message, 400)

    def body_reader(self, shape: Shape) -> Callable[[bytes], Any]:
        read = self.reader.get(shape)
        return lambda body: read(load_json_object(body))

    def body_writer(self, shape: Shape, root: str | None) -> Callable[[Any], bytes]:
        write = self.writer.get(shape)
        return lambda value: dump_json(write(value))

    def _render_error(self, op: OperationModel | None, error: ServiceError, request_id: str) -> HttpResponse:
        body = dump_json(json_error_body(self.writer, self.error_shape(error.code), error, None))
        headers = self.response_headers(request_id) + [
            ("x-amzn-ErrorType", error.code),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
        ]
        return HttpResponse(error.status, headers, body)
