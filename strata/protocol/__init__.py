"""Wire protocols: one generic parser and serializer per AWS protocol, driven by botocore's models.

A codec turns an `HttpRequest` into a dict shaped like the operation's input shape and a
provider's result dict (shaped like the output shape) into an `HttpResponse`; errors become the
protocol's error format. The codec never knows AWS semantics, and providers never see HTTP.

    codec = codec_for("dynamodb")
    op, path_params = codec.find_operation(request)
    params = codec.parse(op, request, path_params)
    response = codec.serialize(op, result, request_id)
    response = codec.serialize_error(op, error, request_id)
"""

from __future__ import annotations

from functools import cache
from typing import Protocol

from botocore.model import OperationModel

from strata.protocol.errors import ServiceError
from strata.protocol.http import HttpRequest, HttpResponse
from strata.protocol.spec import service_model


class Codec(Protocol):
    service: str

    def find_operation(self, request: HttpRequest) -> tuple[OperationModel, dict[str, str]]:
        """The operation a request names, and any URI path parameters (REST protocols).

        Raises ServiceError in the protocol's format when the request names no known operation.
        """
        ...

    def parse(self, op: OperationModel, request: HttpRequest, path_params: dict[str, str]) -> dict: ...

    def serialize(self, op: OperationModel, result: dict, request_id: str) -> HttpResponse: ...

    def serialize_error(
        self, op: OperationModel | None, error: ServiceError, request_id: str
    ) -> HttpResponse: ...


@cache
def codec_for(service: str) -> Codec:
    """The codec for a service, chosen by its model's protocol; compiled once and cached."""
    from strata.protocol.codecs import CODECS

    model = service_model(service)
    return CODECS[model.protocol](model)


@cache
def _query_codec(service: str) -> Codec | None:
    """The query codec of a service that also takes the query protocol (its model's patch lists
    it under `x-strata-alsoProtocols`: CloudWatch, which older SDKs still call that way)."""
    from strata.protocol.codecs import CODECS

    model = service_model(service)
    return CODECS["query"](model) if "query" in model.metadata.get("x-strata-alsoProtocols", ()) else None


def codec_for_request(service: str, request: HttpRequest) -> Codec:
    """The codec of this request: a json-protocol service's query codec when the request names no
    operation in `X-Amz-Target` (a form-encoded `Action=` call), else the service's own."""
    query = _query_codec(service)
    if query is not None and "x-amz-target" not in request.headers:
        return query
    return codec_for(service)
