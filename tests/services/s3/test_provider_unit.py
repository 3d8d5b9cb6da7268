"""The S3 provider called directly (no HTTP): storage model, versioning rules, listing scans.

End-to-end behaviour through real clients is in the other test modules; these pin the logic
that is easiest to reach without a wire format (e.g. a listing's cost and pagination).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest

from strata.config import Settings
from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.protocol.http import BodyStream, Headers, HttpRequest, ProducedBody
from strata.services.base import ServiceRuntime
from strata.services.s3.provider import S3Provider


def ctx(op: str = "Test") -> RequestContext:
    http = HttpRequest("GET", "/", "", Headers())
    return RequestContext("req", "s3", op, "us-east-1", "000000000000", None, http)


def run(value):
    return asyncio.run(value) if asyncio.iscoroutine(value) else value


async def _chunks(data: bytes, size: int = 65536):
    for i in range(0, len(data), size):
        yield data[i : i + size]


def body(data: bytes) -> BodyStream:
    return BodyStream(_chunks(data), len(data))


@pytest.fixture
def s3(tmp_path: Path) -> S3Provider:
    settings = Settings(data_dir=tmp_path, fsync=False, limits={"s3_min_part_size": 10})
    return S3Provider(ServiceRuntime("s3", settings, tmp_path / "s3"))


def put(s3: S3Provider, bucket: str, key: str, data: bytes = b"x", **kw) -> dict:
    async def go():
        return await s3.put_object(ctx(), {"Bucket": bucket, "Key": key, "Body": body(data), **kw})

    return asyncio.run(go())


def read(s3: S3Provider, bucket: str, key: str, **kw) -> bytes:
    out = run(s3.get_object(ctx(), {"Bucket": bucket, "Key": key, **kw}))
    fb = out["Body"]
    if isinstance(fb, bytes):  # a small object, stored inline in its row
        return fb
    if isinstance(fb, ProducedBody):  # an encrypted object (SSE-S3 by default), opened as it goes out
        try:
            return b"".join(bytes(piece) for piece in fb.pieces)  # (each piece valid until the next)
        finally:
            fb.close()
    with open(fb.path, "rb") as f:
        f.seek(fb.offset)
        return f.read(fb.length)


def test_put_get_roundtrip_and_etag(s3: S3Provider) -> None:
    run(s3.create_bucket(ctx(), {"Bucket": "bk1"}))
    data = bytes(range(256)) * 40000
    out = put(s3, "bk1", "dir/../a key ü", data, Metadata={"Foo": "Bar"}, ContentType="text/plain")
    assert out["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert read(s3, "bk1", "dir/../a key ü") == data
    head = run(s3.head_object(ctx(), {"Bucket": "bk1", "Key": "dir/../a key ü"}))
    assert head["Metadata"] == {"Foo": "Bar"} and head["ContentType"] == "text/plain"
    assert read(s3, "bk1", "dir/../a key ü", Range="bytes=10-19") == data[10:20]


def test_bad_digest_leaves_nothing(s3: S3Provider) -> None:
    run(s3.create_bucket(ctx(), {"Bucket": "bk1"}))
    with pytest.raises(ServiceError) as e:
        put(s3, "bk1", "k", b"hello", ContentMD5="AAAAAAAAAAAAAAAAAAAAAA==")
    assert e.value.code == "BadDigest"
    assert not [p for p in (s3.blobs.root / "tmp").rglob("*") if p.is_file()]
    with pytest.raises(ServiceError) as e:
        run(s3.head_object(ctx(), {"Bucket": "bk1", "Key": "k"}))
    assert e.value.code == "NoSuchKey"


def test_delimiter_listing_seeks_over_prefixes(s3: S3Provider) -> None:
    run(s3.create_bucket(ctx(), {"Bucket": "bk1"}))
    for d in range(5):
        for i in range(30):
            put(s3, "bk1", f"d{d}/f{i:03d}")
    put(s3, "bk1", "top")
    calls = []
    orig = s3.store.current_range

    def counting(*a, **kw):
        calls.append(a)
        return orig(*a, **kw)

    s3.store.current_range = counting  # type: ignore[method-assign]
    out = run(s3.list_objects_v2(ctx(), {"Bucket": "bk1", "Delimiter": "/"}))
    assert [p["Prefix"] for p in out["CommonPrefixes"]] == [f"d{d}/" for d in range(5)]
    assert [c["Key"] for c in out["Contents"]] == ["top"]
    assert len(calls) <= 7  # one seek per common prefix, not one row per key
    # pagination by token, one entry per page
    seen, token = [], None
    while True:
        req = {"Bucket": "bk1", "Delimiter": "/", "MaxKeys": 2}
        if token:
            req["ContinuationToken"] = token
        out = run(s3.list_objects_v2(ctx(), req))
        seen += [p["Prefix"] for p in out.get("CommonPrefixes", [])] + [
            c["Key"] for c in out.get("Contents", [])
        ]
        if not out["IsTruncated"]:
            break
        token = out["NextContinuationToken"]
    assert sorted(seen) == [f"d{d}/" for d in range(5)] + ["top"]


def test_versioning_rules(s3: S3Provider) -> None:
    run(s3.create_bucket(ctx(), {"Bucket": "bk1"}))
    put(s3, "bk1", "k", b"null-version")
    run(s3.put_bucket_versioning(ctx(), {"Bucket": "bk1", "VersioningConfiguration": {"Status": "Enabled"}}))
    v1 = put(s3, "bk1", "k", b"v1")["VersionId"]
    v2 = put(s3, "bk1", "k", b"v2")["VersionId"]
    assert v1 != v2 and "null" not in (v1, v2)
    dm = run(s3.delete_object(ctx(), {"Bucket": "bk1", "Key": "k"}))
    assert dm["DeleteMarker"] is True
    with pytest.raises(ServiceError) as e:
        run(s3.get_object(ctx(), {"Bucket": "bk1", "Key": "k"}))
    assert e.value.code == "NoSuchKey" and e.value.headers["x-amz-delete-marker"] == "true"
    assert read(s3, "bk1", "k", VersionId=v1) == b"v1"
    assert read(s3, "bk1", "k", VersionId="null") == b"null-version"
    vers = s3.list_object_versions(ctx(), {"Bucket": "bk1"})
    assert [v["VersionId"] for v in vers["Versions"]] == [v2, v1, "null"]
    assert vers["DeleteMarkers"][0]["IsLatest"] is True
    run(s3.delete_object(ctx(), {"Bucket": "bk1", "Key": "k", "VersionId": dm["VersionId"]}))
    assert read(s3, "bk1", "k") == b"v2"
    run(
        s3.put_bucket_versioning(ctx(), {"Bucket": "bk1", "VersioningConfiguration": {"Status": "Suspended"}})
    )
    assert put(s3, "bk1", "k", b"s1")["VersionId"] == "null"
    assert read(s3, "bk1", "k", VersionId="null") == b"s1"
    vers = s3.list_object_versions(ctx(), {"Bucket": "bk1", "MaxKeys": 2})
    assert vers["IsTruncated"] and len(vers["Versions"]) == 2
    rest = s3.list_object_versions(
        ctx(),
        {"Bucket": "bk1", "KeyMarker": vers["NextKeyMarker"], "VersionIdMarker": vers["NextVersionIdMarker"]},
    )
    assert len(rest["Versions"]) == 1


def test_multipart_complete_and_checks(s3: S3Provider) -> None:
    run(s3.create_bucket(ctx(), {"Bucket": "bk1"}))
    up = run(s3.create_multipart_upload(ctx(), {"Bucket": "bk1", "Key": "big", "ChecksumAlgorithm": "CRC32"}))
    uid = up["UploadId"]

    async def part(n: int, data: bytes) -> dict:
        return await s3.upload_part(
            ctx(), {"Bucket": "bk1", "Key": "big", "UploadId": uid, "PartNumber": n, "Body": body(data)}
        )

    p1 = asyncio.run(part(1, b"a" * 20))
    p2 = asyncio.run(part(2, b"b" * 12))
    p3 = asyncio.run(part(3, b"c" * 3))
    p4 = asyncio.run(part(4, b"d" * 3))
    with pytest.raises(ServiceError) as e:
        run(
            s3.complete_multipart_upload(
                ctx(),
                {
                    "Bucket": "bk1",
                    "Key": "big",
                    "UploadId": uid,
                    "MultipartUpload": {
                        "Parts": [
                            {"PartNumber": 2, "ETag": p2["ETag"]},
                            {"PartNumber": 1, "ETag": p1["ETag"]},
                        ]
                    },
                },
            )
        )
    assert e.value.code == "InvalidPartOrder"
    with pytest.raises(ServiceError) as e:
        run(
            s3.complete_multipart_upload(
                ctx(),
                {
                    "Bucket": "bk1",
                    "Key": "big",
                    "UploadId": uid,
                    "MultipartUpload": {
                        "Parts": [
                            {"PartNumber": 3, "ETag": p3["ETag"]},
                            {"PartNumber": 4, "ETag": p4["ETag"]},
                        ]
                    },
                },
            )
        )
    assert e.value.code == "EntityTooSmall"
    out = run(
        s3.complete_multipart_upload(
            ctx(),
            {
                "Bucket": "bk1",
                "Key": "big",
                "UploadId": uid,
                "MultipartUpload": {
                    "Parts": [{"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 3, "ETag": p3["ETag"]}]
                },
            },
        )
    )
    md5s = bytes.fromhex(p1["ETag"].strip('"')) + bytes.fromhex(p3["ETag"].strip('"'))
    assert out["ETag"] == f'"{hashlib.md5(md5s).hexdigest()}-2"'
    assert out["ChecksumCRC32"].endswith("-2") and out["ChecksumType"] == "COMPOSITE"
    assert read(s3, "bk1", "big") == b"a" * 20 + b"c" * 3
    assert read(s3, "bk1", "big", PartNumber=2) == b"c" * 3
    with pytest.raises(ServiceError) as e:
        s3.list_parts(ctx(), {"Bucket": "bk1", "Key": "big", "UploadId": uid})
    assert e.value.code == "NoSuchUpload"


def test_full_object_crc_combines(s3: S3Provider) -> None:
    import base64
    import zlib

    run(s3.create_bucket(ctx(), {"Bucket": "bk1"}))
    uid = run(
        s3.create_multipart_upload(
            ctx(), {"Bucket": "bk1", "Key": "k", "ChecksumAlgorithm": "CRC32", "ChecksumType": "FULL_OBJECT"}
        )
    )["UploadId"]
    parts = []
    for n, data in ((1, b"x" * 11), (2, b"yz")):

        async def go(n=n, data=data):
            return await s3.upload_part(
                ctx(), {"Bucket": "bk1", "Key": "k", "UploadId": uid, "PartNumber": n, "Body": body(data)}
            )

        parts.append({"PartNumber": n, "ETag": asyncio.run(go())["ETag"]})
    out = run(
        s3.complete_multipart_upload(
            ctx(), {"Bucket": "bk1", "Key": "k", "UploadId": uid, "MultipartUpload": {"Parts": parts}}
        )
    )
    assert out["ChecksumCRC32"] == base64.b64encode(zlib.crc32(b"x" * 11 + b"yz").to_bytes(4, "big")).decode()


def test_restart_collects_orphans(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, fsync=False)
    s3 = S3Provider(ServiceRuntime("s3", settings, tmp_path / "s3"))
    run(s3.create_bucket(ctx(), {"Bucket": "bk1"}))
    put(s3, "bk1", "keep", b"keep")
    orphan = s3.blobs.publish(s3.blobs.open_temp()[0])
    tmp, f = s3.blobs.open_temp()
    f.close()
    s3.store.close()
    os.close(s3.blobs._lock_fd)  # type: ignore[arg-type]  # its process dies: the instance lock goes
    s3 = S3Provider(ServiceRuntime("s3", settings, tmp_path / "s3"))
    assert not s3.blobs.exists(orphan) and not tmp.exists()
    assert read(s3, "bk1", "keep") == b"keep"


def test_every_public_method_is_an_s3_operation() -> None:
    from botocore import xform_name

    from strata.protocol.spec import service_model

    operations = {xform_name(name) for name in service_model("s3").operation_names}
    methods = {m for m in dir(S3Provider) if not m.startswith("_") and callable(getattr(S3Provider, m))}
    helpers = {
        "start",
        "bucket_for_write",
        "write",
        "stop",
        "health",
        "resource_account",  # authorization hooks (strata.auth.enforce)
        "resource_policy",
        "related_requests",
        "condition_key",
        "further_resources",
        "further_resources_members",
        "cors_preflight",  # gateway hooks (strata.gateway.cors)
        "cors_headers",
        "count",
        "now",
        "require_bucket",
        "read_version",
        "new_version_id",
        "commit_object",
        "free_blobs",
        "link_blob",
        "copy_source",
        "iter_current",
        "iter_versions",
        "iter_uploads",
    }
    assert methods - helpers <= operations, sorted(methods - helpers - operations)
    assert {
        "put_object",
        "get_object",
        "complete_multipart_upload",
        "list_objects_v2",
        "post_object",
    } <= methods


def test_small_objects_live_in_their_row(s3: S3Provider) -> None:
    run(s3.create_bucket(ctx(), {"Bucket": "bk1"}))
    put(s3, "bk1", "small", b"s" * 100)
    assert s3.blobs.all_ids() == set()
    put(s3, "bk1", "large", b"L" * (s3.limits.inline_max + 1))
    assert len(s3.blobs.all_ids()) == 1
    assert read(s3, "bk1", "small", Range="bytes=10-19") == b"s" * 10
    asyncio.run(s3.copy_object(ctx(), {"Bucket": "bk1", "Key": "copy", "CopySource": "bk1/small"}))
    put(s3, "bk1", "small", b"new")
    assert read(s3, "bk1", "copy") == b"s" * 100 and read(s3, "bk1", "small") == b"new"


def test_bucket_key_caches_keep_only_the_most_recently_used() -> None:
    from strata.services.s3.sse import BUCKET_KEYS_KEPT, Bounded, ObjectKeys

    cache: Bounded[str, int] = Bounded(3)
    for i, name in enumerate("abcd"):
        cache[name] = i
    assert list(cache) == ["b", "c", "d"]  # "a" pushed out
    assert cache.get("b") == 1  # used: now the most recent
    cache["e"] = 4
    assert list(cache) == ["d", "b", "e"] and cache.get("c") is None
    keys = ObjectKeys(runtime=None, root=None)  # type: ignore[arg-type]
    assert keys._bucket_keys.limit == keys._opened.limit == BUCKET_KEYS_KEPT


@pytest.mark.parametrize(
    "operation, method, extra",
    [
        ("GetObject", "get_object", {}),
        ("HeadObject", "head_object", {}),
        ("GetObjectAcl", "get_object_acl", {}),
        ("GetObjectAttributes", "get_object_attributes", {"ObjectAttributes": ["ETag"]}),
        ("GetObjectTagging", "get_object_tagging", {}),
    ],
)
def test_a_read_on_a_bucket_with_acls_reads_its_object_row_once(
    s3: S3Provider, operation: str, method: str, extra: dict
) -> None:
    """Authorization reads the object (its owner and ACL decide a GET); the operation, which runs
    right after it, uses that row rather than reading it again."""
    import contextvars

    from strata.auth.enforce import CALLER_OPERATION

    run(s3.create_bucket(ctx(), {"Bucket": "acl-once", "ObjectOwnership": "BucketOwnerPreferred"}))
    put(s3, "acl-once", "k", b"owned")
    statements: list[str] = []
    reader = s3.store.db.reader()
    operate = getattr(s3, method)

    def call(authorized: bool) -> dict:
        req = {"Bucket": "acl-once", "Key": "k", **extra}
        CALLER_OPERATION.set(operation)
        if authorized:  # what the authorizer asks of a bucket with ACLs on
            assert s3.resource_account(req) == "000000000000"
            assert s3.resource_policy(req) is not None
        statements.clear()
        reader.set_trace_callback(statements.append)
        try:
            return run(operate(ctx(operation), req))
        finally:
            reader.set_trace_callback(None)

    first = contextvars.copy_context().run(call, False)
    rows_read = [s for s in statements if "FROM objects WHERE bucket" in s]
    assert len(rows_read) == 1  # (the trace sees the read)
    again = contextvars.copy_context().run(call, True)
    assert not [s for s in statements if "FROM objects WHERE bucket" in s]
    assert {k: v for k, v in again.items() if k != "Body"} == {k: v for k, v in first.items() if k != "Body"}


@pytest.mark.parametrize(
    "operation, method",
    [("GetObject", "get_object"), ("HeadObject", "head_object"), ("GetObjectTagging", "get_object_tagging")],
)
def test_a_read_under_an_existing_object_tag_condition_reads_its_object_row_once(
    s3: S3Provider, operation: str, method: str
) -> None:
    """A policy's s3:ExistingObjectTag condition reads the object for its tags (any bucket);
    the operation right after takes that row, and a second ask of the condition reads nothing."""
    import contextvars

    from strata.auth.enforce import CALLER_OPERATION

    run(s3.create_bucket(ctx(), {"Bucket": "tag-once"}))
    put(s3, "tag-once", "k", b"tagged", Tagging="team=blue")
    statements: list[str] = []
    reader = s3.store.db.reader()

    def call() -> tuple[object, dict]:
        req = {"Bucket": "tag-once", "Key": "k"}
        CALLER_OPERATION.set(operation)
        statements.clear()
        reader.set_trace_callback(statements.append)
        try:
            team = s3.condition_key(req, "s3:existingobjecttag/team")
            assert s3.condition_key(req, "s3:existingobjecttag/team") == team  # (asked again)
            return team, run(getattr(s3, method)(ctx(operation), req))
        finally:
            reader.set_trace_callback(None)

    team, out = contextvars.copy_context().run(call)
    assert team == "blue"
    assert len([s for s in statements if "FROM objects WHERE bucket" in s]) == 1
    if operation == "GetObjectTagging":
        assert out["TagSet"] == [{"Key": "team", "Value": "blue"}]
    else:
        assert out["ContentLength"] == 6
