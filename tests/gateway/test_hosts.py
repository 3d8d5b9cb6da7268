"""Only the Host names Strata serves are answered (DNS-rebinding defence); real clients still work."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.strata_process import StrataProcess

AWS = str(Path(sys.executable).with_name("aws"))


def _signed(server: StrataProcess, host: str, method: str = "GET", path: str = "/") -> tuple[int, bytes]:
    """A SigV4-signed S3 request sent to 127.0.0.1 with `host` in its Host header."""
    req = AWSRequest(method, f"http://{host}{path}", headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    SigV4Auth(Credentials("test", "test"), "s3", "us-east-1").add_auth(req)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, path, headers={**dict(req.headers.items()), "Host": host})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _health(server: StrataProcess, host: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", "/_strata/health", headers={"Host": host})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


@pytest.mark.parametrize(
    "name",
    [
        "evil.example",
        "127.0.0.1.evil.example",
        "localhost.evil.example",
        "s3.localhost.evil",
        "123456789012.evil.example",  # an account label in front of a name not served
        "myap-123456789012.evil.example",  # an access point label in front of a name not served
        "myap-12345.10.1.2.3",  # not an account id
    ],
)
def test_foreign_host_names_are_refused(strata_server: StrataProcess, name: str) -> None:
    host = f"{name}:{strata_server.port}"
    status, body = _signed(strata_server, host)
    assert status == 421, body
    assert b"<Code>MisdirectedRequest</Code>" in body and b"--hostname" in body
    assert _health(strata_server, host) == 421
    # A JSON-protocol service answers in its own error shape.
    conn = http.client.HTTPConnection("127.0.0.1", strata_server.port, timeout=30)
    req = AWSRequest(
        "POST",
        f"http://{host}/",
        data=b"{}",
        headers={
            "X-Amz-Target": "DynamoDB_20120810.ListTables",
            "Content-Type": "application/x-amz-json-1.0",
        },
    )
    SigV4Auth(Credentials("test", "test"), "dynamodb", "us-east-1").add_auth(req)
    conn.request("POST", "/", body=b"{}", headers={**dict(req.headers.items()), "Host": host})
    resp = conn.getresponse()
    assert resp.status == 421
    assert json.loads(resp.read())["__type"].endswith("MisdirectedRequest")
    conn.close()


@pytest.mark.parametrize(
    "name",
    [
        "127.0.0.1",
        "localhost",
        "[::1]",
        "10.1.2.3",  # any IP literal (a LAN address when bound to 0.0.0.0)
        "app.localhost",
        "s3.localhost.localstack.cloud",
        "localhost.localstack.cloud",
        "s3.amazonaws.com",
        "123456789012.10.1.2.3",  # S3 Control: the SDKs put the account id in front of an address
        "myap-123456789012.10.1.2.3",  # an access point ARN: <name>-<account> in front of an address
    ],
)
def test_served_host_names_are_answered(strata_server: StrataProcess, name: str) -> None:
    status, body = _signed(strata_server, f"{name}:{strata_server.port}")
    assert status == 200, body
    assert _health(strata_server, name) == 200  # no port at all is fine too
    assert _health(strata_server, name.upper() + ".") == 200  # names are case-insensitive, final dot


def test_the_machines_host_name_is_served(strata_server: StrataProcess) -> None:
    assert _health(strata_server, f"{socket.gethostname()}:{strata_server.port}") == 200


def test_virtual_hosted_s3_still_works(strata_server: StrataProcess, unique: str) -> None:
    bucket = f"vhost-{unique}"
    strata_server.client("s3").create_bucket(Bucket=bucket)
    strata_server.client("s3").put_object(Bucket=bucket, Key="k", Body=b"v")
    for suffix in ("s3.localhost.localstack.cloud", "s3.localhost", "s3-accelerate.amazonaws.com"):
        status, body = _signed(strata_server, f"{bucket}.{suffix}:{strata_server.port}", path="/k")
        assert (status, body) == (200, b"v"), suffix


def test_extra_host_names_come_from_the_command_line_or_environment(strata_factory) -> None:
    server = strata_factory(extra_env={"STRATA_HOSTNAMES": "strata.test, other.test"})
    for name in ("strata.test", "other.test"):
        assert _signed(server, f"{name}:{server.port}")[0] == 200, name
    status, body = _signed(server, f"b.s3.strata.test:{server.port}")  # a virtual-hosted bucket
    assert status == 404 and b"NoSuchBucket" in body
    assert _signed(server, f"third.test:{server.port}")[0] == 421
    flagged = StrataProcess(
        server.data_dir.parent / "flagged", extra_args=["--hostname", "third.test"]
    ).start()
    try:
        assert _signed(flagged, f"third.test:{flagged.port}")[0] == 200
        assert _signed(flagged, f"strata.test:{flagged.port}")[0] == 421
    finally:
        flagged.stop()


def test_boto3_and_the_aws_cli_work_with_their_usual_host_values(
    strata_server: StrataProcess, unique: str
) -> None:
    s3 = strata_server.client("s3")
    s3.create_bucket(Bucket=f"cli-{unique}")
    assert strata_server.client("dynamodb").list_tables()["TableNames"] is not None
    for endpoint in (strata_server.endpoint, f"http://localhost:{strata_server.port}"):
        env = strata_server.env() | {"AWS_ENDPOINT_URL": endpoint}
        out = subprocess.run(
            [AWS, "s3api", "list-buckets"], env=env, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        assert f"cli-{unique}" in out.stdout
