"""Put/Get/List/DeleteBucketMetricsConfiguration: S3 request metrics in CloudWatch.

A metrics configuration (an Id and a filter) makes CloudWatch receive the bucket's request
metrics for the requests the filter matches (AWS/S3, dimensions BucketName and FilterId): every
request with an empty filter ("EntireBucket" is the console's usual Id), those on keys under a
Prefix, or those through an access point (AccessPointArn). The gateway counts them
(strata/sim/bucket_requests.py) and CloudWatch's publisher turns the counts into AllRequests,
GetRequests ..., 4xxErrors, 5xxErrors, BytesDownloaded, BytesUploaded, FirstByteLatency and
TotalRequestLatency once a simulated minute. Filters on object tags are refused (501): the
gateway would have to read each object's tags. A bucket holds at most 1,000 configurations.
"""

from __future__ import annotations

from typing import Any

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.s3.core import S3Core
from strata.services.s3.lifecycle import invalid_request, malformed
from strata.services.s3.store import BucketRow
from strata.sim.bucket_requests import bucket_requests

MAX_CONFIGURATIONS = 1000
PAGE = 100


def _not_found() -> ServiceError:
    return ServiceError("NoSuchConfiguration", "The specified configuration does not exist.", 404)


def check_configuration(config_id: str, config: dict | None) -> dict:
    """Validate a MetricsConfiguration; the document to store."""
    if not config or config.get("Id") != config_id:
        raise malformed()
    f = config.get("Filter") or {}
    if sum(k in f for k in ("Prefix", "Tag", "AccessPointArn", "And")) > 1:
        raise malformed()
    if f.get("Tag") or (f.get("And") or {}).get("Tags"):
        raise ServiceError(
            "NotImplemented", "Metrics filters on object tags are not implemented by Strata", 501
        )
    arn = f.get("AccessPointArn") or (f.get("And") or {}).get("AccessPointArn")
    if arn and ":accesspoint/" not in arn:
        raise invalid_request("Invalid AccessPointArn in the filter")
    return {k: v for k, v in config.items() if v is not None}


def _filter(doc: dict) -> tuple[str, str, str]:
    f = doc.get("Filter") or {}
    both = f.get("And") or {}
    return (
        doc["Id"],
        f.get("Prefix") or both.get("Prefix") or "",
        f.get("AccessPointArn") or both.get("AccessPointArn") or "",
    )


class MetricsConfigOperations(S3Core):
    def _metrics_configs(self, bucket: BucketRow) -> dict[str, dict]:
        return bucket.config.get("metrics") or {}

    def _watch_metrics(self, bucket: BucketRow) -> None:
        """Tell the gateway which requests of `bucket` to count (in its owner's account and region)."""
        configs = self._metrics_configs(bucket)
        owner = bucket.config.get("owner") or self.settings.account_id
        bucket_requests.watch(
            bucket.name, f"{owner}:{bucket.region}", [_filter(doc) for doc in configs.values()]
        )

    def _watch_all_metrics(self) -> None:
        """At start-up: every bucket's configurations (the gateway's registry is in memory)."""
        after = ""
        while page := self.store.list_buckets(after=after):
            for bucket in page:
                if self._metrics_configs(bucket):
                    self._watch_metrics(bucket)
            after = page[-1].name

    async def put_bucket_metrics_configuration(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        self._require_bucket(req["Bucket"])
        doc = check_configuration(req["Id"], req.get("MetricsConfiguration"))

        def write() -> None:
            bucket = self._bucket_for_write(req["Bucket"])
            configs = dict(self._metrics_configs(bucket))
            if req["Id"] not in configs and len(configs) >= MAX_CONFIGURATIONS:
                raise ServiceError(
                    "TooManyConfigurations",
                    f"A bucket holds at most {MAX_CONFIGURATIONS} metrics configurations",
                    400,
                )
            configs[req["Id"]] = doc
            self.store.set_bucket_field(bucket.name, "config", {**bucket.config, "metrics": configs})

        await self._write(write, bucket=req["Bucket"])
        self._watch_metrics(self._bucket_for_write(req["Bucket"]))
        return {}

    def get_bucket_metrics_configuration(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        config = self._metrics_configs(self._require_bucket(req["Bucket"])).get(req["Id"])
        if config is None:
            raise _not_found()
        return {"MetricsConfiguration": config}

    def list_bucket_metrics_configurations(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        configs = self._metrics_configs(self._require_bucket(req["Bucket"]))
        ids = sorted(i for i in configs if i > (req.get("ContinuationToken") or ""))
        page = ids[:PAGE]
        out: dict[str, Any] = {"IsTruncated": len(ids) > PAGE}
        if page:
            out["MetricsConfigurationList"] = [configs[i] for i in page]
        if req.get("ContinuationToken"):
            out["ContinuationToken"] = req["ContinuationToken"]
        if len(ids) > PAGE:
            out["NextContinuationToken"] = page[-1]
        return out

    async def delete_bucket_metrics_configuration(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        self._require_bucket(req["Bucket"])

        def write() -> None:
            bucket = self._bucket_for_write(req["Bucket"])
            configs = dict(self._metrics_configs(bucket))
            if configs.pop(req["Id"], None) is None:
                raise _not_found()
            self.store.set_bucket_field(bucket.name, "config", {**bucket.config, "metrics": configs})

        await self._write(write, bucket=req["Bucket"])
        self._watch_metrics(self._bucket_for_write(req["Bucket"]))
        return {}
