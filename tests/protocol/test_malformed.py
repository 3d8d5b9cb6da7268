"""Broken requests never crash a codec: every operation, given a valid request with its body,
query values or header values garbled, either parses or raises the protocol's ServiceError."""

from __future__ import annotations

import pytest
from botocore.model import OperationModel
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from strata.protocol import codec_for
from strata.protocol.errors import ServiceError
from strata.protocol.http import Headers, HttpRequest
from tests.protocol.shape_strategies import Generator
from tests.protocol.test_roundtrip import SERVICES, http_request, operations

GARBAGE = st.one_of(
    st.binary(max_size=40),
    st.sampled_from(
        [b"<", b"{", b"[]", b"null", b"<a><b></a>", b'{"a":', b"\xff\xfe", b"x=1&&&==", b"<!DOCTYPE a>"]
    ),
)
TEXT = st.text(max_size=10)
HOW = ["body", "truncate", "query", "headers"]
SETTINGS = settings(
    max_examples=4,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)


def garble(request: HttpRequest, how: str, junk: bytes, text: str) -> HttpRequest:
    if how == "body":
        request.body = junk
    elif how == "truncate":
        request.body = request.body[: len(request.body) // 2]
    elif how == "query":
        pairs = [(k, text) for k, _ in request.query] or [("x", text)]
        request.query_string = "&".join(f"{k}={v}" for k, v in pairs).replace("#", "%23")
        request._query = None
        if request.body and b"=" in request.body:
            request.body = request.body.replace(b"=", b"=" + junk[:3], 1)
    elif how == "headers":
        request.headers = Headers([(k, text) for k, _ in request.headers.items()])
    return request


def _runner(service: str, op: OperationModel, gen: Generator):  # noqa: ANN202 - a hypothesis test
    codec = codec_for(service)

    @SETTINGS
    @given(gen.for_operation(op, output=False), st.sampled_from(HOW), GARBAGE, TEXT)
    def run(params: dict, how: str, junk: bytes, text: str) -> None:
        request = garble(http_request(op, params), how, junk, text)
        try:
            found, path_params = codec.find_operation(request)
            codec.parse(found, request, path_params)
        except ServiceError as e:
            assert 400 <= e.status < 500

    return run


@pytest.mark.parametrize("service", SERVICES)
def test_garbled_requests_raise_service_errors_only(service: str) -> None:
    gen = Generator()
    crashes: dict[str, str] = {}
    for op in operations(service):
        try:
            _runner(service, op, gen)()
        except Exception as e:  # noqa: BLE001 - reported together below
            crashes[op.name] = f"{type(e).__name__}: {str(e)[:300]}"
    assert not crashes, crashes
