"""Browser uploads: POST /bucket with a multipart/form-data body and a signed policy.

The form is parsed as it streams: fields (bounded to 20 KiB in all, as S3 does) up to the
`file` part, then the file's bytes flow straight into the ingest pipeline until the closing
boundary; fields after the file are ignored, as in S3. The policy (signature, expiry, every
condition, content-length-range) is verified by `strata.auth.presigned_post` with the final
size before the blob is published, so a rejected upload leaves nothing behind. The upload is
then authorized as the signer's PutObject with the form's encryption, storage class, ACL and
Object Lock fields, so bucket and identity policy conditions on them (the documented "deny
unencrypted uploads" policy) bind form uploads as they bind PutObject.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import quote

from strata.auth.directory import directory_for
from strata.auth.enforce import Authorizer
from strata.auth.presigned_post import verify_post_policy
from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.protocol.http import BodyStream
from strata.services.s3.core import S3Core
from strata.services.s3.ingest import CHECKSUM_ALGORITHMS, discard, receive
from strata.services.s3.lock_rules import lock_attrs
from strata.services.s3.names import check_key, check_storage_class
from strata.services.s3.sse import customer_key, headers_of

MAX_FIELDS_BYTES = 20 * 1024
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.I)
_DISPOSITION_NAME = re.compile(r'\bname="([^"]*)"', re.I)
_DISPOSITION_FILENAME = re.compile(r'\bfilename="([^"]*)"', re.I)
_FORM_HEADERS = {
    "content-type": "ContentType",
    "cache-control": "CacheControl",
    "content-disposition": "ContentDisposition",
    "content-encoding": "ContentEncoding",
    "content-language": "ContentLanguage",
    "x-amz-website-redirect-location": "WebsiteRedirectLocation",
}


# Form fields the signer's PutObject is authorized with: what bucket and identity policy
# conditions read (s3:x-amz-server-side-encryption, ...-aws-kms-key-id, s3:x-amz-storage-class,
# s3:x-amz-acl, s3:object-lock-mode), as for a PutObject sending them as headers.
_AUTHORIZED_FIELDS = {
    "x-amz-server-side-encryption": "ServerSideEncryption",
    "x-amz-server-side-encryption-aws-kms-key-id": "SSEKMSKeyId",
    "x-amz-storage-class": "StorageClass",
    "acl": "ACL",
    "x-amz-object-lock-mode": "ObjectLockMode",
}
# Object Lock form fields, as PutObject's headers (lock_rules.lock_attrs).
_LOCK_FIELDS = {
    "x-amz-object-lock-mode": "ObjectLockMode",
    "x-amz-object-lock-retain-until-date": "ObjectLockRetainUntilDate",
    "x-amz-object-lock-legal-hold": "ObjectLockLegalHoldStatus",
}

# ACL form fields, as PutObject's members (acl.py decides what they give).
_ACL_FIELDS = {
    "acl": "ACL",
    "x-amz-grant-full-control": "GrantFullControl",
    "x-amz-grant-read": "GrantRead",
    "x-amz-grant-read-acp": "GrantReadACP",
    "x-amz-grant-write-acp": "GrantWriteACP",
}


def _refuse_unsupported_fields(form: dict[str, str]) -> None:
    """Form fields of settings S3 honours on POST but Strata does not: refused as on PutObject
    (see parameters.json), never stored and ignored."""
    for name, value in form.items():
        if not value:
            continue
        if name.startswith("x-amz-object-lock-") and name not in _LOCK_FIELDS:
            raise ServiceError(
                "NotImplemented",
                "A header you provided implies functionality that is not implemented",
                501,
                fields={"Header": name},
            )
        if name == "tagging":
            raise ServiceError(
                "NotImplemented",
                "A header you provided implies functionality that is not implemented",
                501,
                fields={"Header": name},
            )


def _lock_request(form: dict[str, str]) -> dict[str, Any]:
    """The Object Lock fields of a form as PutObject's members (the date parsed as ISO 8601)."""
    req: dict[str, Any] = {member: form[name] for name, member in _LOCK_FIELDS.items() if form.get(name)}
    until = req.get("ObjectLockRetainUntilDate")
    if until:
        try:
            req["ObjectLockRetainUntilDate"] = datetime.fromisoformat(until.replace("Z", "+00:00"))
        except ValueError:
            raise ServiceError(
                "InvalidArgument",
                "The retain until date must be in ISO 8601 format",
                400,
                fields={"ArgumentName": "x-amz-object-lock-retain-until-date", "ArgumentValue": until},
            ) from None
    return req


def _malformed(
    message: str = "The body of your POST request is not well-formed multipart/form-data.",
) -> ServiceError:
    return ServiceError("MalformedPOSTRequest", message, 400)


class FormReader:
    """Reads multipart/form-data from an async byte stream: fields first, then the file bytes."""

    def __init__(self, source: AsyncIterator[bytes], boundary: str) -> None:
        self._source = source
        self._buf = b""
        self._delim = b"\r\n--" + boundary.encode()
        self._eof = False

    async def _fill(self) -> bool:
        try:
            chunk = await self._source.__anext__()
        except StopAsyncIteration:
            self._eof = True
            return False
        self._buf += chunk
        return True

    async def _read_until(self, marker: bytes, limit: int) -> bytes:
        while True:
            i = self._buf.find(marker)
            if i >= 0:
                out, self._buf = self._buf[:i], self._buf[i + len(marker) :]
                return out
            if len(self._buf) > limit or not await self._fill():
                raise _malformed()

    async def fields(self) -> tuple[dict[str, str], str | None]:
        """Every field before the file, and the file's client-side name (None: no file part)."""
        self._buf = b"\r\n"  # the first boundary has no leading CRLF
        await self._read_until(self._delim, MAX_FIELDS_BYTES)
        fields: dict[str, str] = {}
        used = 0
        while True:
            while len(self._buf) < 2 and await self._fill():
                pass
            if self._buf.startswith(b"--"):
                return fields, None
            raw_headers = await self._read_until(b"\r\n\r\n", MAX_FIELDS_BYTES)
            headers = {}
            for line in raw_headers.decode("utf-8", "replace").split("\r\n"):
                name, _, value = line.partition(":")
                if name.strip():
                    headers[name.strip().lower()] = value.strip()
            disposition = headers.get("content-disposition", "")
            m = _DISPOSITION_NAME.search(disposition)
            if not m:
                raise _malformed()
            name = m.group(1)
            if name.lower() == "file":
                fn = _DISPOSITION_FILENAME.search(disposition)
                if "content-type" in headers and "content-type" not in {k.lower() for k in fields}:
                    fields["Content-Type"] = headers["content-type"]
                return fields, fn.group(1) if fn else ""
            value = await self._read_until(self._delim, MAX_FIELDS_BYTES - used)
            used += len(value)
            if used > MAX_FIELDS_BYTES:
                raise ServiceError(
                    "MaxPostPreDataLengthExceededError",
                    "Your POST request fields preceding the upload file were too large.",
                    400,
                )
            fields[name] = value.decode("utf-8")

    async def file(self) -> AsyncIterator[bytes]:
        """The file part's bytes, up to (not including) the next boundary."""
        keep = len(self._delim)
        while True:
            i = self._buf.find(self._delim)
            if i >= 0:
                if i:
                    yield self._buf[:i]
                self._buf = b""
                return
            if len(self._buf) > keep:
                out, self._buf = self._buf[:-keep], self._buf[-keep:]
                yield out
            if not await self._fill():
                raise ServiceError("IncompleteBody", "The request body terminated unexpectedly", 400)


class PostObjectOperations(S3Core):
    async def post_object(self, ctx: RequestContext, req: dict) -> dict:
        bucket = self._require_bucket(req["Bucket"])
        content_type = ctx.http.headers.get("content-type") or ""
        m = _BOUNDARY.search(content_type)
        if not content_type.lower().startswith("multipart/form-data") or not m:
            raise ServiceError(
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
                412,
                fields={"Condition": "Bucket POST must be of the enclosure-type multipart/form-data"},
            )
        stream: BodyStream = req["Body"]
        reader = FormReader(stream.__aiter__(), m.group(1))
        fields, filename = await reader.fields()
        form = {k.lower(): v for k, v in fields.items()}
        if filename is None:
            raise ServiceError(
                "InvalidArgument",
                "POST requires exactly one file upload per request.",
                400,
                fields={"ArgumentName": "file", "ArgumentValue": "0"},
            )
        if "key" not in form:
            raise ServiceError(
                "InvalidArgument",
                "Bucket POST must contain a field named 'key'.  If it is specified, please check the order of the fields.",
                400,
                fields={"ArgumentName": "key", "ArgumentValue": ""},
            )
        _refuse_unsupported_fields(form)
        key = form["key"].replace("${filename}", filename)
        check_key(key)
        storage_class = check_storage_class(form.get("x-amz-storage-class"))
        locks = lock_attrs(bucket, _lock_request(form), self._now(), defaults=False)
        expected = {
            a: form[f"x-amz-checksum-{a.lower()}"]
            for a in CHECKSUM_ALGORITHMS
            if form.get(f"x-amz-checksum-{a.lower()}")
        }
        algorithm = next(iter(expected), None)
        sse_fields = {
            "ServerSideEncryption": form.get("x-amz-server-side-encryption"),
            "SSEKMSKeyId": form.get("x-amz-server-side-encryption-aws-kms-key-id"),
            "SSEKMSEncryptionContext": form.get("x-amz-server-side-encryption-context"),
            "BucketKeyEnabled": (form.get("x-amz-server-side-encryption-bucket-key-enabled") or "").lower()
            == "true"
            or None,
        }
        # The form's policy is judged before the encryption it asks for (a form the policy does
        # not allow gets the policy's 403 whatever its KMS key), and again with the file's size
        # once it has arrived; the signer's KMS permission is checked then.
        verify_post_policy(fields, bucket.name, None, self.settings)
        prefix = "x-amz-server-side-encryption-customer-"
        customer = customer_key(
            {
                "SSECustomerAlgorithm": form.get(prefix + "algorithm"),
                "SSECustomerKey": form.get(prefix + "key"),
                "SSECustomerKeyMD5": form.get(prefix + "key-md5"),
            },
            ctx.http.secure,
        )
        sealing = self.sse_keys.choose(replace(ctx, principal=None), bucket, key, sse_fields, customer)
        got = await receive(
            self.blobs,
            BodyStream(reader.file()),
            max_size=self.limits.max_put_size,
            content_md5=form.get("content-md5"),
            expected=expected,
            algorithm=algorithm,
            keys=sealing.keys if sealing else None,
        )
        try:
            signer = verify_post_policy(fields, bucket.name, got.size, self.settings)
            # The upload is the signer's PutObject: their policies decide, as for any request.
            authorized = {member: form[name] for name, member in _AUTHORIZED_FIELDS.items() if form.get(name)}
            Authorizer(directory_for(self.settings)).check(
                signer,
                "s3",
                "PutObject",
                {"Bucket": bucket.name, "Key": key, **authorized},
                ctx.http,
                ctx.region,
                self,
            )
            if sealing:
                self.sse_keys.check_write(replace(ctx, principal=signer), sealing.record)
            acl_fields = {member: form[name] for name, member in _ACL_FIELDS.items() if form.get(name)}
            # The signer writes the object: Object Ownership makes its account the owner.
            acl = self._new_object_acl(replace(ctx, principal=signer), bucket, acl_fields)  # type: ignore[attr-defined]
        except BaseException:
            discard(self.blobs, got)
            raise
        self._count(ctx, bucket.name, bytes_in=got.size)
        headers = {member: form[name] for name, member in _FORM_HEADERS.items() if form.get(name)}
        headers.setdefault("ContentType", "binary/octet-stream")
        attrs: dict[str, Any] = {
            "headers": headers,
            "meta": {
                k[len("x-amz-meta-") :]: v for k, v in fields.items() if k.lower().startswith("x-amz-meta-")
            },
            **locks,
            **acl,
        }
        if sealing:
            attrs["sse"] = sealing.record
        row, versioning = await self._store_ingested(bucket, key, got, attrs, storage_class, None)
        endpoint = self.settings.https_endpoint if ctx.http.secure else self.settings.endpoint
        location = f"{endpoint}/{quote(bucket.name)}/{quote(key)}"
        out: dict[str, Any] = {"ETag": row.etag, "Location": location}
        if sealing:
            out.update(headers_of(sealing.record, customer))
        if versioning:
            out["VersionId"] = row.version_id
        redirect = form.get("success_action_redirect") or form.get("redirect")
        if redirect:
            sep = "&" if "?" in redirect else "?"
            out["Location"] = (
                f"{redirect}{sep}bucket={quote(bucket.name)}&key={quote(key)}&etag={quote(row.etag)}"
            )
            out["StatusCode"] = 303
            return out
        status = form.get("success_action_status", "204")
        if status == "201":
            out["StatusCode"] = 201
            out["PostResponse"] = {"Location": location, "Bucket": bucket.name, "Key": key, "ETag": row.etag}
        elif status == "200":
            out["StatusCode"] = 200
        else:
            out["StatusCode"] = 204
        return out
