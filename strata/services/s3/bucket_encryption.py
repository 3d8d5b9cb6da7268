"""Default bucket encryption: Put/Get/DeleteBucketEncryption.

The configuration is one rule (SSEAlgorithm AES256, aws:kms or aws:kms:dsse; KMSMasterKeyID
only with a KMS algorithm; BucketKeyEnabled), applied by sse.ObjectKeys.choose to every PUT,
POST, copy and multipart upload that names no encryption of its own. A bucket without one has
S3's default since 2023, SSE-S3, which GetBucketEncryption reports and DeleteBucketEncryption
returns to. BucketKeyEnabled is kept and reported whatever the algorithm, as S3 does; it changes
only SSE-KMS objects (S3 Bucket Keys are a KMS mechanism: SSE-S3 makes no KMS requests to save,
and S3 does not support them for DSSE-KMS).

BlockedEncryptionTypes: SSE-C writes (PutObject, CopyObject, POST, multipart) to a bucket that
blocks them are refused with 403 AccessDenied; reads of SSE-C objects already there still work.
New buckets block SSE-C (S3's default since April 2026; buckets made before keep SSE-C), and
`NONE` allows it again. A PutBucketEncryption without the member leaves the block as it was, and
DeleteBucketEncryption resets only the default encryption (AWS's documentation says neither way).
"""

from __future__ import annotations

from typing import Any

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.s3.core import S3Core
from strata.services.s3.sse import KMS_MODES, MODES, default_rule

_MALFORMED = "The XML you provided was not well-formed or did not validate against our published schema"


def validate_rule(config: dict) -> dict[str, Any]:
    """The rule to store, or S3's error for a configuration it refuses."""
    rules = config.get("Rules") or []
    if len(rules) != 1:
        raise ServiceError("MalformedXML", _MALFORMED, 400)
    rule = rules[0]
    blocked = (rule.get("BlockedEncryptionTypes") or {}).get("EncryptionType")
    if blocked is not None and (not blocked or any(t not in ("NONE", "SSE-C") for t in blocked)):
        raise ServiceError("MalformedXML", _MALFORMED, 400)
    default = rule.get("ApplyServerSideEncryptionByDefault") or {}
    algorithm = default.get("SSEAlgorithm")
    if algorithm not in MODES:
        raise ServiceError("MalformedXML", _MALFORMED, 400)
    key = default.get("KMSMasterKeyID") or None
    if key and algorithm not in KMS_MODES:
        raise ServiceError(
            "InvalidArgument",
            "a KMSMasterKeyID is not applicable if the default sse algorithm is not aws:kms or aws:kms:dsse",
            400,
            fields={"ArgumentName": "ApplyServerSideEncryptionByDefault"},
        )
    stored: dict[str, Any] = {
        "SSEAlgorithm": algorithm,
        "BucketKeyEnabled": bool(rule.get("BucketKeyEnabled")),
    }
    if key:
        stored["KMSMasterKeyID"] = key
    if blocked is not None:
        stored["blocked"] = ["SSE-C"] if "SSE-C" in blocked else []
    return stored


class EncryptionOperations(S3Core):
    async def put_bucket_encryption(self, ctx: RequestContext, req: dict) -> dict:
        name = req["Bucket"]
        self._count(ctx, name)
        rule = validate_rule(req.get("ServerSideEncryptionConfiguration") or {})

        blocked = rule.pop("blocked", None)

        def write() -> None:
            b = self._bucket_for_write(name)
            config = {**b.config, "encryption": rule}
            if blocked is not None:
                config["blocked_encryption"] = blocked
            self.store.set_bucket_field(name, "config", config)

        await self._write(write, bucket=name)
        return {}

    def get_bucket_encryption(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        b = self._require_bucket(req["Bucket"])
        rule = default_rule(b, self.settings)
        if rule is None:
            raise ServiceError(
                "ServerSideEncryptionConfigurationNotFoundError",
                "The server side encryption configuration was not found",
                404,
                fields={"BucketName": b.name},
            )
        by_default = {k: rule[k] for k in ("SSEAlgorithm", "KMSMasterKeyID") if k in rule}
        out: dict[str, Any] = {
            "ApplyServerSideEncryptionByDefault": by_default,
            "BucketKeyEnabled": bool(rule.get("BucketKeyEnabled")),
        }
        blocked = b.config.get("blocked_encryption")
        if blocked is not None:
            out["BlockedEncryptionTypes"] = {"EncryptionType": blocked or ["NONE"]}
        return {"ServerSideEncryptionConfiguration": {"Rules": [out]}}

    async def delete_bucket_encryption(self, ctx: RequestContext, req: dict) -> dict:
        name = req["Bucket"]
        self._count(ctx, name)

        def write() -> None:
            b = self._bucket_for_write(name)
            if "encryption" in b.config:
                self.store.set_bucket_field(
                    name, "config", {k: v for k, v in b.config.items() if k != "encryption"}
                )

        await self._write(write, bucket=name)
        return {}
