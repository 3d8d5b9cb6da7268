"""Global Datastore: a secondary replication group in another region replicates the primary's writes
by the engine's own replication; failover promotes it; disassociation makes it stand alone."""

from __future__ import annotations

import botocore.exceptions
import pytest
import redis

from tests.services.elasticache.conftest import eventually

EAST, WEST = "us-east-1", "us-west-2"


def error_code(call, **kw) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call(**kw)
    return info.value.response["Error"]["Code"]


def primary_endpoint(ec, gid: str) -> redis.Redis:
    ep = ec.describe_replication_groups(ReplicationGroupId=gid)["ReplicationGroups"][0]["NodeGroups"][0][
        "PrimaryEndpoint"
    ]
    return redis.Redis(host=ep["Address"], port=ep["Port"], socket_timeout=10)


def roles(ec, gid: str) -> dict[tuple[str, str], str]:
    found = ec.describe_global_replication_groups(GlobalReplicationGroupId=gid, ShowMemberInfo=True)
    return {
        (m["ReplicationGroupRegion"], m["ReplicationGroupId"]): m["Role"]
        for m in found["GlobalReplicationGroups"][0]["Members"]
    }


def test_secondary_region_replicates_fails_over_and_is_disassociated(strata_server) -> None:
    east = strata_server.client("elasticache", region=EAST)
    west = strata_server.client("elasticache", region=WEST)
    made: list[tuple[object, str]] = []
    try:
        east.create_replication_group(
            ReplicationGroupId="gds-east",
            ReplicationGroupDescription="primary",
            Engine="redis",
            CacheNodeType="cache.r6g.large",
            NumCacheClusters=1,
        )
        made.append((east, "gds-east"))
        east_client = primary_endpoint(east, "gds-east")
        east_client.set("before", "1")
        assert (
            error_code(
                east.create_global_replication_group,
                GlobalReplicationGroupIdSuffix="gds",
                PrimaryReplicationGroupId="nosuch",
            )
            == "ReplicationGroupNotFoundFault"
        )
        created = east.create_global_replication_group(
            GlobalReplicationGroupIdSuffix="gds",
            GlobalReplicationGroupDescription="two regions",
            PrimaryReplicationGroupId="gds-east",
        )["GlobalReplicationGroup"]
        gid = created["GlobalReplicationGroupId"]
        assert gid == "ldgnf-gds"  # us-east-1's prefix, as AWS forms the ID
        assert created["ARN"] == f"arn:aws:elasticache::000000000000:globalreplicationgroup:{gid}"
        assert error_code(
            east.create_global_replication_group,
            GlobalReplicationGroupIdSuffix="gds",
            PrimaryReplicationGroupId="gds-east",
        ) in ("GlobalReplicationGroupAlreadyExistsFault", "InvalidReplicationGroupState")
        assert error_code(
            west.describe_global_replication_groups, GlobalReplicationGroupId="ldgnf-nosuch"
        ) == ("GlobalReplicationGroupNotFoundFault")
        assert roles(west, gid) == {(EAST, "gds-east"): "PRIMARY"}  # seen from every region

        west.create_replication_group(
            ReplicationGroupId="gds-west",
            ReplicationGroupDescription="secondary",
            GlobalReplicationGroupId=gid,
            NumCacheClusters=1,
        )
        made.append((west, "gds-west"))
        info = west.describe_replication_groups(ReplicationGroupId="gds-west")["ReplicationGroups"][0]
        assert info["GlobalReplicationGroupInfo"] == {
            "GlobalReplicationGroupId": gid,
            "GlobalReplicationGroupMemberRole": "SECONDARY",
        }
        assert info["CacheNodeType"] == "cache.r6g.large"  # from the datastore
        assert roles(east, gid) == {(EAST, "gds-east"): "PRIMARY", (WEST, "gds-west"): "SECONDARY"}
        west_client = primary_endpoint(west, "gds-west")
        eventually(
            lambda: west_client.get("before") == b"1", what="the secondary to have the data written before"
        )
        east_client.set("after", "2")
        eventually(lambda: west_client.get("after") == b"2", what="the write to reach the secondary region")
        with pytest.raises(redis.ReadOnlyError):
            west_client.set("local", "x")
        assert error_code(west.delete_replication_group, ReplicationGroupId="gds-west") == (
            "InvalidReplicationGroupState"
        )

        modified = west.modify_global_replication_group(
            GlobalReplicationGroupId=gid,
            ApplyImmediately=True,
            CacheNodeType="cache.r6g.xlarge",
            GlobalReplicationGroupDescription="bigger",
        )["GlobalReplicationGroup"]
        assert (modified["CacheNodeType"], modified["GlobalReplicationGroupDescription"]) == (
            "cache.r6g.xlarge",
            "bigger",
        )
        for client, group_id in ((east, "gds-east"), (west, "gds-west")):  # every member, every region
            found = client.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]
            assert found["CacheNodeType"] == "cache.r6g.xlarge"
        assert (
            error_code(
                east.modify_global_replication_group, GlobalReplicationGroupId=gid, ApplyImmediately=False
            )
            == "InvalidParameterValue"
        )

        failed = east.failover_global_replication_group(
            GlobalReplicationGroupId=gid, PrimaryRegion=WEST, PrimaryReplicationGroupId="gds-west"
        )["GlobalReplicationGroup"]
        assert failed["GlobalReplicationGroupId"] == gid
        assert roles(east, gid) == {(EAST, "gds-east"): "SECONDARY", (WEST, "gds-west"): "PRIMARY"}
        west_client = primary_endpoint(west, "gds-west")
        assert west_client.get("after") == b"2"  # nothing acknowledged was lost
        west_client.set("promoted", "3")
        east_client = primary_endpoint(east, "gds-east")
        eventually(lambda: east_client.get("promoted") == b"3", what="the new primary's write to reach east")
        with pytest.raises(redis.ReadOnlyError):
            east_client.set("local", "x")

        assert (
            error_code(
                east.disassociate_global_replication_group,
                GlobalReplicationGroupId=gid,
                ReplicationGroupId="gds-west",
                ReplicationGroupRegion=WEST,
            )
            == "InvalidParameterCombination"
        )  # the primary stays
        east.disassociate_global_replication_group(
            GlobalReplicationGroupId=gid, ReplicationGroupId="gds-east", ReplicationGroupRegion=EAST
        )
        east_client.set("alone", "4")  # a standalone group takes writes again
        assert (
            "GlobalReplicationGroupInfo"
            not in (east.describe_replication_groups(ReplicationGroupId="gds-east")["ReplicationGroups"][0])
        )
        assert (
            error_code(
                west.delete_global_replication_group,
                GlobalReplicationGroupId=gid,
                RetainPrimaryReplicationGroup=False,
            )
            == "InvalidParameterCombination"
        )
        west.delete_global_replication_group(GlobalReplicationGroupId=gid, RetainPrimaryReplicationGroup=True)
        assert error_code(east.describe_global_replication_groups, GlobalReplicationGroupId=gid) == (
            "GlobalReplicationGroupNotFoundFault"
        )
        assert west_client.get("alone") is None and west_client.set("mine", "5")
    finally:
        for client, group_id in reversed(made):
            try:
                client.delete_replication_group(ReplicationGroupId=group_id)
            except botocore.exceptions.ClientError:
                pass
