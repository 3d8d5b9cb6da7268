"""HTTPS beside plain HTTP: real clients over TLS, trusting Strata's CA (`<data dir>/tls/ca.pem`)."""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import botocore.exceptions
import pytest
from cryptography import x509

from tests.strata_process import StrataProcess, free_port

AWS = str(Path(sys.executable).with_name("aws"))
MIB = 1024 * 1024


def _https(server: StrataProcess, timeout: float = 120) -> http.client.HTTPSConnection:
    context = ssl.create_default_context(cafile=str(server.ca_path))
    return http.client.HTTPSConnection("127.0.0.1", server.tls_port, context=context, timeout=timeout)


def _peer_certificate(server: StrataProcess) -> x509.Certificate:
    context = ssl.create_default_context(cafile=str(server.ca_path))
    with (
        socket.create_connection(("127.0.0.1", server.tls_port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def _names(cert: x509.Certificate) -> set[str]:
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(name.value) for name in sans}


def test_s3_over_https_with_boto3(strata_server: StrataProcess, unique: str) -> None:
    s3 = strata_server.client("s3", https=True)
    bucket = f"tls-{unique}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="small.txt", Body=b"over tls")
    assert s3.get_object(Bucket=bucket, Key="small.txt")["Body"].read() == b"over tls"
    # A body far larger than the transport's buffers: it goes out in many writes with back-pressure,
    # and each byte must be the file's (sendfile would put plain bytes inside the TLS stream).
    big = os.urandom(24 * MIB + 123)
    s3.put_object(Bucket=bucket, Key="big.bin", Body=big)
    got = s3.get_object(Bucket=bucket, Key="big.bin")
    assert got["ContentLength"] == len(big)
    assert hashlib.sha256(got["Body"].read()).hexdigest() == hashlib.sha256(big).hexdigest()
    part = s3.get_object(Bucket=bucket, Key="big.bin", Range="bytes=1000-5000999")["Body"].read()
    assert part == big[1000:5001000]
    # the same object over plain HTTP, from the same server
    plain = strata_server.client("s3").get_object(Bucket=bucket, Key="small.txt")["Body"].read()
    assert plain == b"over tls"


def test_dynamodb_over_https_with_boto3(strata_server: StrataProcess, unique: str) -> None:
    ddb = strata_server.client("dynamodb", https=True)
    table = f"tls-{unique}"
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    try:
        ddb.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        ddb.put_item(TableName=table, Item={"pk": {"S": "a"}, "v": {"N": "42"}})
        item = ddb.get_item(TableName=table, Key={"pk": {"S": "a"}}, ConsistentRead=True)["Item"]
        assert item == {"pk": {"S": "a"}, "v": {"N": "42"}}
    finally:
        ddb.delete_table(TableName=table)


def test_a_slow_reader_gets_every_byte_and_the_connection_stays_usable(
    strata_server: StrataProcess, unique: str
) -> None:
    s3 = strata_server.client("s3", https=True)
    bucket = f"tls-slow-{unique}"
    s3.create_bucket(Bucket=bucket)
    big = os.urandom(32 * MIB)
    s3.put_object(Bucket=bucket, Key="big.bin", Body=big)
    s3.put_object(Bucket=bucket, Key="after.txt", Body=b"next answer")
    conn = _https(strata_server)
    try:
        for key, expected in (("big.bin", big), ("after.txt", b"next answer")):
            url = urlsplit(s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}))
            conn.request("GET", f"{url.path}?{url.query}")
            resp = conn.getresponse()
            assert resp.status == 200
            if key == "big.bin":
                time.sleep(1)  # the answer piles up until the server's transport pauses it
            received = bytearray()
            while chunk := resp.read(64 * 1024):
                received += chunk
            assert bytes(received) == expected
    finally:
        conn.close()


def test_presigned_get_over_https(strata_server: StrataProcess, unique: str) -> None:
    s3 = strata_server.client("s3", https=True)
    bucket = f"tls-url-{unique}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="shared.txt", Body=b"presigned over https")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "shared.txt"})
    assert url.startswith(f"https://127.0.0.1:{strata_server.tls_port}/")
    parts = urlsplit(url)
    conn = _https(strata_server)
    try:
        conn.request("GET", f"{parts.path}?{parts.query}")
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (200, b"presigned over https")
        # the signature is checked over https too: another key with the same query does not verify
        conn.request("GET", f"{parts.path.replace('shared.txt', 'other.txt')}?{parts.query}")
        resp = conn.getresponse()
        assert resp.status == 403 and b"SignatureDoesNotMatch" in resp.read()
    finally:
        conn.close()


def test_browser_post_location_is_https(strata_server: StrataProcess, unique: str) -> None:
    s3 = strata_server.client("s3", https=True)
    bucket = f"tls-post-{unique}"
    s3.create_bucket(Bucket=bucket)
    post = s3.generate_presigned_post(
        Bucket=bucket,
        Key="up.txt",
        Fields={"success_action_status": "201"},
        Conditions=[{"success_action_status": "201"}],
    )
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in post["fields"].items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'.encode()
    )
    parts.append(b"posted\r\n" + f"--{boundary}--\r\n".encode())
    conn = _https(strata_server)
    try:
        conn.request(
            "POST",
            urlsplit(post["url"]).path,
            body=b"".join(parts),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    assert resp.status == 201, body
    location = f"https://127.0.0.1:{strata_server.tls_port}/{bucket}/up.txt"
    assert f"<Location>{location}</Location>".encode() in body


def test_aws_cli_over_https_with_the_ca_bundle(
    strata_server: StrataProcess, unique: str, tmp_path: Path
) -> None:
    bucket = f"tls-cli-{unique}"
    source = tmp_path / "up.bin"
    source.write_bytes(os.urandom(9 * MIB))  # above the CLI's 8 MiB threshold: a multipart upload
    env = strata_server.env() | {
        "AWS_ENDPOINT_URL": strata_server.https_endpoint,
        "AWS_CA_BUNDLE": str(strata_server.ca_path),
    }

    def aws(*args: str, env: dict[str, str] = env) -> subprocess.CompletedProcess[str]:
        return subprocess.run([AWS, *args], env=env, capture_output=True, text=True, timeout=300)

    out = aws("s3", "mb", f"s3://{bucket}")
    assert out.returncode == 0, out.stderr
    out = aws("s3", "cp", str(source), f"s3://{bucket}/up.bin")
    assert out.returncode == 0, out.stderr
    out = aws("s3", "cp", f"s3://{bucket}/up.bin", str(tmp_path / "down.bin"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "down.bin").read_bytes() == source.read_bytes()
    # --ca-bundle instead of the environment
    no_bundle = {k: v for k, v in env.items() if k != "AWS_CA_BUNDLE"}
    out = aws(
        "s3api",
        "head-object",
        "--bucket",
        bucket,
        "--key",
        "up.bin",
        "--ca-bundle",
        str(strata_server.ca_path),
        env=no_bundle,
    )
    assert out.returncode == 0, out.stderr
    assert '"ContentLength": 9437184' in out.stdout
    # and without any: the certificate is not trusted
    out = aws("s3api", "head-object", "--bucket", bucket, "--key", "up.bin", env=no_bundle)
    assert out.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in out.stderr


def test_a_client_without_the_ca_refuses_the_certificate(strata_server: StrataProcess) -> None:
    s3 = strata_server.session().client("s3", endpoint_url=strata_server.https_endpoint)
    with pytest.raises(botocore.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        s3.list_buckets()
    # the same check in the standard library, which proves the chain ends at Strata's CA
    context = ssl.create_default_context()
    with (
        socket.create_connection(("127.0.0.1", strata_server.tls_port), timeout=30) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        context.wrap_socket(raw, server_hostname="127.0.0.1")


def test_certificate_names_and_reissue_when_they_change(strata_factory) -> None:
    server = strata_factory(extra_args=["--hostname", "strata.example.test"])
    cert = _peer_certificate(server)
    names = _names(cert)
    for name in (
        "127.0.0.1",
        "::1",
        "localhost",
        "*.localhost",
        "s3.localhost.localstack.cloud",
        "*.s3.localhost.localstack.cloud",
        "localhost.localstack.cloud",
        "strata.example.test",
        "*.strata.example.test",
    ):
        assert name in names
    ca_before = server.ca_path.read_bytes()
    ca = x509.load_pem_x509_certificate(ca_before)
    assert cert.issuer == ca.subject
    # a virtual-hosted bucket name verifies against the certificate (a client's hostname check)
    context = ssl.create_default_context(cafile=str(server.ca_path))
    for host in ("bucket.s3.localhost.localstack.cloud", "bucket.strata.example.test", "bucket.s3.localhost"):
        with (
            socket.create_connection(("127.0.0.1", server.tls_port), timeout=30) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            pass
    server.stop()
    server.extra_args = ["--hostname", "other.example.test"]
    server.start()
    names = _names(_peer_certificate(server))
    assert "other.example.test" in names and "strata.example.test" not in names
    assert server.ca_path.read_bytes() == ca_before  # same CA: clients keep trusting it


def test_tls_port_off(strata_factory) -> None:
    server = strata_factory(extra_args=["--tls-port", "off"])
    assert server.client("s3").list_buckets()["Buckets"] == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.tls_port), timeout=30).close()
    assert "https:" not in server.log_tail()


def test_a_busy_tls_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = StrataProcess(tmp_path / "data")
        server.tls_port = busy.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"cannot listen on 127.0.0.1:{server.tls_port} \\(--tls-port"):
            server.start()
        assert server.proc is not None and server.proc.returncode == 1


def test_a_busy_port_is_a_clear_error_and_an_exit(tmp_path: Path) -> None:
    """The server exits 1 (it logged the error and then hung: the scheduler's runner swallowed
    its cancellation in asyncio.wait_for, and shutdown waited for it forever)."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = StrataProcess(tmp_path / "data", port=busy.getsockname()[1])
        with pytest.raises(RuntimeError, match=f"cannot listen on 127.0.0.1:{server.port} \\(--port"):
            server.start()
        assert server.proc is not None and server.proc.returncode == 1


def test_the_same_port_twice_is_refused(tmp_path: Path) -> None:
    port = free_port()
    server = StrataProcess(tmp_path / "data", port=port)
    server.tls_port = port
    with pytest.raises(RuntimeError, match="must differ from --port"):
        server.start()


def test_a_client_that_never_finishes_its_handshake_is_dropped(strata_factory) -> None:
    server = strata_factory(extra_env={"STRATA_HTTP_HEADER_TIMEOUT": "2"})
    with socket.create_connection(("127.0.0.1", server.tls_port), timeout=30) as raw:
        raw.sendall(b"\x16\x03\x01")  # the start of a ClientHello, and nothing more
        assert raw.recv(65536) == b""  # closed by the server (uvloop's own bound is 60 s)
    # the listener still serves others
    assert server.client("s3", https=True).list_buckets()["Buckets"] == []


def test_the_per_address_connection_cap_counts_both_ports(strata_factory) -> None:
    server = strata_factory(extra_env={"STRATA_MAX_CONNECTIONS_PER_IP": "3"})
    held = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(3)]
    try:
        for sock in held:  # each holds a slot once it is served
            sock.sendall(f"GET /_strata/health HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        conn = _https(server, timeout=30)
        conn.request("GET", "/_strata/health")
        assert conn.getresponse().status == 503
        conn.close()
    finally:
        for sock in held:
            sock.close()


def test_strata_commands_reach_an_https_endpoint_with_the_ca_bundle(strata_server: StrataProcess) -> None:
    env = strata_server.env() | {
        "AWS_ENDPOINT_URL": strata_server.https_endpoint,
        "AWS_CA_BUNDLE": str(strata_server.ca_path),
    }
    out = subprocess.run(
        [sys.executable, "-m", "strata.cli", "health"], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert '"version"' in out.stdout
