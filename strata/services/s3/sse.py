"""Server-side encryption modes: which one a write gets, and the keys that open an object.

A new object is encrypted as its request says (x-amz-server-side-encryption, the SSE-C headers),
else as its bucket's default encryption says (SSE-S3 when none was set, as S3 does since 2023;
`Settings.s3_default_encryption=False` stores such objects in plaintext). The object's row keeps
`attrs["sse"]`, the record of how it was encrypted; a row without one is plaintext (objects from
before encryption, or with the default turned off) and is served with sendfile as before.

- SSE-S3 (`AES256`): a random data key per object, wrapped by Strata's root key (encryption.py).
- SSE-KMS (`aws:kms`) and DSSE-KMS (`aws:kms:dsse`, two layers with two data keys): the data key
  comes from Strata's KMS (GenerateDataKey on write, Decrypt on read) under the named key, or the
  account's AWS managed `aws/s3` key, with the encryption context `aws:s3:arn` = the object's ARN
  (or the context the request gave). The caller's own permissions on the KMS key are checked as
  AWS checks them (key policy, grants, IAM): a caller without kms:GenerateDataKey / kms:Decrypt
  gets AccessDenied from S3. The AWS managed key's policy lets every principal of its account use
  it through S3, so it is not checked. With BucketKeyEnabled the data key comes from a bucket key
  (a KMS data key for the bucket's ARN, cached for an hour of the simulated clock), which is
  what makes KMS requests rare; each KMS request S3 makes is on the meter as KMS's.
- SSE-C: the customer's key (sent with every request, HTTPS only) encrypts the object; only a
  salted HMAC of it is stored, to tell a wrong key (403) from a right one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from strata.auth.enforce import check_for_caller
from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.kms.keys import Where, key_arn
from strata.services.kms.specs import VIA_SERVICE, via_service
from strata.services.s3.encryption import KEY_BYTES, Corrupt, RootKey, unwrap, wrap
from strata.sim.clock import clock

KMS_MODES = ("aws:kms", "aws:kms:dsse")
MODES = ("AES256", *KMS_MODES)
MANAGED_ALIAS = "alias/aws/s3"
BUCKET_KEY_LIFETIME = 3600.0
# Bucket keys (and opened bucket-key ciphertexts) kept in memory, most recently used first.
BUCKET_KEYS_KEPT = 4096
SSE_FIELDS = ("ServerSideEncryption", "SSEKMSKeyId", "BucketKeyEnabled")


@dataclass
class Sealing:
    """How one new object is encrypted: the record its row keeps, and its layer keys."""

    record: dict[str, Any]
    keys: list[bytes]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def invalid_argument(message: str, name: str | None = None, value: str | None = None) -> ServiceError:
    fields = {"ArgumentName": name, "ArgumentValue": value} if name else {}
    return ServiceError("InvalidArgument", message, 400, fields={k: v for k, v in fields.items() if v})


def customer_key(req: dict, secure: bool, prefix: str = "SSECustomer") -> bytes | None:
    """The SSE-C key a request carries (`prefix`: SSECustomer or CopySourceSSECustomer), checked
    as S3 checks it; None when it carries none."""
    algorithm, key, md5 = req.get(f"{prefix}Algorithm"), req.get(f"{prefix}Key"), req.get(f"{prefix}KeyMD5")
    if not (algorithm or key or md5):
        return None
    if not secure:
        raise ServiceError(
            "InvalidRequest",
            "Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection.",
            400,
        )
    if not algorithm:
        raise invalid_argument(
            "Requests specifying Server Side Encryption with Customer provided keys must provide a valid encryption algorithm.",
            "x-amz-server-side-encryption-customer-algorithm",
        )
    if algorithm != "AES256":
        raise invalid_argument(
            "The encryption algorithm specified is not valid.",
            "x-amz-server-side-encryption-customer-algorithm",
            algorithm,
        )
    if not key:
        raise invalid_argument(
            "Requests specifying Server Side Encryption with Customer provided keys must provide an appropriate secret key.",
            "x-amz-server-side-encryption-customer-key",
        )
    try:
        raw = base64.b64decode(key, validate=True)
    except ValueError:
        raw = b""
    if len(raw) != KEY_BYTES:
        raise invalid_argument(
            "The secret key was invalid for the specified algorithm.",
            "x-amz-server-side-encryption-customer-key",
        )
    if not md5:
        raise invalid_argument(
            "Requests specifying Server Side Encryption with Customer provided keys must provide the client calculated MD5 of the secret key.",
            "x-amz-server-side-encryption-customer-key-MD5",
        )
    if _b64(hashlib.md5(raw).digest()) != md5:
        raise invalid_argument(
            "The calculated MD5 hash of the key did not match the hash that was provided.",
            "x-amz-server-side-encryption-customer-key-MD5",
        )
    return raw


def _mac(salt: bytes, key: bytes) -> str:
    return _b64(hmac.new(salt, key, hashlib.sha256).digest())


def headers_of(record: dict[str, Any] | None, customer: bytes | None = None) -> dict[str, Any]:
    """The SSE members of an answer about an object encrypted as `record` says."""
    if not record:
        return {}
    if record.get("customer"):
        out: dict[str, Any] = {"SSECustomerAlgorithm": "AES256"}
        if customer is not None:
            out["SSECustomerKeyMD5"] = _b64(hashlib.md5(customer).digest())
        return out
    out = {"ServerSideEncryption": record["alg"]}
    if record["alg"] in KMS_MODES:
        out["SSEKMSKeyId"] = record["kms"]
        if record.get("bucket_key"):
            out["BucketKeyEnabled"] = True
    return out


def context_header(record: dict[str, Any]) -> dict[str, Any]:
    """SSEKMSEncryptionContext of a write's answer (base64 JSON), for KMS modes."""
    if record.get("alg") not in KMS_MODES:
        return {}
    return {"SSEKMSEncryptionContext": _b64(json.dumps(record["ctx"], separators=(",", ":")).encode())}


def require_customer(record: dict[str, Any] | None, customer: bytes | None, *, copy: bool = False) -> None:
    """Reading an object: SSE-C objects need their key, and only they take one."""
    if record and record.get("customer"):
        if customer is None:
            raise ServiceError(
                "InvalidRequest",
                "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object.",
                400,
            )
        if _mac(base64.b64decode(record["salt"]), customer) != record["mac"]:
            raise ServiceError(
                "AccessDenied",
                "The provided encryption parameters did not match the ones used originally.",
                403,
            )
    elif customer is not None:
        raise ServiceError(
            "InvalidRequest",
            "The encryption parameters are not applicable to this object."
            if not copy
            else "The source object was not encrypted with customer provided keys.",
            400,
        )


def md5_etag(record: dict[str, Any] | None) -> bool:
    """Whether an object encrypted as `record` says (None: plaintext) has the MD5 of its data as
    its ETag: plaintext and SSE-S3 objects do; on S3 those "encrypted by SSE-C or SSE-KMS have
    ETags that are not an MD5 digest of their object data" (DSSE-KMS is KMS too)."""
    return not record or (record.get("alg") == "AES256" and not record.get("customer"))


def etag_of(record: dict[str, Any] | None, md5: bytes) -> str:
    """The ETag of an object (or part) whose plaintext has the MD5 `md5`, encrypted as `record`
    says: that MD5, or for SSE-KMS, DSSE-KMS and SSE-C an MD5 of it and the object's own random
    key material (stable for the object, different for each write, telling nothing of the data)."""
    if md5_etag(record):
        return f'"{md5.hex()}"'
    assert record is not None
    unique = record.get("salt") or record.get("wrapped") or record.get("blob") or ""
    return f'"{hashlib.md5(md5 + base64.b64decode(unique)).hexdigest()}"'


K = TypeVar("K")
V = TypeVar("V")


class Bounded(OrderedDict[K, V]):
    """A dict that keeps only its `limit` most recently used entries: bucket keys live in memory,
    and one is made per bucket and KMS key each hour, so an unbounded cache grows for ever. An
    entry pushed out costs one KMS request when it is next needed."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def get(self, key: K, default: Any = None) -> Any:  # type: ignore[override]
        if key in self:
            self.move_to_end(key)
            return self[key]
        return default

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)


class ObjectKeys:
    """Makes and opens objects' data keys: the root key, KMS, bucket keys, SSE-C checks."""

    def __init__(self, runtime: Any, root: RootKey) -> None:
        self.runtime = runtime
        self.root = root
        # (bucket, KMS key ARN) -> (made, plain, blob): the bucket key new objects are sealed under
        self._bucket_keys: Bounded[tuple[str, str], tuple[float, bytes, bytes]] = Bounded(BUCKET_KEYS_KEPT)
        # KMS ciphertext of a bucket key -> its plaintext (a Decrypt saved per read)
        self._opened: Bounded[bytes, bytes] = Bounded(BUCKET_KEYS_KEPT)

    # -- which mode a write gets ---------------------------------------------------------------------

    def choose(
        self,
        ctx: RequestContext,
        bucket: Any,
        key: str,
        req: dict,
        customer: bytes | None,
    ) -> Sealing | None:
        """The encryption of a new object from its request's headers, else its bucket's default."""
        mode = req.get("ServerSideEncryption") or None
        kms_key = req.get("SSEKMSKeyId") or None
        context = req.get("SSEKMSEncryptionContext") or None
        bucket_key = req.get("BucketKeyEnabled")
        if customer is not None:
            if "SSE-C" in (bucket.config.get("blocked_encryption") or ()):
                raise ServiceError("AccessDenied", "Access Denied", 403)
            if mode or kms_key:
                raise invalid_argument(
                    "Server Side Encryption with Customer provided key is incompatible with the encryption method specified",
                    "x-amz-server-side-encryption",
                    mode or "",
                )
            salt = os.urandom(16)
            record = {"alg": "AES256", "customer": True, "salt": _b64(salt), "mac": _mac(salt, customer)}
            return Sealing(record, [customer])
        if mode is not None and mode not in MODES:
            raise invalid_argument(
                "The encryption method specified is not supported", "x-amz-server-side-encryption", mode
            )
        if (kms_key or context) and mode not in KMS_MODES:
            raise invalid_argument(
                "Server Side Encryption with AWS KMS managed key requires HTTP header x-amz-server-side-encryption : aws:kms",
                "x-amz-server-side-encryption",
                mode or "null",
            )
        if mode is None:
            rule = default_rule(bucket, self.runtime.settings)
            if rule is not None:
                mode = rule["SSEAlgorithm"]
                kms_key = rule.get("KMSMasterKeyID") if mode in KMS_MODES else None
                if bucket_key is None:
                    bucket_key = rule.get("BucketKeyEnabled")
        if mode is None:
            return None
        if mode == "AES256":
            data_key = os.urandom(KEY_BYTES)
            return Sealing({"alg": "AES256", "wrapped": _b64(self.root.wrap(data_key))}, [data_key])
        return self._kms_sealing(ctx, bucket.name, key, mode, kms_key, context, bool(bucket_key))

    # -- KMS -----------------------------------------------------------------------------------------

    def _kms(self) -> Any:
        kms = self.runtime.peer("kms")
        if kms is None:
            raise ServiceError("KMS.NotFoundException", "Strata's KMS is not running.", 400)
        return kms

    def _key_doc(self, ctx: RequestContext, ref: str | None) -> dict:
        try:
            doc = self._kms().keys.resolve(
                Where(ctx.account_id, ctx.region), ref or MANAGED_ALIAS, create_managed=True
            )
        except ServiceError as e:
            raise _from_kms(e) from None
        if doc["spec"] != "SYMMETRIC_DEFAULT" or doc["usage"] != "ENCRYPT_DECRYPT":
            raise ServiceError(
                "KMS.InvalidKeyUsageException", f"{ref} is not a symmetric encryption KMS key.", 400
            )
        return doc

    def _authorize(self, ctx: RequestContext, operation: str, doc: dict, context: dict) -> None:
        """The caller's permission for kms:<operation> on the key, as KMS would decide it."""
        principal = ctx.principal
        if principal is None:
            return
        params = {
            "KeyId": key_arn(doc["region"], doc["account"], doc["id"]),
            "EncryptionContext": context,
            VIA_SERVICE: via_service(MANAGED_ALIAS.removeprefix("alias/"), doc["region"]),
        }
        try:
            check_for_caller(
                self.runtime.settings, principal, "kms", operation, params, ctx.http, ctx.region, self._kms()
            )
        except ServiceError as e:
            raise ServiceError("AccessDenied", e.message or "Access Denied", 403) from None

    def _call(self, ctx: RequestContext, operation: str, req: dict) -> dict:
        kms = self._kms()
        kctx = replace(ctx, service="kms", operation=operation)
        fn = {"GenerateDataKey": kms.generate_data_key, "Encrypt": kms.encrypt}.get(operation, kms.decrypt)
        try:
            return fn(kctx, req)
        except ServiceError as e:
            raise _from_kms(e) from None

    def _kms_sealing(
        self,
        ctx: RequestContext,
        bucket: str,
        key: str,
        mode: str,
        kms_ref: str | None,
        context_b64: str | None,
        bucket_key: bool,
    ) -> Sealing:
        doc = self._key_doc(ctx, kms_ref)
        _usable(doc)
        arn = key_arn(doc["region"], doc["account"], doc["id"])
        if context_b64:
            try:
                context = json.loads(base64.b64decode(context_b64, validate=True))
                assert isinstance(context, dict) and all(isinstance(v, str) for v in context.values())
            except (ValueError, AssertionError):
                raise invalid_argument(
                    "The header 'x-amz-server-side-encryption-context' shall be Base64-encoded UTF-8 string holding JSON which represents a string-string map",
                    "x-amz-server-side-encryption-context",
                    context_b64,
                ) from None
        else:
            context = {"aws:s3:arn": f"arn:aws:s3:::{bucket}/{key}"}
        layers = 2 if mode == "aws:kms:dsse" else 1
        bucket_key = bucket_key and layers == 1  # S3 Bucket Keys are not for DSSE-KMS
        record: dict[str, Any] = {"alg": mode, "kms": arn, "ctx": context}
        self._authorize(ctx, "GenerateDataKey", doc, context)
        if bucket_key:
            data_key = os.urandom(KEY_BYTES)
            record.update(self._under_bucket_key(ctx, bucket, arn, data_key))
            return Sealing(record, [data_key])
        out = self._call(
            ctx,
            "GenerateDataKey",
            {"KeyId": arn, "NumberOfBytes": KEY_BYTES * layers, "EncryptionContext": context},
        )
        record["blob"] = _b64(out["CiphertextBlob"])
        plain = out["Plaintext"]
        return Sealing(record, [plain[i * KEY_BYTES : (i + 1) * KEY_BYTES] for i in range(layers)])

    def _under_bucket_key(
        self, ctx: RequestContext, bucket: str, arn: str, data_key: bytes
    ) -> dict[str, Any]:
        """The record fields of `data_key` wrapped by the bucket's current bucket key under `arn`
        (a new bucket key from KMS once the cached one is an hour old)."""
        bucket_ctx = {"aws:s3:arn": f"arn:aws:s3:::{bucket}"}
        made, plain, blob = self._bucket_keys.get((bucket, arn), (-1e18, b"", b""))
        if clock.time() - made > BUCKET_KEY_LIFETIME:
            out = self._call(
                ctx,
                "GenerateDataKey",
                {"KeyId": arn, "KeySpec": "AES_256", "EncryptionContext": bucket_ctx},
            )
            plain, blob = out["Plaintext"], out["CiphertextBlob"]
            self._bucket_keys[(bucket, arn)] = (clock.time(), plain, blob)
            self._opened[blob] = plain
        return {
            "bucket_key": True,
            "bucket_arn": bucket_ctx["aws:s3:arn"],
            "blob": _b64(blob),
            "wrapped": _b64(wrap(plain, data_key, b"strata-s3-bucket-key")),
        }

    def reseal(
        self,
        ctx: RequestContext,
        bucket: str,
        key: str,
        record: dict[str, Any],
        kms_arn: str,
        bucket_key: bool,
    ) -> dict[str, Any]:
        """The record of an SSE-S3 or SSE-KMS object's own data key under another KMS key
        (UpdateObjectEncryption): the bytes are not touched, only the key that opens them.

        The caller needs kms:Decrypt on the old key (checked by opening it) and kms:Encrypt and
        kms:GenerateDataKey on the new one, as AWS lists."""
        [data_key] = self.open(ctx, record, None)
        doc = self._key_doc(ctx, kms_arn)
        _usable(doc)
        arn = key_arn(doc["region"], doc["account"], doc["id"])
        context = record.get("ctx") or {"aws:s3:arn": f"arn:aws:s3:::{bucket}/{key}"}
        for operation in ("Encrypt", "GenerateDataKey"):
            self._authorize(ctx, operation, doc, context)
        new: dict[str, Any] = {"alg": "aws:kms", "kms": arn, "ctx": context}
        if bucket_key:
            new.update(self._under_bucket_key(ctx, bucket, arn, data_key))
        else:
            out = self._call(
                ctx, "Encrypt", {"KeyId": arn, "Plaintext": data_key, "EncryptionContext": context}
            )
            new["blob"] = _b64(out["CiphertextBlob"])
        return new

    def check_write(self, ctx: RequestContext, record: dict[str, Any]) -> None:
        """The caller's kms:GenerateDataKey permission for an object sealed without asking it
        (browser POST uploads, whose signer is known only after the body)."""
        if record.get("alg") in KMS_MODES:
            self._authorize(ctx, "GenerateDataKey", self._stored_key(record["kms"]), record["ctx"])

    # -- opening -------------------------------------------------------------------------------------

    def open(self, ctx: RequestContext, record: dict[str, Any], customer: bytes | None) -> list[bytes]:
        """The layer keys of an object (KMS Decrypt, with the caller's permission, for KMS modes)."""
        try:
            if record.get("customer"):
                require_customer(record, customer)
                return [customer]  # type: ignore[list-item]
            if record["alg"] == "AES256":
                return [self.root.unwrap(base64.b64decode(record["wrapped"]))]
            doc = self._stored_key(record["kms"])
            blob = base64.b64decode(record["blob"])
            if record.get("bucket_key"):
                bucket_ctx = {"aws:s3:arn": record["bucket_arn"]}
                self._authorize(ctx, "Decrypt", doc, bucket_ctx)
                plain = self._opened.get(blob)
                if plain is None:
                    plain = self._decrypt(ctx, doc, blob, bucket_ctx)
                    self._opened[blob] = plain
                return [unwrap(plain, base64.b64decode(record["wrapped"]), b"strata-s3-bucket-key")]
            self._authorize(ctx, "Decrypt", doc, record["ctx"])
            plain = self._decrypt(ctx, doc, blob, record["ctx"])
            return [plain[i : i + KEY_BYTES] for i in range(0, len(plain), KEY_BYTES)]
        except Corrupt:
            raise ServiceError("InternalError", "The object's data key does not open.", 500) from None

    def _stored_key(self, arn: str) -> dict:
        key_id = arn.rsplit("/", 1)[-1]
        doc = self._kms().keys.get(key_id)
        if doc is None:
            raise ServiceError("KMS.NotFoundException", f"Key '{arn}' does not exist", 400)
        _usable(doc)
        return doc

    def _decrypt(self, ctx: RequestContext, doc: dict, blob: bytes, context: dict) -> bytes:
        # Decrypt runs in the key's account and region: S3 calls KMS there, whoever reads.
        kctx = replace(ctx, account_id=doc["account"], region=doc["region"])
        out = self._call(
            kctx,
            "Decrypt",
            {
                "CiphertextBlob": blob,
                "KeyId": key_arn(doc["region"], doc["account"], doc["id"]),
                "EncryptionContext": context,
            },
        )
        return out["Plaintext"]


def _usable(doc: dict) -> None:
    """A key that is not Enabled opens nothing, even through a cached bucket key."""
    if doc["state"] == "Disabled":
        raise ServiceError("KMS.DisabledException", f"{doc['id']} is disabled.", 400)
    if doc["state"] != "Enabled":
        raise ServiceError("KMS.KMSInvalidStateException", f"{doc['id']} is {doc['state']}.", 400)


def _from_kms(e: ServiceError) -> ServiceError:
    """A KMS error as S3 reports it: `KMS.<code>`, AccessDenied as S3's own."""
    if e.code in ("AccessDeniedException", "AccessDenied"):
        return ServiceError("AccessDenied", e.message or "Access Denied", 403)
    return ServiceError(f"KMS.{e.code}", e.message, 400)


# -- bucket default encryption -------------------------------------------------------------------


def default_rule(bucket: Any, settings: Any) -> dict[str, Any] | None:
    """The bucket's default encryption ({SSEAlgorithm, KMSMasterKeyID?, BucketKeyEnabled?}), or
    None when new objects stay plaintext."""
    rule = bucket.config.get("encryption")
    if rule is not None:
        return rule
    if getattr(settings, "s3_default_encryption", True):
        return {"SSEAlgorithm": "AES256", "BucketKeyEnabled": False}
    return None
