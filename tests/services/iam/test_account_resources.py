"""RDS and ElastiCache resources belong to the account that created them: names are per account,
listings show only the caller's, ARNs carry the owner, another account's name is NotFound."""

from __future__ import annotations

import json
import sqlite3

import pytest
from botocore.exceptions import ClientError

from tests.services.iam.conftest import ACCOUNT, ALT_ACCOUNT, ALT_ROOT, ROOT, users_file
from tests.strata_process import StrataProcess


def _code(exc: pytest.ExceptionInfo) -> str:
    return exc.value.response["Error"]["Code"]


def test_rds_parameter_groups_per_account(iam_server, unique):
    name = f"pg-{unique}"
    mine, theirs = iam_server.client("rds", **ROOT), iam_server.client("rds", **ALT_ROOT)
    a = mine.create_db_parameter_group(
        DBParameterGroupName=name, DBParameterGroupFamily="postgres18", Description="a"
    )
    b = theirs.create_db_parameter_group(
        DBParameterGroupName=name, DBParameterGroupFamily="postgres18", Description="b"
    )
    assert a["DBParameterGroup"]["DBParameterGroupArn"] == f"arn:aws:rds:us-east-1:{ACCOUNT}:pg:{name}"
    assert b["DBParameterGroup"]["DBParameterGroupArn"] == f"arn:aws:rds:us-east-1:{ALT_ACCOUNT}:pg:{name}"
    mine.modify_db_parameter_group(
        DBParameterGroupName=name,
        Parameters=[{"ParameterName": "work_mem", "ParameterValue": "8192", "ApplyMethod": "immediate"}],
    )

    def described(client):
        return [
            g
            for g in client.describe_db_parameter_groups()["DBParameterGroups"]
            if g["DBParameterGroupName"] == name
        ]

    assert [g["Description"] for g in described(mine)] == ["a"]
    assert [g["Description"] for g in described(theirs)] == ["b"]
    # The other account's modification did not reach this one's group.
    params = theirs.describe_db_parameters(DBParameterGroupName=name, Source="user")["Parameters"]
    assert params == []
    theirs.add_tags_to_resource(
        ResourceName=b["DBParameterGroup"]["DBParameterGroupArn"], Tags=[{"Key": "k", "Value": "b"}]
    )
    assert (
        mine.list_tags_for_resource(ResourceName=a["DBParameterGroup"]["DBParameterGroupArn"])["TagList"]
        == []
    )
    with pytest.raises(ClientError) as e:  # the other account's ARN names the other account's group
        mine.list_tags_for_resource(ResourceName=b["DBParameterGroup"]["DBParameterGroupArn"])
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    theirs.delete_db_parameter_group(DBParameterGroupName=name)
    with pytest.raises(ClientError) as e:
        theirs.describe_db_parameter_groups(DBParameterGroupName=name)
    assert _code(e) == "DBParameterGroupNotFound"
    assert [g["Description"] for g in described(mine)] == ["a"]
    mine.delete_db_parameter_group(DBParameterGroupName=name)


def test_rds_subnet_groups_per_account(iam_server, unique):
    name = f"sg-{unique}"
    mine, theirs = iam_server.client("rds", **ROOT), iam_server.client("rds", **ALT_ROOT)

    def subnets(**creds: str) -> list[str]:  # each account's own default subnets
        return [s["SubnetId"] for s in iam_server.client("ec2", **creds).describe_subnets()["Subnets"][:2]]

    mine.create_db_subnet_group(
        DBSubnetGroupName=name, DBSubnetGroupDescription="a", SubnetIds=subnets(**ROOT)
    )
    with pytest.raises(ClientError) as e:
        theirs.describe_db_subnet_groups(DBSubnetGroupName=name)
    assert _code(e) == "DBSubnetGroupNotFoundFault"
    with pytest.raises(ClientError) as e:
        theirs.delete_db_subnet_group(DBSubnetGroupName=name)
    assert _code(e) == "DBSubnetGroupNotFoundFault"
    made = theirs.create_db_subnet_group(
        DBSubnetGroupName=name, DBSubnetGroupDescription="b", SubnetIds=subnets(**ALT_ROOT)
    )["DBSubnetGroup"]
    assert made["DBSubnetGroupArn"] == f"arn:aws:rds:us-east-1:{ALT_ACCOUNT}:subgrp:{name}"
    for client, description, arn_account in ((mine, "a", ACCOUNT), (theirs, "b", ALT_ACCOUNT)):
        groups = [
            g for g in client.describe_db_subnet_groups()["DBSubnetGroups"] if g["DBSubnetGroupName"] == name
        ]
        assert [(g["DBSubnetGroupDescription"], g["DBSubnetGroupArn"].split(":")[4]) for g in groups] == [
            (description, arn_account)
        ]
    mine.delete_db_subnet_group(DBSubnetGroupName=name)
    assert (
        theirs.describe_db_subnet_groups(DBSubnetGroupName=name)["DBSubnetGroups"][0][
            "DBSubnetGroupDescription"
        ]
        == "b"
    )
    theirs.delete_db_subnet_group(DBSubnetGroupName=name)


def test_records_from_before_accounts_belong_to_the_default_account(tmp_path, unique):
    """A data directory written before resources had owners and regions: its records are the
    default account's, in the default region."""
    env = {"STRATA_USERS_FILE": str(users_file(tmp_path))}
    server = StrataProcess(tmp_path / "data", extra_env=env).start()
    name = f"old-{unique}"
    try:
        server.client("rds", **ROOT).create_db_parameter_group(
            DBParameterGroupName=name, DBParameterGroupFamily="postgres18", Description="old"
        )
    finally:
        server.stop()
    db = sqlite3.connect(tmp_path / "data" / "rds" / "rds.db")
    with db:
        (body,) = db.execute(
            "SELECT body FROM documents WHERE kind = 'param_group' AND id = ?", (name,)
        ).fetchone()
        doc = json.loads(body)
        assert doc.pop("account") == ACCOUNT
        assert doc.pop("region") == "us-east-1"  # records from before regions carry neither
        db.execute(
            "UPDATE documents SET body = ? WHERE kind = 'param_group' AND id = ?", (json.dumps(doc), name)
        )
    db.close()
    server = StrataProcess(tmp_path / "data", extra_env=env).start()
    try:
        got = server.client("rds", **ROOT).describe_db_parameter_groups(DBParameterGroupName=name)
        assert (
            got["DBParameterGroups"][0]["DBParameterGroupArn"] == f"arn:aws:rds:us-east-1:{ACCOUNT}:pg:{name}"
        )
        with pytest.raises(ClientError) as e:
            server.client("rds", **ALT_ROOT).describe_db_parameter_groups(DBParameterGroupName=name)
        assert _code(e) == "DBParameterGroupNotFound"
        with pytest.raises(ClientError) as e:
            server.client("rds", region="us-west-2", **ROOT).describe_db_parameter_groups(
                DBParameterGroupName=name
            )
        assert _code(e) == "DBParameterGroupNotFound"
    finally:
        server.stop()


def test_elasticache_cluster_belongs_to_its_account(iam_server, unique):
    """A memcached cluster is its account's alone; another account may use the same id."""
    ident = f"mc-{unique}"[:40]
    mine, theirs = iam_server.client("elasticache", **ROOT), iam_server.client("elasticache", **ALT_ROOT)
    made = theirs.create_cache_cluster(
        CacheClusterId=ident, Engine="memcached", CacheNodeType="cache.t3.micro", NumCacheNodes=1
    )["CacheCluster"]
    try:
        assert made["ARN"] == f"arn:aws:elasticache:us-east-1:{ALT_ACCOUNT}:cluster:{ident}"
        assert ident in [c["CacheClusterId"] for c in theirs.describe_cache_clusters()["CacheClusters"]]
        assert ident not in [c["CacheClusterId"] for c in mine.describe_cache_clusters()["CacheClusters"]]
        for call, kw, code in (
            (mine.describe_cache_clusters, {"CacheClusterId": ident}, "CacheClusterNotFound"),
            (mine.delete_cache_cluster, {"CacheClusterId": ident}, "CacheClusterNotFound"),
            (
                mine.describe_replication_groups,
                {"ReplicationGroupId": ident},
                "ReplicationGroupNotFoundFault",
            ),
            (
                mine.list_tags_for_resource,
                {"ResourceName": f"arn:aws:elasticache:us-east-1:{ACCOUNT}:cluster:{ident}"},
                "CacheClusterNotFound",
            ),
            (
                mine.list_tags_for_resource,
                {"ResourceName": made["ARN"]},
                "CacheClusterNotFound",
            ),
        ):
            with pytest.raises(ClientError) as e:
                call(**kw)
            assert _code(e) == code
        # The identifier is per account: the other account may have a cluster of the same id.
        own = mine.create_cache_cluster(
            CacheClusterId=ident, Engine="memcached", CacheNodeType="cache.t3.micro", NumCacheNodes=1
        )["CacheCluster"]
        assert own["ARN"] == f"arn:aws:elasticache:us-east-1:{ACCOUNT}:cluster:{ident}"
        mine.delete_cache_cluster(CacheClusterId=ident)
        assert theirs.describe_cache_clusters(CacheClusterId=ident)["CacheClusters"][0][
            "CacheClusterStatus"
        ] in (
            "available",
            "creating",
        )
    finally:
        theirs.delete_cache_cluster(CacheClusterId=ident)
