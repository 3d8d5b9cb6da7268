"""Property tests of every parser a request passes through: any input either parses or is refused
with the protocol's own error (MalformedInput / ServiceError / XmlError), never anything else.

XML, JSON, query forms (through the real codecs and models), header values, path labels,
aws-chunked framing, SigV4 canonicalisation (against botocore's signer as the oracle) and
S3 object keys (`..`, NUL, the 1,024-byte UTF-8 limit). The wire-level counterpart, random
requests to a running server, is tests/test_fuzz_requests.py.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strata.auth import Authenticator
from strata.auth.canonical import canonical_query, canonical_uri, remove_dot_segments
from strata.auth.chunked import ChunkedDecoder
from strata.config import Settings
from strata.protocol import codec_for
from strata.protocol.codecs.json_rpc import load_json_object
from strata.protocol.codecs.values import (
    MalformedInput,
    parse_bool_text,
    parse_float_text,
    parse_int_text,
    split_header_list,
    to_datetime,
)
from strata.protocol.errors import ServiceError
from strata.protocol.http import Headers, HttpRequest
from strata.protocol.router import _decode_label
from strata.protocol.xml import XmlError, escape_text, parse_xml
from strata.services.s3.names import MAX_KEY_BYTES, check_key

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ANY_TEXT = st.text(max_size=60)  # surrogates and control characters included
BYTES = st.binary(max_size=200)


# ---- documents


XML_PIECES = st.sampled_from(
    ["<a>", "</a>", "<b x='1'>", "</b>", "text", "&amp;", "&bogus;", "<!DOCTYPE a [<!ENTITY e 'x'>]>", "&e;",
     "<![CDATA[", "]]>", "<?xml version='1.0'?>", "\x00", "\xff", "<a/>", "<", ">", "'", '"', "é"]
)  # fmt: skip


@FAST
@given(st.one_of(BYTES, st.lists(XML_PIECES, max_size=12).map("".join)))
def test_xml_reader(data: bytes | str) -> None:
    try:
        parse_xml(data)
    except XmlError:
        pass


@FAST
@given(ANY_TEXT)
def test_xml_writer_output_always_parses(text: str) -> None:
    assert parse_xml(f"<a>{escape_text(text)}</a>".encode("utf-8", "surrogatepass")) is not None


JSON_PIECES = st.sampled_from(
    ["{", "}", "[", "]", '"a"', ":", ",", "1", "-0", "1e999", "NaN", "null", "true", '"\\ud800"', '"\\u0000"',
     "\ufeff", "9" * 25, '"\\ud83d\\ude00"', " "]
)  # fmt: skip


@FAST
@given(st.one_of(BYTES, st.lists(JSON_PIECES, max_size=14).map(lambda p: "".join(p).encode())))
def test_json_reader(body: bytes) -> None:
    try:
        doc = load_json_object(body)
    except MalformedInput:
        return
    assert isinstance(doc, dict)


# ---- whole requests through the real codecs


def _json_request(target: str, body: bytes) -> HttpRequest:
    headers = Headers([("x-amz-target", target), ("content-type", "application/x-amz-json-1.0")])
    return HttpRequest("POST", "/", "", headers, host="localhost", body=body)


@FAST
@given(
    operation=st.sampled_from(["PutItem", "Query", "BatchWriteItem", "CreateTable", "TransactWriteItems"]),
    body=st.one_of(BYTES, st.lists(JSON_PIECES, max_size=14).map(lambda p: "".join(p).encode())),
)
def test_json_codec_parse(operation: str, body: bytes) -> None:
    codec = codec_for("dynamodb")
    op = codec.operation(operation)
    try:
        codec.parse(op, _json_request(f"DynamoDB_20120810.{operation}", body), {})
    except ServiceError as e:
        assert e.status == 400


FORM_KEYS = st.sampled_from(
    ["Action", "Version", "DBInstanceIdentifier", "MaxRecords", "Marker", "Tags.Tag.1.Key", "Tags.Tag.x.Value",
     "Filters.Filter.1.Name", "Filters.Filter.1.Values.Value.1", "Filters", "Tags.Tag", "Duration", ".", ""]
)  # fmt: skip


@FAST
@given(
    operation=st.sampled_from(
        ["DescribeDBInstances", "CreateDBParameterGroup", "DescribeEvents", "AddTagsToResource"]
    ),
    params=st.dictionaries(FORM_KEYS, st.one_of(ANY_TEXT, st.sampled_from(["1", "-1", "2147483648", "1_0"]))),
    raw=BYTES,
)
def test_query_codec_parse(operation: str, params: dict[str, str], raw: bytes) -> None:
    codec = codec_for("rds")
    op = codec.operation(operation)
    body = "&".join(f"{quote(k)}={quote(v, errors='surrogatepass')}" for k, v in params.items()).encode()
    headers = Headers([("content-type", "application/x-www-form-urlencoded")])
    for data in (body, raw):
        try:
            codec.parse(op, HttpRequest("POST", "/", "", headers, host="localhost", body=data), {})
        except ServiceError as e:
            assert e.status == 400


# ---- text values from headers, query strings and paths


@FAST
@given(ANY_TEXT)
def test_scalar_text_parsers(text: str) -> None:
    for parse in (parse_bool_text, parse_float_text, parse_int_text, split_header_list, to_datetime):
        try:
            parse(text)
        except MalformedInput:
            pass
        except ValueError as e:  # to_datetime's refusals are ValueErrors of its own
            assert parse is to_datetime, e


@FAST
@given(
    st.lists(
        st.one_of(st.sampled_from(["%ff", "%c3", "%a9", "%00", "%2F", "%", "%g1", "/"]), ANY_TEXT), max_size=8
    )
)
def test_path_label_decoding(parts: list[str]) -> None:
    try:
        decoded = _decode_label("".join(parts))
    except ServiceError as e:
        assert e.code == "InvalidURI"
        return
    decoded.encode("utf-8")  # always valid text


# ---- aws-chunked framing


@FAST
@given(data=BYTES, cut=st.integers(0, 200))
def test_chunked_decoder_on_garbage(data: bytes, cut: int) -> None:
    decoder = ChunkedDecoder(decoded_length=None)
    try:
        list(decoder.feed(data[:cut]))
        list(decoder.feed(data[cut:]))
        decoder.finish()
    except ServiceError as e:
        assert e.status in (400, 403)


# ---- SigV4 canonicalisation, with botocore's signer as the oracle

AUTH = Authenticator(Settings())
CREDS = Credentials("test", "test")
KEY_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)


@FAST
@given(
    key=KEY_TEXT,
    query=st.dictionaries(
        KEY_TEXT, st.text(st.characters(blacklist_categories=("Cs",)), max_size=10), max_size=3
    ),
)
def test_botocore_signed_s3_requests_verify(key: str, query: dict[str, str]) -> None:
    path = "/bucket/" + quote(key, safe="/~")
    qs = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in sorted(query.items()))
    req = AWSRequest("GET", "http://localhost" + path + (f"?{qs}" if qs else ""))
    S3SigV4Auth(CREDS, "s3", "us-east-1").add_auth(req)
    prepared = req.prepare()
    headers = Headers([(k, v.decode() if isinstance(v, bytes) else v) for k, v in prepared.headers.items()])
    headers.add("host", "localhost")
    target = prepared.url.split("localhost", 1)[1]
    raw_path, _, query_string = target.partition("?")
    request = HttpRequest("GET", raw_path, query_string, headers, host="localhost")
    assert AUTH.authenticate(request, "s3", "GetObject") is not None


@FAST
@given(path=st.lists(st.sampled_from(["a", "..", ".", "", "%2F", "é", "%ff", "b c"]), max_size=8))
def test_botocore_signed_json_requests_verify(path: list[str]) -> None:
    raw = "/" + "/".join(quote(p, safe="%") for p in path)
    req = AWSRequest(
        "POST", "http://localhost" + raw, data=b"{}", headers={"X-Amz-Target": "DynamoDB_20120810.ListTables"}
    )
    SigV4Auth(CREDS, "dynamodb", "us-east-1").add_auth(req)
    prepared = req.prepare()
    headers = Headers([(k, v.decode() if isinstance(v, bytes) else v) for k, v in prepared.headers.items()])
    headers.add("host", "localhost")
    request = HttpRequest(
        "POST", prepared.url.split("localhost", 1)[1], "", headers, host="localhost", body=b"{}"
    )
    assert AUTH.authenticate(request, "dynamodb", "ListTables") is not None


@FAST
@given(ANY_TEXT, ANY_TEXT)
def test_canonicalisation_never_raises(path: str, query: str) -> None:
    for s3 in (True, False):
        assert isinstance(canonical_uri("/" + path, s3), str)
    assert isinstance(canonical_query(query), str)
    assert remove_dot_segments("/" + path).startswith("/")


# ---- S3 object keys


@FAST
@given(
    st.lists(st.sampled_from(["..", ".", "/", "\x00", "a", "é", "😀", "%", "\\"]), max_size=700).map("".join)
)
def test_object_key_limits(key: str) -> None:
    size = len(key.encode("utf-8"))
    try:
        check_key(key)
    except ServiceError as e:
        assert (size == 0 and e.code == "InvalidArgument") or (
            size > MAX_KEY_BYTES and e.code == "KeyTooLongError"
        )
        return
    assert 0 < size <= MAX_KEY_BYTES


@pytest.mark.parametrize("key", ["a" * 1024, "é" * 512, "😀" * 256])
def test_object_key_at_the_limit(key: str) -> None:
    check_key(key)
    with pytest.raises(ServiceError):
        check_key(key + "a")
