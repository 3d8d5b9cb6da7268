"""S3 pages: buckets, the prefix browser, uploads, downloads, versions, object metadata and tags.

The prefix browser asks for one ListObjectsV2 (or ListObjectVersions) page with the "/" delimiter
at a time, so a bucket of a million keys costs what a bucket of a hundred does; "Next page"
carries the continuation token. Big files go up from the browser itself (static/console.js):
CreateMultipartUpload and CompleteMultipartUpload are made here as the signed-in identity, and
each part is PUT by the browser to a URL presigned with that identity (POST /s3/multipart).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

from strata.console.aws import AwsError, presign_s3
from strata.console.web import Page, url
from strata.protocol.http import HttpResponse

PAGE_SIZE = 100
PART_URLS_PER_CALL = 100  # the browser asks for presigned part URLs this many at a time


async def read_setting(page: Page, op: str, **params: Any) -> Any:
    """The answer of a bucket setting's Get call, or None when the bucket has none of that setting."""
    try:
        return await page.call("s3", op, **params)
    except AwsError as e:
        if e.status == 404 or e.code.startswith("NoSuch") or "NotFound" in e.code:
            return None
        raise


async def buckets(page: Page) -> HttpResponse:
    listed = await page.call("s3", "list_buckets")
    return page.render("s3_buckets.html", title="S3 buckets", buckets=listed.get("Buckets", []))


async def create_bucket(page: Page) -> HttpResponse:
    name = page.form.get("bucket", "").strip()
    return await page.act(
        "s3", "create_bucket", f"Created bucket {name}.", url("/s3/bucket", bucket=name), Bucket=name
    )


async def delete_bucket(page: Page) -> HttpResponse:
    name = page.form.get("bucket", "")
    return await page.act("s3", "delete_bucket", f"Deleted bucket {name}.", url("/s3"), Bucket=name)


def _crumbs(prefix: str) -> list[tuple[str, str]]:
    """(label, prefix) for each level of `prefix` ("a/b/" -> [("a", "a/"), ("b", "a/b/")])."""
    out, acc = [], ""
    for part in prefix.split("/")[:-1] if prefix else []:
        acc += part + "/"
        out.append((part, acc))
    return out


async def bucket(page: Page) -> HttpResponse:
    name = page.query.get("bucket", "")
    prefix = page.query.get("prefix", "")
    versions = page.query.get("versions") == "1"
    if versions:
        params: dict[str, Any] = {"Bucket": name, "Prefix": prefix, "Delimiter": "/", "MaxKeys": PAGE_SIZE}
        if page.query.get("key_marker"):
            params["KeyMarker"] = page.query["key_marker"]
            params["VersionIdMarker"] = page.query.get("version_marker", "")
        listing = page.call("s3", "list_object_versions", **params)
    else:
        params = {"Bucket": name, "Prefix": prefix, "Delimiter": "/", "MaxKeys": PAGE_SIZE}
        if page.query.get("token"):
            params["ContinuationToken"] = page.query["token"]
        listing = page.call("s3", "list_objects_v2", **params)
    listed, versioning, encryption, lifecycle = await asyncio.gather(
        listing,
        read_setting(page, "get_bucket_versioning", Bucket=name),
        read_setting(page, "get_bucket_encryption", Bucket=name),
        read_setting(page, "get_bucket_lifecycle_configuration", Bucket=name),
    )
    if versions:
        rows = [dict(v, Kind="version") for v in listed.get("Versions", [])]
        rows += [dict(m, Kind="delete marker") for m in listed.get("DeleteMarkers", [])]
        rows.sort(key=lambda r: (r["Key"], not r.get("IsLatest"), -r["LastModified"].timestamp()))
        next_url = page.next_url(
            key_marker=listed.get("NextKeyMarker"), version_marker=listed.get("NextVersionIdMarker")
        )
    else:
        rows = listed.get("Contents", [])
        next_url = page.next_url(token=listed.get("NextContinuationToken"))
    rules = (encryption or {}).get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
    return page.render(
        "s3_bucket.html",
        title=f"{name} · S3",
        bucket=name,
        prefix=prefix,
        crumbs=_crumbs(prefix),
        folders=[p["Prefix"] for p in listed.get("CommonPrefixes", [])],
        rows=rows,
        versions=versions,
        paged=bool(page.query.get("token") or page.query.get("key_marker")),
        next_url=next_url,
        versioning=(versioning or {}).get("Status") or "Never enabled",
        encryption=", ".join(
            r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm", "?") for r in rules
        )
        or "None",
        lifecycle=len((lifecycle or {}).get("Rules", [])),
        back=page.request.raw_path + ("?" + page.request.query_string if page.request.query_string else ""),
        part_size=5 * 1024 * 1024,
    )


async def set_versioning(page: Page) -> HttpResponse:
    name = page.form.get("bucket", "")
    status = page.form.get("status", "")
    return await page.act(
        "s3",
        "put_bucket_versioning",
        f"Versioning of {name} is now {status}.",
        url("/s3/bucket", bucket=name),
        Bucket=name,
        VersioningConfiguration={"Status": status},
    )


async def upload(page: Page) -> HttpResponse:
    """The plain form upload (no JavaScript needed), for files up to the console's form limit."""
    name = page.form.get("bucket", "")
    prefix = page.form.get("prefix", "")
    filename, data = page.files.get("file", ("", b""))
    key = page.form.get("key", "").strip() or prefix + filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    if not key:
        page.say("error", "Choose a file to upload.")
    else:
        await page.call("s3", "put_object", Bucket=name, Key=key, Body=data)
        page.say("ok", f"Uploaded {key} ({len(data):,} bytes).")
    return page.redirect(url("/s3/bucket", bucket=name, prefix=prefix))


async def multipart(page: Page) -> HttpResponse:
    """The browser's multipart upload, one JSON call per step: create, parts, complete, abort."""
    try:
        doc = json.loads(page.form.get("_json") or "{}")
        if not isinstance(doc, dict):
            raise ValueError("not an object")
        return await _multipart_step(page, doc)
    except (ValueError, TypeError, KeyError) as e:
        return page.json(400, {"code": "BadRequest", "message": f"a malformed upload step: {e}"})


async def _multipart_step(page: Page, doc: dict) -> HttpResponse:
    action, name, key = doc.get("action"), str(doc.get("bucket", "")), str(doc.get("key", ""))
    if action == "create":
        params = {"Bucket": name, "Key": key}
        if doc.get("content_type"):
            params["ContentType"] = str(doc["content_type"])
        created = await page.call("s3", "create_multipart_upload", **params)
        return page.json(200, {"uploadId": created["UploadId"]})
    upload_id = str(doc.get("uploadId", ""))
    if action == "parts":
        numbers = [int(n) for n in doc.get("parts", [])][:PART_URLS_PER_CALL]
        assert page.session is not None
        urls = {
            n: presign_s3(
                page.session,
                page.app.settings,
                page.base_url,
                "PUT",
                name,
                key,
                {"partNumber": str(n), "uploadId": upload_id},
            )
            for n in numbers
        }
        return page.json(200, {"urls": urls})
    if action == "complete":
        parts = [{"PartNumber": int(p["PartNumber"]), "ETag": str(p["ETag"])} for p in doc.get("parts", [])]
        await page.call(
            "s3",
            "complete_multipart_upload",
            Bucket=name,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},
        )
        page.say("ok", f"Uploaded {key}.")
        return page.json(200, {"ok": True})
    if action == "abort":
        await page.call("s3", "abort_multipart_upload", Bucket=name, Key=key, UploadId=upload_id)
        return page.json(200, {"ok": True})
    return page.json(400, {"code": "BadRequest", "message": "action is create, parts, complete or abort"})


async def download(page: Page) -> HttpResponse:
    """A redirect to a short-lived presigned GET that saves the object as a file."""
    assert page.session is not None
    name, key = page.query.get("bucket", ""), page.query.get("key", "")
    filename = key.rsplit("/", 1)[-1] or "download"
    query = {"response-content-disposition": f"attachment; filename*=UTF-8''{quote(filename, safe='')}"}
    if page.query.get("version"):
        query["versionId"] = page.query["version"]
    target = presign_s3(page.session, page.app.settings, page.base_url, "GET", name, key, query, expires=300)
    return page.redirect(target)


async def obj(page: Page) -> HttpResponse:
    name, key = page.query.get("bucket", ""), page.query.get("key", "")
    version = page.query.get("version", "")
    extra = {"VersionId": version} if version else {}
    head, tags, versions = await asyncio.gather(
        page.call("s3", "head_object", Bucket=name, Key=key, **extra),
        page.call("s3", "get_object_tagging", Bucket=name, Key=key, **extra),
        page.call("s3", "list_object_versions", Bucket=name, Prefix=key, MaxKeys=PAGE_SIZE),
    )
    history = [dict(v, Kind="version") for v in versions.get("Versions", []) if v["Key"] == key]
    history += [dict(m, Kind="delete marker") for m in versions.get("DeleteMarkers", []) if m["Key"] == key]
    history.sort(key=lambda r: -r["LastModified"].timestamp())
    prefix = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
    return page.render(
        "s3_object.html",
        title=f"{key} · {name}",
        bucket=name,
        key=key,
        version=version,
        prefix=prefix,
        crumbs=_crumbs(prefix),
        head=head,
        metadata=sorted(head.get("Metadata", {}).items()),
        tags=tags.get("TagSet", []),
        history=history,
        back=page.request.raw_path + "?" + page.request.query_string,
    )


async def delete_object(page: Page) -> HttpResponse:
    name, key = page.form.get("bucket", ""), page.form.get("key", "")
    version = page.form.get("version", "")
    prefix = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
    return await page.act(
        "s3",
        "delete_object",
        f"Deleted {key}" + (f" version {version}." if version else "."),
        url("/s3/bucket", bucket=name, prefix=prefix),
        Bucket=name,
        Key=key,
        **({"VersionId": version} if version else {}),
    )


async def put_tags(page: Page) -> HttpResponse:
    """Replace an object's tags with the form's `key=value` lines."""
    name, key = page.form.get("bucket", ""), page.form.get("key", "")
    tag_set = []
    for line in page.form.get("tags", "").splitlines():
        if line.strip():
            k, _, v = line.partition("=")
            tag_set.append({"Key": k.strip(), "Value": v.strip()})
    return await page.act(
        "s3",
        "put_object_tagging",
        f"Saved {len(tag_set)} tag(s) on {key}.",
        url("/s3/object", bucket=name, key=key),
        Bucket=name,
        Key=key,
        Tagging={"TagSet": tag_set},
    )


async def put_metadata(page: Page) -> HttpResponse:
    """Replace an object's user metadata (and content type): CopyObject onto itself with
    MetadataDirective REPLACE, keeping its storage class, as the AWS console does."""
    name, key = page.form.get("bucket", ""), page.form.get("key", "")
    metadata = {}
    for line in page.form.get("metadata", "").splitlines():
        if line.strip():
            k, _, v = line.partition("=")
            metadata[k.strip().lower().removeprefix("x-amz-meta-")] = v.strip()
    head = await page.call("s3", "head_object", Bucket=name, Key=key)
    params: dict[str, Any] = {
        "Bucket": name,
        "Key": key,
        "CopySource": {"Bucket": name, "Key": key},
        "MetadataDirective": "REPLACE",
        "Metadata": metadata,
        "ContentType": page.form.get("content_type", "").strip()
        or head.get("ContentType", "binary/octet-stream"),
    }
    if head.get("StorageClass"):
        params["StorageClass"] = head["StorageClass"]
    done = f"Saved {len(metadata)} metadata value(s) on {key}."
    return await page.act("s3", "copy_object", done, url("/s3/object", bucket=name, key=key), **params)


ROUTES = {
    ("GET", "/s3"): buckets,
    ("POST", "/s3/create"): create_bucket,
    ("POST", "/s3/delete"): delete_bucket,
    ("GET", "/s3/bucket"): bucket,
    ("POST", "/s3/versioning"): set_versioning,
    ("POST", "/s3/upload"): upload,
    ("POST", "/s3/multipart"): multipart,
    ("GET", "/s3/download"): download,
    ("GET", "/s3/object"): obj,
    ("POST", "/s3/object/delete"): delete_object,
    ("POST", "/s3/object/tags"): put_tags,
    ("POST", "/s3/object/metadata"): put_metadata,
}
