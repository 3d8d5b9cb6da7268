"""The request's query parser decodes exactly as urllib's parse_qsl(keep_blank_values=True)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from hypothesis import given
from hypothesis import strategies as st

from strata.protocol.http import Headers, HttpRequest

_CHARS = st.text(alphabet="ab=&%+2F41E9éx ~;", max_size=40)


@given(_CHARS)
def test_query_matches_parse_qsl(query: str) -> None:
    request = HttpRequest("GET", "/", query, Headers())
    assert request.query == parse_qsl(query, keep_blank_values=True)


def test_presigned_query_is_decoded() -> None:
    query = "X-Amz-Credential=test%2F20261126%2Fus-east-1%2Fs3%2Faws4_request&versioning&a+b=c+d"
    request = HttpRequest("GET", "/", query, Headers())
    assert request.query_dict() == {
        "X-Amz-Credential": "test/20261126/us-east-1/s3/aws4_request",
        "versioning": "",
        "a b": "c d",
    }
