"""An operation whose body is one XML document (PutBucketTagging, PutObjectTagging, DeleteObjects...)
refuses a body that is not that document: empty when the document is required, another root
element, or over the size bound, all MalformedXML as on S3; or a body its Content-MD5 or
x-amz-checksum-* header does not match (BadDigest) — and changes nothing."""

from __future__ import annotations

import base64
import hashlib
import http.client
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

TAGS = b"<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>"


def put(server: Any, path: str, body: bytes, headers: dict | None = None) -> tuple[int, bytes]:
    url = f"http://127.0.0.1:{server.port}{path}"
    headers = {"x-amz-content-sha256": hashlib.sha256(body).hexdigest(), **(headers or {})}
    req = AWSRequest("PUT", url, data=body, headers=headers)
    SigV4Auth(Credentials("test", "test"), "s3", "us-east-1").add_auth(req)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    try:
        conn.request("PUT", path, body=body, headers=dict(req.headers.items()))
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        TAGS.replace(b"Tagging>", b"Tags>"),
        b"<Tags>" + b"x" * (10 * 1000 * 1000) + b"</Tags>",
        b"<Tagging>" + b" " * (11 * 1024 * 1024) + b"</Tagging>",
    ],
    ids=["empty", "blank", "wrong-root", "10MB-wrong-root", "11MiB"],
)
def test_put_bucket_tagging_refuses_what_is_not_a_tagging_document(
    strata_server: Any, s3: Any, bucket: str, body: bytes
) -> None:
    status, answer = put(strata_server, f"/{bucket}?tagging", body)
    assert status == 400 and b"<Code>MalformedXML</Code>" in answer, (status, answer[:300])
    with pytest.raises(ClientError) as e:
        s3.get_bucket_tagging(Bucket=bucket)
    assert e.value.response["Error"]["Code"] == "NoSuchTagSet"


def test_a_tagging_document_with_or_without_namespace_is_accepted(
    strata_server: Any, s3: Any, bucket: str
) -> None:
    namespaced = TAGS.replace(b"<Tagging>", b'<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/">')
    for body in (TAGS, namespaced):
        assert put(strata_server, f"/{bucket}?tagging", body)[0] == 200
        assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "a", "Value": "b"}]
        s3.delete_bucket_tagging(Bucket=bucket)


def test_other_documents_check_their_root_too(strata_server: Any, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    status, answer = put(strata_server, f"/{bucket}/k?tagging", TAGS.replace(b"Tagging>", b"Tags>"))
    assert status == 400 and b"MalformedXML" in answer
    status, answer = put(
        strata_server, f"/{bucket}?versioning", b"<Versioning><Status>Enabled</Status></Versioning>"
    )
    assert status == 400 and b"MalformedXML" in answer
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)


@pytest.mark.parametrize(
    ("header", "value", "code"),
    [
        ("Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg==", b"BadDigest"),  # the MD5 of an empty body
        ("Content-MD5", "not-base64", b"InvalidDigest"),
        ("x-amz-checksum-crc32", "AAAAAA==", b"BadDigest"),
        ("x-amz-checksum-sha256", "AAAA", b"InvalidRequest"),
    ],
)
def test_a_document_that_does_not_match_its_digest_is_refused(
    strata_server: Any, s3: Any, bucket: str, header: str, value: str, code: bytes
) -> None:
    status, answer = put(strata_server, f"/{bucket}?tagging", TAGS, {header: value})
    assert status == 400 and b"<Code>" + code in answer, (status, answer[:300])
    with pytest.raises(ClientError) as e:
        s3.get_bucket_tagging(Bucket=bucket)
    assert e.value.response["Error"]["Code"] == "NoSuchTagSet"
    good = {"Content-MD5": base64.b64encode(hashlib.md5(TAGS).digest()).decode()}
    assert put(strata_server, f"/{bucket}?tagging", TAGS, good)[0] == 200
