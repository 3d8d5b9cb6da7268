"""UpdateObjectEncryption: an SSE-S3 or SSE-KMS object moved under another KMS key in place.

Only the object's data key is wrapped anew (sse.ObjectKeys.reseal): the bytes, ETag, checksums,
last-modified date, storage class and metadata stay as they are, as AWS documents. The new key
must be a KMS key ARN of the bucket owner's account; SSE-S3 is not a target, and unencrypted,
SSE-C and DSSE-KMS objects are not sources. An object under Object Lock (a retention not yet
expired, or a legal hold) cannot be changed.

The KMS calls run before the write (they are requests of their own, metered as KMS's); the write
then installs the new record only if the version still has the record the new one was made from,
so a concurrent update is refused rather than overwritten.
"""

from __future__ import annotations

import re

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.s3.core import S3Core
from strata.services.s3.lock_rules import locked_until

_KEY_ARN = re.compile(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:(\d{12}):key/[A-Za-z0-9-]{1,128}")

_NO_TYPE = (
    "Requests that modify an object encryption configuration require a valid new encryption type. "
    "Valid values are SSEKMS. Modify the request to specify SSE-KMS for the updated encryption type, "
    "and then try again."
)
_NO_ARN = (
    "Requests that modify an object's encryption type to SSE-KMS require an Amazon Web Services KMS "
    "key Amazon Resource Name (ARN). Modify the request to specify a KMS key ARN, and then try again."
)
_BAD_ARN = (
    "Requests that modify an object's encryption type to SSE-KMS require a valid Amazon Web Services "
    "KMS key Amazon Resource Name (ARN). Confirm that you have a correctly formatted KMS key ARN in "
    "your request, and then try again."
)
_OTHER_ACCOUNT = (
    "The Amazon Web Services KMS key in the request must be owned by the same account as the bucket. "
    "Modify the request to specify a KMS key from the same account, and then try again."
)
_PLAINTEXT = (
    "The UpdateObjectEncryption operation doesn't supported unencrypted source objects. Only source "
    "objects encrypted with SSE-S3 or SSE-KMS are supported."
)
_UNSUPPORTED_SOURCE = (
    "The UpdateObjectEncryption operation doesn't support source objects with the encryption type "
    "DSSE-KMS or SSE-C. Only source objects encrypted with SSE-S3 or SSE-KMS are supported."
)
_LOCKED = (
    "The encryption type for the specified object can't be updated because that object is protected "
    "by S3 Object Lock. If the object has a governance-mode retention period or a legal hold, you must "
    "first remove the Object Lock status on the object before you issue your UpdateObjectEncryption "
    "request. You can't use the UpdateObjectEncryption operation with objects that have an Object Lock "
    "compliance mode retention period applied to them."
)


def _invalid(message: str) -> ServiceError:
    return ServiceError("InvalidRequest", message, 400)


class ObjectEncryptionOperations(S3Core):
    async def update_object_encryption(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        sse_kms = (req.get("ObjectEncryption") or {}).get("SSEKMS")
        if sse_kms is None:
            raise _invalid(_NO_TYPE)
        arn = sse_kms.get("KMSKeyArn")
        if not arn:
            raise _invalid(_NO_ARN)
        match = _KEY_ARN.fullmatch(arn)
        if match is None:
            raise _invalid(_BAD_ARN)
        bucket = self._require_bucket(req["Bucket"])
        if match.group(1) != (bucket.config.get("owner") or self.settings.account_id):
            raise ServiceError("AccessDenied", _OTHER_ACCOUNT, 403)
        row = self._read_version(bucket.name, req["Key"], req.get("VersionId"))
        record = row.attrs.get("sse")
        if not record:
            raise _invalid(_PLAINTEXT)
        if record.get("customer") or record.get("alg") not in ("AES256", "aws:kms"):
            raise _invalid(_UNSUPPORTED_SOURCE)
        until = locked_until(row.attrs)
        if until is not None and until > self._now():
            raise ServiceError("AccessDenied", _LOCKED, 403)
        new = self.sse_keys.reseal(
            ctx, bucket.name, row.key, record, arn, bool(sse_kms.get("BucketKeyEnabled"))
        )

        def write() -> dict:
            current = self._read_version(bucket.name, req["Key"], req.get("VersionId"))
            if current.id != row.id or current.attrs.get("sse") != record:
                raise ServiceError(
                    "OperationAborted",
                    "A conflicting conditional operation is currently in progress against this resource. Please try again.",
                    409,
                )
            current.attrs["sse"] = new
            self.store.update_attrs(current)
            return {}

        return await self._write(write)
