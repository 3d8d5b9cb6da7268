"""S3's own limits at their exact boundaries on a server with default settings (the cheap
checks; bench/limits.py sends the 5 GiB object and the 10,000 parts): a single PUT of
5 GiB + 1 is refused before its body is read, part numbers run from 1 to 10,000."""

from __future__ import annotations

import socket

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

GiB = 1024**3


def test_single_put_over_5_gib_is_refused_before_the_body(strata_server, bucket: str) -> None:
    length = 5 * GiB + 1
    req = AWSRequest(
        "PUT",
        f"{strata_server.endpoint}/{bucket}/too-big",
        headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD", "Content-Length": str(length)},
    )
    SigV4Auth(Credentials("test", "test"), "s3", "us-east-1").add_auth(req)
    head = f"PUT /{bucket}/too-big HTTP/1.1\r\nHost: 127.0.0.1:{strata_server.port}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in req.headers.items() if k.lower() != "host")
    head += "Expect: 100-continue\r\n\r\n"
    with socket.create_connection(("127.0.0.1", strata_server.port), timeout=30) as sock:
        sock.sendall(head.encode())
        answer = b""
        while b"</Error>" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    status = answer.split(b"\r\n", 1)[0]
    assert b" 400 " in status, answer[:300]
    assert b"<Code>EntityTooLarge</Code>" in answer
    assert b"100 Continue" not in answer  # refused without asking for the 5 GiB


def test_part_numbers_1_to_10000(strata_server, s3, bucket: str) -> None:
    up = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    for n in (1, 10_000):
        s3.upload_part(Bucket=bucket, Key="k", UploadId=up, PartNumber=n, Body=b"x")
    for n in (0, 10_001):
        with pytest.raises(ClientError) as e:
            s3.upload_part(Bucket=bucket, Key="k", UploadId=up, PartNumber=n, Body=b"x")
        err = e.value.response["Error"]
        assert (err["Code"], err["Message"]) == (
            "InvalidArgument",
            "Part number must be an integer between 1 and 10000, inclusive",
        )
    parts = s3.list_parts(Bucket=bucket, Key="k", UploadId=up)["Parts"]
    assert [p["PartNumber"] for p in parts] == [1, 10_000]
    s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=up)
