"""Put/Get/List/DeleteBucketIntelligentTieringConfiguration: the opt-in archive tiers of S3
Intelligent-Tiering (what the tiers do: tiering_rules.py)."""

from __future__ import annotations

from typing import Any

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.s3.core import S3Core
from strata.services.s3.lifecycle import invalid_request, malformed
from strata.services.s3.names import MAX_TAG_KEY, MAX_TAG_VALUE
from strata.services.s3.tiering_rules import (
    ARCHIVE,
    ARCHIVE_DAYS,
    DEEP_ARCHIVE,
    MAX_CONFIGURATIONS,
    filter_tags,
)


def check_configuration(config_id: str, config: dict | None) -> dict:
    """Validate an IntelligentTieringConfiguration; the document to store."""
    if not config or config.get("Id") != config_id:
        raise malformed()
    if config.get("Status") not in ("Enabled", "Disabled"):
        raise malformed()
    f = config.get("Filter") or {}
    if sum(k in f for k in ("Prefix", "Tag", "And")) > 1:
        raise malformed()
    for key, value in filter_tags(f.get("And") or f):
        if not 1 <= len(key) <= MAX_TAG_KEY or len(value) > MAX_TAG_VALUE:
            raise invalid_request("Invalid tag in the filter")
    tierings = config.get("Tierings") or []
    if not tierings:
        raise malformed()
    seen = set()
    for t in tierings:
        tier, days = t.get("AccessTier"), t.get("Days")
        if tier not in ARCHIVE_DAYS or days is None:
            raise malformed()
        if tier in seen:
            raise ServiceError("InvalidArgument", f"Duplicate AccessTier {tier} in the tierings", 400)
        seen.add(tier)
        low, high = ARCHIVE_DAYS[tier]
        if not low <= days <= high:
            raise ServiceError(
                "InvalidArgument",
                f"Days for {tier} must be between {low} and {high}",
                400,
                fields={"ArgumentName": "Days", "ArgumentValue": str(days)},
            )
    days = {t["AccessTier"]: t["Days"] for t in tierings}
    if ARCHIVE in days and DEEP_ARCHIVE in days and days[DEEP_ARCHIVE] <= days[ARCHIVE]:
        raise ServiceError(
            "InvalidArgument",
            "Days for DEEP_ARCHIVE_ACCESS must be greater than Days for ARCHIVE_ACCESS",
            400,
        )
    return {k: v for k, v in config.items() if v is not None}


class TieringOperations(S3Core):
    async def put_bucket_intelligent_tiering_configuration(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        self._require_bucket(req["Bucket"])
        doc = check_configuration(req["Id"], req.get("IntelligentTieringConfiguration"))

        def write() -> None:
            bucket = self._bucket_for_write(req["Bucket"])
            configs = dict(self._tiering_configs(bucket))
            if req["Id"] not in configs and len(configs) >= MAX_CONFIGURATIONS:
                raise invalid_request(
                    f"A bucket holds at most {MAX_CONFIGURATIONS} Intelligent-Tiering configurations"
                )
            configs[req["Id"]] = doc
            self.store.set_bucket_field(bucket.name, "config", {**bucket.config, "tiering": configs})

        await self._write(write, bucket=req["Bucket"])
        return {}

    def get_bucket_intelligent_tiering_configuration(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        config = self._tiering_configs(self._require_bucket(req["Bucket"])).get(req["Id"])
        if config is None:
            raise ServiceError("NoSuchConfiguration", "The specified configuration does not exist.", 404)
        return {"IntelligentTieringConfiguration": config}

    def list_bucket_intelligent_tiering_configurations(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        configs = self._tiering_configs(self._require_bucket(req["Bucket"]))
        ids = sorted(i for i in configs if i > (req.get("ContinuationToken") or ""))
        page = ids[:100]
        out: dict[str, Any] = {
            "IsTruncated": len(ids) > 100,
            "IntelligentTieringConfigurationList": [configs[i] for i in page],
        }
        if req.get("ContinuationToken"):
            out["ContinuationToken"] = req["ContinuationToken"]
        if len(ids) > 100:
            out["NextContinuationToken"] = page[-1]
        return out

    async def delete_bucket_intelligent_tiering_configuration(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        self._require_bucket(req["Bucket"])

        def write() -> None:
            bucket = self._bucket_for_write(req["Bucket"])
            configs = dict(self._tiering_configs(bucket))
            if configs.pop(req["Id"], None) is None:
                raise ServiceError("NoSuchConfiguration", "The specified configuration does not exist.", 404)
            self.store.set_bucket_field(bucket.name, "config", {**bucket.config, "tiering": configs})

        await self._write(write, bucket=req["Bucket"])
        return {}
