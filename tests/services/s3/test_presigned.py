"""Sharing as in the seed: presigned GET/PUT URLs and browser POST uploads with a signed policy."""

from __future__ import annotations

import http.client
import uuid
from urllib.parse import urlsplit

import pytest


def http_call(
    method: str, url: str, body: bytes | None = None, headers: dict | None = None
) -> tuple[int, bytes, dict]:
    """A plain HTTP request, as a browser or curl would send it (no default Content-Type)."""
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port)
    conn.request(method, u.path + (f"?{u.query}" if u.query else ""), body=body, headers=headers or {})
    resp = conn.getresponse()
    return resp.status, resp.read(), dict(resp.getheaders())


def multipart_form(
    fields: dict[str, str], file_name: str, content: bytes, file_type: str | None = None
) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = []
    for k, v in fields.items():
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    ctype = f"Content-Type: {file_type}\r\n" if file_type else ""
    out.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file_name}"\r\n{ctype}\r\n'.encode()
    )
    out.append(content + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def test_presigned_get_and_put(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="reports/q1.pdf", Body=b"%PDF-1.7 report")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "reports/q1.pdf"}, ExpiresIn=3600
    )
    assert http_call("GET", url)[:2] == (200, b"%PDF-1.7 report")
    put_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "up/new.txt"}, ExpiresIn=3600
    )
    status, _, _ = http_call("PUT", put_url, b"uploaded through a url")
    assert status == 200
    assert s3.get_object(Bucket=bucket, Key="up/new.txt")["Body"].read() == b"uploaded through a url"
    tampered = url.replace("q1.pdf", "q2.pdf")
    assert http_call("GET", tampered)[0] == 403


def _seed_post(s3, bucket: str, key: str, content_type: str = "application/octet-stream", **kw) -> dict:
    """The seed's generate_presigned_upload_url, verbatim apart from the client."""
    return s3.generate_presigned_post(
        Bucket=bucket,
        Key=key,
        Fields={"Content-Type": content_type},
        Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, 104857600]],
        ExpiresIn=kw.get("expires", 3600),
    )


def test_presigned_post_upload(s3, bucket: str) -> None:
    post = _seed_post(s3, bucket, "uploads/user123/file.jpg", "image/jpeg")
    body, ctype = multipart_form(post["fields"], "file.jpg", b"\xff\xd8jpeg bytes\xff\xd9")
    status, resp, _ = http_call("POST", post["url"], body, {"Content-Type": ctype})
    assert status == 204, resp
    got = s3.get_object(Bucket=bucket, Key="uploads/user123/file.jpg")
    assert got["Body"].read() == b"\xff\xd8jpeg bytes\xff\xd9" and got["ContentType"] == "image/jpeg"


def test_presigned_post_filename_and_201(s3, bucket: str) -> None:
    post = s3.generate_presigned_post(
        Bucket=bucket,
        Key="in/${filename}",
        Fields={"success_action_status": "201"},
        Conditions=[["starts-with", "$key", "in/"], {"success_action_status": "201"}],
    )
    body, ctype = multipart_form(post["fields"], "photo.png", b"png")
    status, resp, _ = http_call("POST", post["url"], body, {"Content-Type": ctype})
    assert status == 201 and b"<Key>in/photo.png</Key>" in resp
    assert s3.get_object(Bucket=bucket, Key="in/photo.png")["Body"].read() == b"png"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("too_small", b"EntityTooSmall"),
        ("wrong_type", b"AccessDenied"),
        ("bad_signature", b"SignatureDoesNotMatch"),
        ("expired", b"AccessDenied"),
    ],
)
def test_presigned_post_rejections(s3, bucket: str, change: str, expected: bytes) -> None:
    post = _seed_post(s3, bucket, "uploads/x.bin", expires=-10 if change == "expired" else 3600)
    fields = dict(post["fields"])
    content = b"data"
    if change == "too_small":
        content = b""
    elif change == "wrong_type":
        fields["Content-Type"] = "text/html"
    elif change == "bad_signature":
        sig = "x-amz-signature" if "x-amz-signature" in fields else "signature"
        fields[sig] = fields[sig][:-6] + ("AAAAA=" if sig == "signature" else "000000")
    body, ctype = multipart_form(fields, "x.bin", content)
    status, resp, _ = http_call("POST", post["url"], body, {"Content-Type": ctype})
    assert status in (400, 403) and expected in resp
    listing = s3.list_objects_v2(Bucket=bucket)
    assert "Contents" not in listing


def test_presigned_post_redirect(s3, bucket: str) -> None:
    post = s3.generate_presigned_post(
        Bucket=bucket,
        Key="r.txt",
        Fields={"success_action_redirect": "http://app.example/done"},
        Conditions=[{"success_action_redirect": "http://app.example/done"}],
    )
    body, ctype = multipart_form(post["fields"], "r.txt", b"redirected")
    status, _, headers = http_call("POST", post["url"], body, {"Content-Type": ctype})
    location = {k.lower(): v for k, v in headers.items()}["location"]
    assert (
        status == 303 and location.startswith("http://app.example/done?bucket=") and "key=r.txt" in location
    )
    assert s3.get_object(Bucket=bucket, Key="r.txt")["Body"].read() == b"redirected"


def test_post_metadata_fields_are_stored(s3, bucket: str) -> None:
    post = s3.generate_presigned_post(
        Bucket=bucket,
        Key="m.txt",
        Fields={"x-amz-meta-origin": "browser"},
        Conditions=[{"x-amz-meta-origin": "browser"}],
    )
    body, ctype = multipart_form(post["fields"], "m.txt", b"with meta")
    status, resp, _ = http_call("POST", post["url"], body, {"Content-Type": ctype})
    assert status == 204, resp
    assert s3.head_object(Bucket=bucket, Key="m.txt")["Metadata"] == {"origin": "browser"}


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("acl", "public-read", b"AccessControlListNotSupported"),
        ("x-amz-object-lock-legal-hold", "ON", b"InvalidRequest"),
        ("tagging", "<Tagging><TagSet/></Tagging>", b"NotImplemented"),
    ],
)
def test_post_fields_strata_does_not_honour_are_refused(
    s3, bucket: str, field: str, value: str, code: bytes
) -> None:
    post = s3.generate_presigned_post(
        Bucket=bucket, Key="r.txt", Fields={field: value}, Conditions=[{field: value}]
    )
    body, ctype = multipart_form(post["fields"], "r.txt", b"refused")
    status, resp, _ = http_call("POST", post["url"], body, {"Content-Type": ctype})
    assert status in (400, 501) and code in resp, resp
    with pytest.raises(s3.exceptions.ClientError):
        s3.head_object(Bucket=bucket, Key="r.txt")


def test_post_private_acl_and_sse_fields_are_honoured(s3, bucket: str) -> None:
    fields = {"acl": "private", "x-amz-server-side-encryption": "AES256"}
    post = s3.generate_presigned_post(
        Bucket=bucket, Key="p.txt", Fields=fields, Conditions=[{k: v} for k, v in fields.items()]
    )
    body, ctype = multipart_form(post["fields"], "p.txt", b"kept")
    status, resp, _ = http_call("POST", post["url"], body, {"Content-Type": ctype})
    assert status == 204, resp
    assert s3.head_object(Bucket=bucket, Key="p.txt")["ServerSideEncryption"] == "AES256"
