"""Engine-backed identifiers are per account, as on AWS: two accounts may each have a "db1" (or a
cache cluster, a replication group) running side by side, each on its own engine, directory and
endpoint, surviving a restart and a deletion of the other's."""

from __future__ import annotations

import psycopg
import redis

from tests.services.elasticache.conftest import eventually
from tests.services.iam.conftest import ACCOUNT, ALT_ACCOUNT, ALT_ROOT, ROOT
from tests.services.rds.helpers import PASSWORD, USER, create_pg, pg_connect, wait_status


def _cluster_connect(rds) -> psycopg.Connection:  # noqa: ANN001
    cluster = rds.describe_db_clusters(DBClusterIdentifier="c1")["DBClusters"][0]
    return psycopg.connect(
        host=cluster["Endpoint"],
        port=cluster["Port"],
        user=USER,
        password=PASSWORD,
        dbname="app",
        connect_timeout=10,
        autocommit=True,
    )


def _marker(inst: dict) -> str:
    with pg_connect(inst) as conn:
        return conn.execute("SELECT who FROM owner").fetchone()[0]


def test_two_accounts_each_run_their_own_db1(strata_factory, users_env) -> None:
    server = strata_factory(extra_env=users_env)
    mine, theirs = server.client("rds", **ROOT), server.client("rds", **ALT_ROOT)
    a = create_pg(mine, "db1", BackupRetentionPeriod=0)
    b = create_pg(theirs, "db1", BackupRetentionPeriod=0)
    assert a["DBInstanceArn"] == f"arn:aws:rds:us-east-1:{ACCOUNT}:db:db1"
    assert b["DBInstanceArn"] == f"arn:aws:rds:us-east-1:{ALT_ACCOUNT}:db:db1"
    assert a["Endpoint"]["Port"] != b["Endpoint"]["Port"]
    for inst, who in ((a, "mine"), (b, "theirs")):
        with pg_connect(inst) as conn:
            conn.execute("CREATE TABLE owner (who text)")
            conn.execute("INSERT INTO owner VALUES (%s)", (who,))
    assert (_marker(a), _marker(b)) == ("mine", "theirs")
    # Snapshots of the same name too.
    for rds in (mine, theirs):
        rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier="snap1")
    for rds in (mine, theirs):
        snap = rds.describe_db_snapshots(DBSnapshotIdentifier="snap1")["DBSnapshots"][0]
        assert snap["DBInstanceIdentifier"] == "db1"

    # Aurora clusters of the same name, each with its writer.
    for rds in (mine, theirs):
        rds.create_db_cluster(
            DBClusterIdentifier="c1",
            Engine="aurora-postgresql",
            MasterUsername=USER,
            MasterUserPassword=PASSWORD,
            DatabaseName="app",
        )
        rds.create_db_instance(
            DBInstanceIdentifier="c1-w",
            DBClusterIdentifier="c1",
            Engine="aurora-postgresql",
            DBInstanceClass="db.r6g.large",
        )
    for rds, who in ((mine, "mine"), (theirs, "theirs")):
        wait_status(rds, "c1-w")
        with _cluster_connect(rds) as conn:
            conn.execute("CREATE TABLE owner (who text)")
            conn.execute("INSERT INTO owner VALUES (%s)", (who,))

    server.restart()  # start-up resumes each account's instance in its own scope
    mine, theirs = server.client("rds", **ROOT), server.client("rds", **ALT_ROOT)
    a, b = wait_status(mine, "db1"), wait_status(theirs, "db1")
    assert (_marker(a), _marker(b)) == ("mine", "theirs")
    for rds, who in ((mine, "mine"), (theirs, "theirs")):
        wait_status(rds, "c1-w")
        with _cluster_connect(rds) as conn:
            assert conn.execute("SELECT who FROM owner").fetchone()[0] == who

    theirs.delete_db_instance(DBInstanceIdentifier="db1", SkipFinalSnapshot=True)
    wait_status(mine, "db1")
    assert _marker(a) == "mine"
    assert {i["DBInstanceIdentifier"] for i in mine.describe_db_instances()["DBInstances"]} == {"db1", "c1-w"}
    mine.delete_db_instance(DBInstanceIdentifier="db1", SkipFinalSnapshot=True)


def _group_clients(ec, gid: str) -> tuple[redis.Redis, redis.Redis]:
    ng = ec.describe_replication_groups(ReplicationGroupId=gid)["ReplicationGroups"][0]["NodeGroups"][0]
    primary, reader = ng["PrimaryEndpoint"], ng["ReaderEndpoint"]
    return (
        redis.Redis(primary["Address"], primary["Port"], decode_responses=True, socket_timeout=10),
        redis.Redis(reader["Address"], reader["Port"], decode_responses=True, socket_timeout=10),
    )


def _cluster_client(ec, cid: str) -> redis.Redis:
    cluster = ec.describe_cache_clusters(CacheClusterId=cid, ShowCacheNodeInfo=True)["CacheClusters"][0]
    ep = cluster["CacheNodes"][0]["Endpoint"]
    return redis.Redis(ep["Address"], ep["Port"], decode_responses=True, socket_timeout=10)


def test_two_accounts_each_run_their_own_cache_cluster_and_group(strata_factory, users_env) -> None:
    server = strata_factory(extra_env=users_env)
    accounts = {
        "mine": server.client("elasticache", **ROOT),
        "theirs": server.client("elasticache", **ALT_ROOT),
    }
    for who, ec in accounts.items():
        made = ec.create_cache_cluster(
            CacheClusterId="cache1", Engine="redis", CacheNodeType="cache.t3.micro", NumCacheNodes=1
        )["CacheCluster"]
        assert made["ARN"].split(":")[4] == (ACCOUNT if who == "mine" else ALT_ACCOUNT)
        ec.create_replication_group(
            ReplicationGroupId="rg1",
            ReplicationGroupDescription=who,
            Engine="redis",
            CacheNodeType="cache.t3.micro",
            NumCacheClusters=2,
        )
    for who, ec in accounts.items():
        _cluster_client(ec, "cache1").set("who", who)
        primary, _ = _group_clients(ec, "rg1")
        primary.set("who", who)
    for who, ec in accounts.items():
        assert _cluster_client(ec, "cache1").get("who") == who
        primary, reader = _group_clients(ec, "rg1")
        assert primary.get("who") == who
        eventually(lambda reader=reader, who=who: reader.get("who") == who)
        ec.create_snapshot(CacheClusterId="cache1", SnapshotName="snap1")
        assert ec.describe_snapshots(SnapshotName="snap1")["Snapshots"][0]["CacheClusterId"] == "cache1"

    server.restart()  # start-up brings each account's engines back in its own scope
    accounts = {
        "mine": server.client("elasticache", **ROOT),
        "theirs": server.client("elasticache", **ALT_ROOT),
    }
    for who, ec in accounts.items():
        assert eventually(lambda ec=ec, who=who: _cluster_client(ec, "cache1").get("who") == who)
        assert eventually(lambda ec=ec, who=who: _group_clients(ec, "rg1")[0].get("who") == who)

    theirs = accounts["theirs"]
    theirs.delete_replication_group(ReplicationGroupId="rg1")
    theirs.delete_cache_cluster(CacheClusterId="cache1")
    mine = accounts["mine"]
    assert _cluster_client(mine, "cache1").get("who") == "mine"
    assert _group_clients(mine, "rg1")[0].get("who") == "mine"
    mine.delete_replication_group(ReplicationGroupId="rg1")
    mine.delete_cache_cluster(CacheClusterId="cache1")
