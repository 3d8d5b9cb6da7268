"""Keys XML 1.0 cannot carry (control characters, U+FFFE) in listings asked for without encoding-type.

boto3 always asks for encoding-type=url itself, so these tests send signed raw requests: the
answer must be well-formed XML that gives the exact keys back (url-encoded, EncodingType=url),
while pages of ordinary keys stay as they were.
"""

from __future__ import annotations

import http.client
from urllib.parse import unquote
from xml.etree import ElementTree

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
ODD = ["ctl\x01key", "bell\x07/x", "esc\x1b", "nonchar\ufffe"]


def raw_get(server, path: str) -> ElementTree.Element:
    url = f"http://127.0.0.1:{server.port}{path}"
    req = AWSRequest("GET", url, headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    SigV4Auth(Credentials("test", "test"), "s3", "us-east-1").add_auth(req)
    conn = http.client.HTTPConnection("127.0.0.1", server.port)
    conn.request("GET", path, headers=dict(req.headers.items()))
    resp = conn.getresponse()
    body = resp.read()
    assert resp.status == 200, body
    return ElementTree.fromstring(body)  # raises if the document is not well-formed


def texts(root: ElementTree.Element, path: str) -> list[str]:
    return [e.text or "" for e in root.iterfind(path)]


@pytest.mark.parametrize(
    "query",
    ["list-type=2", "", "versions", "list-type=2&delimiter=%2F", "uploads"],
)
def test_odd_keys_come_back_url_encoded_in_well_formed_xml(
    strata_server, s3, bucket: str, query: str
) -> None:
    for key in [*ODD, "plain"]:
        if query == "uploads":
            s3.create_multipart_upload(Bucket=bucket, Key=key)
        else:
            s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    root = raw_get(strata_server, f"/{bucket}?{query}")
    assert root.findtext(f"{NS}EncodingType") == "url"
    item = {"versions": "Version", "uploads": "Upload"}.get(query, "Contents")
    keys = [unquote(k) for k in texts(root, f"{NS}{item}/{NS}Key")]
    prefixes = [unquote(p) for p in texts(root, f"{NS}CommonPrefixes/{NS}Prefix")]
    if "delimiter" in query:
        assert prefixes == ["bell\x07/"]
        assert sorted(keys) == sorted(k for k in [*ODD, "plain"] if "/" not in k)
    else:
        assert sorted(keys) == sorted([*ODD, "plain"])


def test_ordinary_keys_are_not_encoded(strata_server, s3, bucket: str) -> None:
    for key in ["tab\there", "new\nline", "amp&<lt>", "unicodé"]:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    root = raw_get(strata_server, f"/{bucket}?list-type=2")
    assert root.find(f"{NS}EncodingType") is None
    assert sorted(texts(root, f"{NS}Contents/{NS}Key")) == sorted(
        ["tab\there", "new\nline", "amp&<lt>", "unicodé"]
    )


def test_boto3_lists_odd_keys_exactly(s3, bucket: str) -> None:
    for key in ODD:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(listed) == sorted(ODD)
    for key in ODD:
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()


def test_operations_echoing_an_odd_key_still_parse(s3, bucket: str) -> None:
    key = "mp\x01key"
    up = s3.create_multipart_upload(Bucket=bucket, Key=key)
    assert "Key" not in up  # XML 1.0 cannot carry it; the caller has it anyway
    part = s3.upload_part(Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=1, Body=b"odd")
    assert s3.list_parts(Bucket=bucket, Key=key, UploadId=up["UploadId"])["Parts"][0]["Size"] == 3
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"odd"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="missing\x02")
    assert e.value.response["Error"]["Code"] == "NoSuchKey"
