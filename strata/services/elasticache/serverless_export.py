"""ExportServerlessCacheSnapshot: a serverless cache snapshot's RDB file written to an S3 bucket.

The object is the snapshot's own RDB file, byte for byte (`<snapshot name>-0001.rdb`, the one
shard of a serverless cache, named as ElastiCache names exported shards), so redis/valkey load it
and CreateCacheCluster/CreateReplicationGroup users can seed from it. It is written to Strata's
own S3 before the answer; the response reports the snapshot `exporting`, the transition state
AWS reports (as for a CopySnapshot export), and a describe right after sees it `available`.

AWS's conditions, checked in this order:
- the bucket exists and is in the snapshot's region (else InvalidParameterValue);
- the bucket grants ElastiCache's service principal `<region>.elasticache-snapshot.amazonaws.com`
  what AWS's guide asks for: s3:ListBucket and s3:GetBucketAcl on the bucket and s3:PutObject on
  its objects, by its bucket policy (Deny statements and conditions on aws:SourceAccount and
  aws:SourceArn included) — else InvalidParameterValue naming the missing ACL permission (READ,
  READ_ACP, WRITE) as AWS does. The ACL grant to ElastiCache's canonical user (AWS's older
  regions) cannot be given here: Strata's S3 knows only its accounts' canonical ids.
"""

from __future__ import annotations

from pathlib import Path

from strata.auth.service_principals import service_refused
from strata.context import RequestContext
from strata.services.base import run_blocking
from strata.services.elasticache import validate as v
from strata.services.elasticache.core import ElastiCacheCore
from strata.services.elasticache.errors import fault, invalid
from strata.services.elasticache.render import arn

# what AWS's guide grants ElastiCache on the bucket: (action, on objects?, ACL permission named)
NEEDED = (
    ("s3:ListBucket", False, "READ"),
    ("s3:GetBucketAcl", False, "READ_ACP"),
    ("s3:PutObject", True, "WRITE"),
)


def service_principal(region: str) -> str:
    """The service principal ElastiCache writes exports as, in `region`."""
    return f"{region}.elasticache-snapshot.amazonaws.com"


def export_key(snapshot: str) -> str:
    return f"{snapshot}-0001.rdb"


def missing_grant(
    policy_text: str | None, bucket: str, key: str, region: str, account: str, source: str
) -> str | None:
    """The ACL permission name (READ, READ_ACP, WRITE) the bucket's policy does not give
    ElastiCache's service principal for this export, or None when it gives them all."""
    wanted = {
        action: (f"arn:aws:s3:::{bucket}/{key}" if on_object else f"arn:aws:s3:::{bucket}", permission)
        for action, on_object, permission in NEEDED
    }
    refused = service_refused(
        service_principal(region),
        [(action, resource) for action, (resource, _) in wanted.items()],
        policy_text,
        "resource",
        region=region,
        source_account=account,
        source_arn=source,
    )
    return None if refused is None else wanted[refused[0]][1]


class ServerlessExportOperations(ElastiCacheCore):
    """A mixin of ElastiCacheProvider (after ServerlessSnapshotOperations)."""

    async def export_serverless_cache_snapshot(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._sls_snapshot_doc(req.get("ServerlessCacheSnapshotName"))  # type: ignore[attr-defined]
        bucket_name = req.get("S3BucketName") or ""
        if not bucket_name:
            raise invalid("The parameter S3BucketName must be provided.")
        if doc["status"] != "available":
            raise fault(
                "InvalidServerlessCacheSnapshotStateFault", f"Snapshot {doc['name']} is not available."
            )
        if doc["engine"] not in v.REDIS_LIKE:
            raise invalid("Exporting a snapshot is supported for Valkey and Redis OSS only.")
        s3 = self.runtime.peer("s3")
        bucket = s3.store.bucket(bucket_name) if s3 is not None else None
        if bucket is None:
            raise invalid(f"The S3 bucket {bucket_name} does not exist.")
        if bucket.region != ctx.region:
            raise invalid(
                f"The S3 bucket {bucket_name} is in {bucket.region}: it must be in the same region as "
                f"the snapshot ({ctx.region})."
            )
        key = export_key(doc["name"])
        source = arn(ctx.region, ctx.account_id, "serverlesscachesnapshot", doc["name"])
        lacking = missing_grant(
            bucket.config.get("policy"), bucket_name, key, ctx.region, ctx.account_id, source
        )
        if lacking:
            raise invalid(
                f"ElastiCache has not been granted {lacking} permissions on the S3 bucket {bucket_name}."
            )
        path: Path = self._sls_snapshot_file(doc)  # type: ignore[attr-defined]
        try:
            body = await run_blocking(path.read_bytes)
        except OSError as e:  # its encrypted volume is locked (its KMS key disabled)
            raise fault(
                "InvalidServerlessCacheSnapshotStateFault", f"Snapshot {doc['name']} cannot be read: {e}"
            ) from None
        await s3.put_object(ctx, {"Bucket": bucket_name, "Key": key, "Body": body})
        return {"ServerlessCacheSnapshot": self._render_sls_snapshot(ctx, doc, "exporting")}  # type: ignore[attr-defined]
