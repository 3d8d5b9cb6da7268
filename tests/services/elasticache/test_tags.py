"""Tags by ARN on cache clusters, replication groups and snapshots."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError


def test_tags_by_arn(ec, cleanup, unique):
    cid = f"tag-{unique}"
    arn = ec.create_cache_cluster(
        CacheClusterId=cid, Engine="redis", NumCacheNodes=1, Tags=[{"Key": "env", "Value": "dev"}]
    )["CacheCluster"]["ARN"]
    cleanup.append(("cluster", cid))
    assert ec.list_tags_for_resource(ResourceName=arn)["TagList"] == [{"Key": "env", "Value": "dev"}]
    ec.add_tags_to_resource(
        ResourceName=arn, Tags=[{"Key": "team", "Value": "cache"}, {"Key": "env", "Value": "prod"}]
    )
    assert sorted((t["Key"], t["Value"]) for t in ec.list_tags_for_resource(ResourceName=arn)["TagList"]) == [
        ("env", "prod"),
        ("team", "cache"),
    ]
    ec.remove_tags_from_resource(ResourceName=arn, TagKeys=["env"])
    assert ec.list_tags_for_resource(ResourceName=arn)["TagList"] == [{"Key": "team", "Value": "cache"}]

    snap = ec.create_snapshot(
        CacheClusterId=cid, SnapshotName=f"ts-{unique}", Tags=[{"Key": "kind", "Value": "manual"}]
    )["Snapshot"]
    assert ec.list_tags_for_resource(ResourceName=snap["ARN"])["TagList"] == [
        {"Key": "kind", "Value": "manual"}
    ]
    ec.delete_snapshot(SnapshotName=f"ts-{unique}")

    gid = f"tg-{unique}"
    g = ec.create_replication_group(
        ReplicationGroupId=gid, ReplicationGroupDescription="d", Tags=[{"Key": "a", "Value": "1"}]
    )["ReplicationGroup"]
    cleanup.append(("group", gid))
    assert ec.list_tags_for_resource(ResourceName=g["ARN"])["TagList"] == [{"Key": "a", "Value": "1"}]

    for bad, code in [
        ("arn:aws:s3:::bucket", "InvalidARN"),
        (arn.replace(cid, f"none-{unique}"), "CacheClusterNotFound"),
    ]:
        with pytest.raises(ClientError) as e:
            ec.list_tags_for_resource(ResourceName=bad)
        assert e.value.response["Error"]["Code"] == code
