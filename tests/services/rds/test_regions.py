"""Regions are namespaces (as in AWS): an RDS or ElastiCache resource belongs to the region it was
made in. Describe calls in another region do not see it, the same identifier may be used in
each region, ARNs carry the region, and a restart keeps every resource in its region."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.services.rds.helpers import create_pg, pg_connect, wait_status

EAST, WEST = "us-east-1", "us-west-2"


def _code(exc: pytest.ExceptionInfo) -> str:
    return exc.value.response["Error"]["Code"]


def _ids(rds) -> list[str]:  # noqa: ANN001
    return [i["DBInstanceIdentifier"] for i in rds.describe_db_instances()["DBInstances"]]


def test_rds_and_elasticache_resources_belong_to_their_region(strata_factory) -> None:
    server = strata_factory()
    east, west = server.client("rds", region=EAST), server.client("rds", region=WEST)
    inst = create_pg(west, "regional", BackupRetentionPeriod=0)
    assert inst["DBInstanceArn"] == f"arn:aws:rds:{WEST}:000000000000:db:regional"
    assert inst["AvailabilityZone"].startswith(WEST)
    assert "regional" not in _ids(east)
    with pytest.raises(ClientError) as e:
        east.describe_db_instances(DBInstanceIdentifier="regional")
    assert _code(e) == "DBInstanceNotFound"
    with pytest.raises(ClientError) as e:
        east.list_tags_for_resource(ResourceName=inst["DBInstanceArn"])
    assert _code(e) == "DBInstanceNotFound"
    # the same identifier in the other region is another instance with another engine
    other = create_pg(east, "regional", BackupRetentionPeriod=0)
    assert other["DBInstanceArn"] == f"arn:aws:rds:{EAST}:000000000000:db:regional"
    assert other["Endpoint"]["Port"] != inst["Endpoint"]["Port"]
    with pg_connect(inst) as conn:
        conn.execute("CREATE TABLE west_only (x int)")
    with pg_connect(other) as conn:
        assert conn.execute("SELECT to_regclass('west_only')").fetchone() == (None,)
    east.delete_db_instance(DBInstanceIdentifier="regional", SkipFinalSnapshot=True)
    for region in (EAST, WEST):
        server.client("rds", region=region).create_db_parameter_group(
            DBParameterGroupName="pg-regional", DBParameterGroupFamily="postgres18", Description=region
        )

    ec_east, ec_west = server.client("elasticache", region=EAST), server.client("elasticache", region=WEST)
    made = ec_west.create_cache_cluster(
        CacheClusterId="mc-regional", Engine="memcached", CacheNodeType="cache.t3.micro", NumCacheNodes=1
    )["CacheCluster"]
    assert made["ARN"] == f"arn:aws:elasticache:{WEST}:000000000000:cluster:mc-regional"
    assert not ec_east.describe_cache_clusters()["CacheClusters"]
    with pytest.raises(ClientError) as e:
        ec_east.describe_cache_clusters(CacheClusterId="mc-regional")
    assert _code(e) == "CacheClusterNotFound"

    server.restart()
    east, west = server.client("rds", region=EAST), server.client("rds", region=WEST)
    back = wait_status(west, "regional")
    assert back["DBInstanceArn"] == inst["DBInstanceArn"]
    with pg_connect(back) as conn:
        assert conn.execute("SELECT to_regclass('west_only')").fetchone() == ("west_only",)
    assert "regional" not in _ids(east)
    descriptions = {
        region: server.client("rds", region=region).describe_db_parameter_groups(
            DBParameterGroupName="pg-regional"
        )["DBParameterGroups"][0]
        for region in (EAST, WEST)
    }
    for region, group in descriptions.items():
        assert group["Description"] == region
        assert group["DBParameterGroupArn"] == f"arn:aws:rds:{region}:000000000000:pg:pg-regional"
    ec_east = server.client("elasticache", region=EAST)
    assert not ec_east.describe_cache_clusters()["CacheClusters"]
    assert (
        server.client("elasticache", region=WEST).describe_cache_clusters(CacheClusterId="mc-regional")[
            "CacheClusters"
        ][0]["ARN"]
        == made["ARN"]
    )
