"""The codecs' behaviour beyond the round trip: routing edge cases, malformed input, error formats,
S3's quirks, streaming bodies, and plan caching."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from botocore.compat import HTTPHeaders
from botocore.parsers import create_parser

from strata.protocol import codec_for
from strata.protocol.errors import NotImplementedOperation, ServiceError
from strata.protocol.http import BodyStream, FileBody, Headers, HttpRequest
from strata.protocol.spec import operation_model
from strata.protocol.xml import XmlError, parse_xml


def request(
    method: str = "GET",
    path: str = "/",
    query: str = "",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> HttpRequest:
    return HttpRequest(
        method=method, raw_path=path, query_string=query, headers=Headers((headers or {}).items()), body=body
    )


def op_name(service: str, req: HttpRequest) -> str:
    return codec_for(service).find_operation(req)[0].name


def header(response, name: str) -> str | None:  # noqa: ANN001
    return next((v for k, v in response.headers if k.lower() == name.lower()), None)


# -- routing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "expected"),
    [
        ("GET", "/", "", {}, "ListBuckets"),
        ("PUT", "/b", "", {}, "CreateBucket"),
        ("GET", "/b", "", {}, "ListObjects"),
        ("GET", "/b", "list-type=2&prefix=a", {}, "ListObjectsV2"),
        ("GET", "/b", "versioning", {}, "GetBucketVersioning"),
        ("GET", "/b", "versions&prefix=x", {}, "ListObjectVersions"),
        ("POST", "/b", "delete", {}, "DeleteObjects"),
        ("GET", "/b/k", "", {}, "GetObject"),
        ("HEAD", "/b/k", "", {}, "HeadObject"),
        ("PUT", "/b/k", "", {}, "PutObject"),
        ("PUT", "/b/k", "", {"x-amz-copy-source": "/a/b"}, "CopyObject"),
        ("PUT", "/b/k", "partNumber=1&uploadId=u", {}, "UploadPart"),
        ("PUT", "/b/k", "partNumber=1&uploadId=u", {"x-amz-copy-source": "/a/b"}, "UploadPartCopy"),
        ("POST", "/b/k", "uploads", {}, "CreateMultipartUpload"),
        ("POST", "/b/k", "uploadId=u", {}, "CompleteMultipartUpload"),
        ("GET", "/b/k", "uploadId=u", {}, "ListParts"),
        ("DELETE", "/b/k", "uploadId=u", {}, "AbortMultipartUpload"),
        ("DELETE", "/b/k", "", {}, "DeleteObject"),
        ("GET", "/b/k", "tagging", {}, "GetObjectTagging"),
        ("GET", "/b/k", "attributes", {}, "GetObjectAttributes"),
        ("GET", "/b", "lifecycle", {}, "GetBucketLifecycleConfiguration"),
        # Newer SDKs (JS v3, Java v2) add `x-id=<Operation>`; it must not disturb routing.
        ("GET", "/b/k", "x-id=GetObject", {}, "GetObject"),
        ("POST", "/b", "delete&x-id=DeleteObjects", {}, "DeleteObjects"),
        ("PUT", "/b/k", "partNumber=2&uploadId=u&x-id=UploadPart", {}, "UploadPart"),
    ],
)
def test_s3_routes(method: str, path: str, query: str, headers: dict[str, str], expected: str) -> None:
    assert op_name("s3", request(method, path, query, headers)) == expected


def test_s3_keys_are_percent_decoded_from_the_routing_path() -> None:
    req = request("GET", "/ignored", "")
    req.route_path = "/my-bucket/a%2Fb%20c/%E2%9C%93/../x%3Fy"
    op, params = codec_for("s3").find_operation(req)
    assert op.name == "GetObject"
    assert params == {"Bucket": "my-bucket", "Key": "a/b c/✓/../x?y"}
    assert codec_for("s3").parse(op, req, params)["Key"] == "a/b c/✓/../x?y"


def test_router_is_compiled_once_per_service() -> None:
    assert codec_for("s3") is codec_for("s3")
    assert codec_for("s3").router is codec_for("s3").router


def test_plans_are_compiled_once_per_operation() -> None:
    codec = codec_for("dynamodb")
    op = operation_model("dynamodb", "GetItem")
    req = request("POST", "/", body=b'{"TableName":"t","Key":{"k":{"S":"v"}}}')
    codec.parse(op, req, {})
    first = codec._parsers["GetItem"]
    codec.parse(op, req, {})
    assert codec._parsers["GetItem"] is first


# -- unknown operations ---------------------------------------------------------------------------


def test_unknown_operations_answer_in_each_protocol() -> None:
    with pytest.raises(ServiceError) as e:
        codec_for("dynamodb").find_operation(
            request("POST", "/", headers={"x-amz-target": "DynamoDB_20120810.Nope"})
        )
    assert e.value.code == "UnknownOperationException"
    with pytest.raises(ServiceError) as e:
        codec_for("rds").find_operation(request("POST", "/", body=b"Action=Nope&Version=2014-10-31"))
    assert e.value.code == "InvalidAction"
    with pytest.raises(ServiceError) as e:
        codec_for("ec2").find_operation(request("GET", "/", "Action=Nope"))
    assert e.value.code == "InvalidAction"
    with pytest.raises(ServiceError) as e:
        codec_for("efs").find_operation(request("PATCH", "/nowhere"))
    assert e.value.status == 404
    with pytest.raises(ServiceError) as e:
        codec_for("s3").find_operation(request("PATCH", "/b/k"))
    assert (e.value.code, e.value.status) == ("MethodNotAllowed", 405)
    assert "GET" in e.value.headers["Allow"]


def test_query_operations_are_found_from_the_query_string_too() -> None:
    assert (
        op_name("ec2", request("GET", "/", "Action=DescribeVolumes&Version=2016-11-15")) == "DescribeVolumes"
    )


# -- malformed input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"<VersioningConfiguration><Status>Enabled</Status>",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><VersioningConfiguration>&a;</VersioningConfiguration>',
        b'<!DOCTYPE x SYSTEM "file:///etc/passwd"><VersioningConfiguration/>',
    ],
)
def test_s3_rejects_malformed_or_unsafe_xml(body: bytes) -> None:
    codec = codec_for("s3")
    req = request("PUT", "/b", "versioning", body=body)
    op, params = codec.find_operation(req)
    with pytest.raises(ServiceError) as e:
        codec.parse(op, req, params)
    assert (e.value.code, e.value.status) == ("MalformedXML", 400)


def test_xml_reader_bounds_size() -> None:
    with pytest.raises(XmlError):
        parse_xml(b"<a>" + b"x" * 100 + b"</a>", max_bytes=50)


def test_s3_parses_xml_payloads_with_or_without_namespace() -> None:
    codec = codec_for("s3")
    body = (
        b'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>a&amp;b</Key></Object>'
        b"<Object><Key>c</Key><VersionId>v1</VersionId></Object><Quiet>true</Quiet></Delete>"
    )
    req = request("POST", "/b", "delete", body=body)
    op, params = codec.find_operation(req)
    parsed = codec.parse(op, req, params)
    assert parsed["Delete"] == {"Objects": [{"Key": "a&b"}, {"Key": "c", "VersionId": "v1"}], "Quiet": True}
    req = request(
        "PUT",
        "/b",
        body=b"<CreateBucketConfiguration><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>",
    )
    op, params = codec.find_operation(req)
    assert codec.parse(op, req, params)["CreateBucketConfiguration"] == {"LocationConstraint": "eu-west-1"}


@pytest.mark.parametrize(
    "body", [b"not json", b"[1,2]", b'{"TableName": 5}', b'{"TableName":"t","Item":{"a":{"N":1}}}']
)
def test_json_rejects_malformed_bodies(body: bytes) -> None:
    codec = codec_for("dynamodb")
    with pytest.raises(ServiceError) as e:
        codec.parse(operation_model("dynamodb", "PutItem"), request("POST", "/", body=body), {})
    assert (e.value.code, e.value.status) == ("SerializationException", 400)


def test_query_rejects_bad_numbers() -> None:
    codec = codec_for("rds")
    req = request("POST", "/", body=b"Action=DescribeDBInstances&Version=2014-10-31&MaxRecords=many")
    op, params = codec.find_operation(req)
    with pytest.raises(ServiceError) as e:
        codec.parse(op, req, params)
    assert e.value.code == "InvalidParameterValue"


def test_s3_rejects_bad_header_values() -> None:
    codec = codec_for("s3")
    req = request("PUT", "/b/k", headers={"content-length": "lots"})
    op, params = codec.find_operation(req)
    with pytest.raises(ServiceError) as e:
        codec.parse(op, req, params)
    assert (e.value.code, e.value.status) == ("InvalidArgument", 400)


def test_absurd_nesting_is_a_validation_error_not_a_crash() -> None:
    deep = '{"M":' * 5000 + '{"S":"x"}' + "}" * 5000
    body = ('{"TableName":"t","Item":{"a":' + deep + "}}").encode()
    with pytest.raises(ServiceError) as e:
        codec_for("dynamodb").parse(
            operation_model("dynamodb", "PutItem"), request("POST", "/", body=body), {}
        )
    assert e.value.code == "SerializationException"


def test_efs_errors_carry_error_code_and_message() -> None:
    err = ServiceError("FileSystemNotFound", "File system 'fs-1' does not exist.", 404)
    resp = codec_for("efs").serialize_error(operation_model("efs", "DescribeFileSystems"), err, "rid")
    assert header(resp, "x-amzn-ErrorType") == "FileSystemNotFound"
    assert json.loads(resp.body) == {
        "ErrorCode": "FileSystemNotFound",
        "Message": "File system 'fs-1' does not exist.",
    }


# -- parsing details ------------------------------------------------------------------------------


def test_s3_put_object_headers_and_stream() -> None:
    codec = codec_for("s3")
    req = request(
        "PUT",
        "/b/k",
        headers={
            "content-length": "5",
            "x-amz-meta-Color": "blue",
            "x-amz-meta-size": "L",
            "expires": "Wed, 21 Oct 2026 07:28:00 GMT",
            "x-amz-object-lock-retain-until-date": "2026-10-21T07:28:00.000Z",
            "x-amz-tagging": "a=b",
        },
    )
    stream = BodyStream(_chunks(b"hello"), 5)
    req.stream = stream
    op, params = codec.find_operation(req)
    parsed = codec.parse(op, req, params)
    assert parsed["Body"] is stream
    assert parsed["ContentLength"] == 5
    assert parsed["Metadata"] == {"color": "blue", "size": "L"}
    assert parsed["ObjectLockRetainUntilDate"] == datetime(2026, 10, 21, 7, 28, tzinfo=UTC)
    assert parsed["Tagging"] == "a=b"


def test_dynamodb_item_parses_with_blobs_and_nesting() -> None:
    codec = codec_for("dynamodb")
    body = {
        "TableName": "t",
        "Item": {
            "pk": {"S": "a"},
            "b": {"B": "aGk="},
            "m": {"M": {"l": {"L": [{"N": "1"}, {"BS": ["aGk="]}]}}},
        },
    }
    parsed = codec.parse(
        operation_model("dynamodb", "PutItem"), request("POST", "/", body=json.dumps(body).encode()), {}
    )
    assert parsed["Item"]["b"] == {"B": b"hi"}
    assert parsed["Item"]["m"]["M"]["l"]["L"][1] == {"BS": [b"hi"]}


# -- responses ------------------------------------------------------------------------------------


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


def test_s3_get_object_passes_bodies_through(tmp_path: Path) -> None:
    codec = codec_for("s3")
    op = operation_model("s3", "GetObject")
    f = tmp_path / "obj"
    f.write_bytes(b"0123456789")
    resp = codec.serialize(op, {"Body": FileBody(f, 2, 5), "ETag": '"e"', "Metadata": {"k": "v"}}, "rid")
    assert isinstance(resp.body, FileBody)
    assert header(resp, "Content-Length") == "5"
    assert header(resp, "x-amz-meta-k") == "v"
    assert header(resp, "x-amz-request-id") == "rid"
    it = _chunks(b"a", b"b")
    resp = codec.serialize(op, {"Body": it, "ContentLength": 2}, "rid")
    assert resp.body is it and header(resp, "Content-Length") == "2"
    resp = codec.serialize(
        op,
        {"Body": b"abc", "LastModified": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "StatusCode": 206},
        "rid",
    )
    assert resp.status == 206
    assert header(resp, "Last-Modified") == "Fri, 02 Jan 2026 03:04:05 GMT"


def test_head_responses_carry_no_body() -> None:
    codec = codec_for("s3")
    op = operation_model("s3", "HeadObject")
    resp = codec.serialize(op, {"ContentLength": 10, "ETag": '"e"'}, "rid")
    assert resp.body == b"" and header(resp, "Content-Length") == "10"
    err = codec.serialize_error(
        op, ServiceError("NoSuchKey", "The specified key does not exist.", 404), "rid"
    )
    assert (err.status, err.body) == (404, b"")


def test_s3_empty_responses_use_the_model_status() -> None:
    codec = codec_for("s3")
    assert codec.serialize(operation_model("s3", "DeleteBucket"), {}, "r").status == 204
    assert codec.serialize(operation_model("s3", "DeleteObject"), {}, "r").status == 204
    resp = codec.serialize(operation_model("s3", "PutBucketVersioning"), {}, "r")
    assert (resp.status, resp.body) == (200, b"")


def test_s3_list_buckets_document() -> None:
    resp = codec_for("s3").serialize(
        operation_model("s3", "ListBuckets"),
        {
            "Buckets": [{"Name": "a<b", "CreationDate": datetime(2026, 1, 1, tzinfo=UTC)}],
            "Owner": {"ID": "o"},
        },
        "r",
    )
    root = parse_xml(resp.body)
    assert root.tag == "{http://s3.amazonaws.com/doc/2006-03-01/}ListAllMyBucketsResult"
    assert b"<Name>a&lt;b</Name><CreationDate>2026-01-01T00:00:00.000Z</CreationDate>" in resp.body


def test_s3_get_bucket_location_is_a_text_root() -> None:
    resp = codec_for("s3").serialize(
        operation_model("s3", "GetBucketLocation"), {"LocationConstraint": "eu-west-1"}, "r"
    )
    root = parse_xml(resp.body)
    assert (root.tag, root.text) == (
        "{http://s3.amazonaws.com/doc/2006-03-01/}LocationConstraint",
        "eu-west-1",
    )


def test_s3_error_document() -> None:
    err = ServiceError("NoSuchBucket", "The specified bucket does not exist", 404, fields={"BucketName": "b"})
    resp = codec_for("s3").serialize_error(operation_model("s3", "ListObjects"), err, "rid")
    root = parse_xml(resp.body)
    assert root.tag == "Error"
    assert {c.tag: c.text for c in root} == {
        "Code": "NoSuchBucket",
        "Message": "The specified bucket does not exist",
        "BucketName": "b",
        "RequestId": "rid",
        "HostId": "rid",
    }


def test_dynamodb_error_body() -> None:
    err = ServiceError("ResourceNotFoundException", "Requested resource not found", 400)
    resp = codec_for("dynamodb").serialize_error(operation_model("dynamodb", "GetItem"), err, "rid")
    assert json.loads(resp.body) == {
        "__type": "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",
        "message": "Requested resource not found",
    }
    assert header(resp, "Content-Type") == "application/x-amz-json-1.0"
    assert header(resp, "x-amzn-RequestId") == "rid"


def test_dynamodb_modeled_error_fields_reach_botocore() -> None:
    op = operation_model("dynamodb", "TransactWriteItems")
    err = ServiceError(
        "TransactionCanceledException",
        "Transaction cancelled",
        400,
        fields={"CancellationReasons": [{"Code": "ConditionalCheckFailed", "Item": {"k": {"B": b"x"}}}]},
    )
    resp = codec_for("dynamodb").serialize_error(op, err, "rid")
    response = {"status_code": 400, "headers": HTTPHeaders.from_pairs(resp.headers), "body": resp.body}
    shape = op.service_model.shape_for("TransactionCanceledException")
    parsed = create_parser("json").parse(response, shape)
    assert parsed["CancellationReasons"][0]["Item"] == {"k": {"B": b"x"}}


def test_kms_uses_json_1_1() -> None:
    resp = codec_for("kms").serialize(operation_model("kms", "ListKeys"), {"Keys": []}, "r")
    assert header(resp, "Content-Type") == "application/x-amz-json-1.1"


def test_query_and_ec2_documents() -> None:
    resp = codec_for("rds").serialize(
        operation_model("rds", "DescribeDBInstances"),
        {"DBInstances": [{"DBInstanceIdentifier": "db1"}]},
        "rid",
    )
    assert resp.body.startswith(
        b'<?xml version="1.0" encoding="UTF-8"?><DescribeDBInstancesResponse xmlns="http://rds.amazonaws.com/doc/2014-10-31/"><DescribeDBInstancesResult>'
    )
    assert b"<RequestId>rid</RequestId>" in resp.body
    resp = codec_for("ec2").serialize(
        operation_model("ec2", "DescribeVolumes"), {"Volumes": [{"VolumeId": "vol-1"}]}, "rid"
    )
    assert (
        b'<DescribeVolumesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>rid</requestId><volumeSet><item><volumeId>vol-1</volumeId>'
        in resp.body
    )
    err = codec_for("ec2").serialize_error(None, ServiceError("InvalidVolume.NotFound", "nope", 400), "rid")
    assert err.body.endswith(
        b"<Response><Errors><Error><Code>InvalidVolume.NotFound</Code><Message>nope</Message></Error></Errors><RequestID>rid</RequestID></Response>"
    )


@pytest.mark.parametrize(
    "service", ["s3", "dynamodb", "efs", "rds", "elasticache", "kms", "ebs", "sts", "ec2", "iam"]
)
def test_not_implemented_renders_in_every_protocol(service: str) -> None:
    codec = codec_for(service)
    op = codec.model.operation_model(codec.model.operation_names[0])
    err = NotImplementedOperation(service, op.name)
    for target in (op, None):
        resp = codec.serialize_error(target, err, "rid")
        assert resp.status == 501
        if resp.body:
            response = {
                "status_code": 501,
                "headers": HTTPHeaders.from_pairs(resp.headers),
                "body": resp.body,
            }
            parsed = create_parser(codec.model.protocol).parse(response, op.output_shape)
            assert parsed["Error"]["Code"] == "NotImplemented"
            assert op.name in parsed["Error"]["Message"]


def test_event_stream_errors_end_the_stream_in_band() -> None:
    op = operation_model("s3", "SelectObjectContent")

    async def events() -> AsyncIterator[dict]:
        yield {"Records": {"Payload": b"1\n"}}
        raise ServiceError("InternalError", "engine died", 500)

    resp = codec_for("s3").serialize(op, {"Payload": events()}, "rid")

    async def collect() -> bytes:
        return b"".join([c async for c in resp.body])

    from botocore.eventstream import EventStreamBuffer

    buffer = EventStreamBuffer()
    buffer.add_data(asyncio.run(collect()))
    messages = list(buffer)
    assert messages[0].headers[":event-type"] == "Records" and messages[0].payload == b"1\n"
    assert messages[1].headers[":message-type"] == "error"
    assert messages[1].headers[":error-code"] == "InternalError"


def test_dynamodb_bodies_carry_the_crc32_botocore_checks() -> None:
    import zlib

    resp = codec_for("dynamodb").serialize(
        operation_model("dynamodb", "ListTables"), {"TableNames": ["a"]}, "r"
    )
    assert header(resp, "x-amz-crc32") == str(zlib.crc32(resp.body))
    assert (
        header(codec_for("kms").serialize(operation_model("kms", "ListKeys"), {}, "r"), "x-amz-crc32") is None
    )


def test_not_modified_has_no_body_and_reads_as_304() -> None:
    op = operation_model("s3", "GetObject")
    resp = codec_for("s3").serialize_error(op, ServiceError("NotModified", "Not Modified", 304), "rid")
    assert (resp.status, resp.body) == (304, b"")
    response = {"status_code": 304, "headers": HTTPHeaders.from_pairs(resp.headers), "body": resp.body}
    assert create_parser("rest-xml").parse(response, op.output_shape)["Error"]["Code"] == "304"


def test_json_output_tolerates_decimal_numbers_and_sets() -> None:
    from decimal import Decimal

    item = {"n": {"N": Decimal("1.50")}, "ss": {"SS": {"a"}}}
    resp = codec_for("dynamodb").serialize(operation_model("dynamodb", "GetItem"), {"Item": item}, "r")
    assert json.loads(resp.body) == {"Item": {"n": {"N": "1.50"}, "ss": {"SS": ["a"]}}}
