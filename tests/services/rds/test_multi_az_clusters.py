"""Multi-AZ DB clusters (engine postgres): a writer and two readable standbys in three zones behind
writer and reader endpoints, failover to a standby, DB cluster snapshots (also the final one of
DeleteDBCluster) restored as new Multi-AZ DB clusters, deletion with the cluster; AWS's errors."""

from __future__ import annotations

from typing import Any

import psycopg
import pymysql
import pytest
from botocore.exceptions import ClientError

from tests.services.rds.helpers import PASSWORD, USER, eventually, wait_status


def code(call: Any, **kw: Any) -> str:
    with pytest.raises(ClientError) as e:
        call(**kw)
    return e.value.response["Error"]["Code"]


def connect(cluster: dict, reader: bool = False) -> psycopg.Connection:
    return psycopg.connect(
        host=cluster["ReaderEndpoint"] if reader else cluster["Endpoint"],
        port=cluster["Port"],
        user=USER,
        password=PASSWORD,
        dbname="app",
        connect_timeout=10,
        autocommit=True,
    )


def semi_sync(cluster: dict) -> set[str]:
    """The standbys the writer's commits wait for one of (PostgreSQL's ANY 1 quorum)."""
    with connect(cluster) as c:
        value = c.execute("SHOW synchronous_standby_names").fetchone()[0]
    assert value.startswith("ANY 1 ("), value
    return {name.strip(' "') for name in value[len("ANY 1 (") : -1].split(",")}


def test_a_multi_az_db_cluster_has_a_writer_and_two_readable_standbys(strata_server, unique: str) -> None:
    rds = strata_server.client("rds")
    cid = f"maz-{unique}"
    args = {
        "DBClusterIdentifier": cid,
        "Engine": "postgres",
        "DBClusterInstanceClass": "db.m6i.large",
        "AllocatedStorage": 20,
        "StorageType": "gp3",
        "MasterUsername": USER,
        "MasterUserPassword": PASSWORD,
        "DatabaseName": "app",
    }
    without_class = {k: v for k, v in args.items() if k != "DBClusterInstanceClass"}
    assert code(rds.create_db_cluster, **without_class) == "MissingParameter"
    without_type = {k: v for k, v in args.items() if k != "StorageType"}  # AWS's default io1 needs Iops
    assert code(rds.create_db_cluster, **without_type) == "InvalidParameterCombination"
    assert code(rds.create_db_cluster, **{**args, "Engine": "mariadb"}) == "InvalidParameterValue"
    assert (
        code(rds.create_db_cluster, **{**args, "Engine": "aurora-postgresql"})
        == "InvalidParameterCombination"
    )
    assert code(rds.create_db_cluster, **{**args, "DBClusterIdentifier": "m" * 53}) == "InvalidParameterValue"

    # a DB cluster parameter group of the engine's family (postgresNN, as for the instances)
    family = rds.describe_db_engine_versions(Engine="postgres", DefaultOnly=True)["DBEngineVersions"][0][
        "DBParameterGroupFamily"
    ]
    group = f"maz-params-{unique}"
    rds.create_db_cluster_parameter_group(
        DBClusterParameterGroupName=group, DBParameterGroupFamily=family, Description="d"
    )
    rds.modify_db_cluster_parameter_group(
        DBClusterParameterGroupName=group,
        Parameters=[{"ParameterName": "work_mem", "ParameterValue": "7MB", "ApplyMethod": "immediate"}],
    )
    cluster = rds.create_db_cluster(**args, DBClusterParameterGroupName=group)["DBCluster"]
    assert cluster["DBClusterParameterGroup"] == group
    members = [f"{cid}-instance-{i}" for i in (1, 2, 3)]
    assert sorted(m["DBInstanceIdentifier"] for m in cluster["DBClusterMembers"]) == members
    instances = [wait_status(rds, i, timeout=300) for i in members]
    for reader in (False, True):
        with connect(cluster, reader) as c:
            assert c.execute("SHOW work_mem").fetchone()[0] == "7MB"
    assert len({i["AvailabilityZone"] for i in instances}) == 3
    assert {(i["DBClusterIdentifier"], i["DBInstanceClass"], i["StorageType"]) for i in instances} == {
        (cid, "db.m6i.large", "gp3")
    }
    cluster = rds.describe_db_clusters(DBClusterIdentifier=cid)["DBClusters"][0]
    assert (cluster["Engine"], cluster["DBClusterInstanceClass"], cluster["AllocatedStorage"]) == (
        "postgres",
        "db.m6i.large",
        20,
    )
    assert (cluster["StorageType"], cluster["MultiAZ"], len(cluster["AvailabilityZones"])) == ("gp3", True, 3)
    writers = [m["DBInstanceIdentifier"] for m in cluster["DBClusterMembers"] if m["IsClusterWriter"]]
    assert writers == [members[0]]

    # the standbys are readable and replicate the writer; they take no writes
    with connect(cluster) as c:
        c.execute("CREATE TABLE t (x int)")
        c.execute("INSERT INTO t SELECT generate_series(1, 50)")
    for standby in instances[1:]:
        with psycopg.connect(
            host=standby["Endpoint"]["Address"],
            port=standby["Endpoint"]["Port"],
            user=USER,
            password=PASSWORD,
            dbname="app",
            autocommit=True,
        ) as c:
            assert eventually(lambda c=c: c.execute("SELECT count(*) FROM t").fetchone()[0] == 50, 60)
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                c.execute("INSERT INTO t VALUES (0)")
    with connect(cluster, reader=True) as c:
        assert c.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
    # semi-synchronous: a commit waits for one of the two standbys
    assert eventually(lambda: semi_sync(cluster) == {members[1], members[2]}, 60)

    # the cluster owns its instances
    assert (
        code(
            rds.create_db_instance,
            DBInstanceIdentifier=f"extra-{unique}",
            DBClusterIdentifier=cid,
            Engine="postgres",
            DBInstanceClass="db.m6i.large",
        )
        == "InvalidParameterCombination"
    )
    assert code(rds.delete_db_instance, DBInstanceIdentifier=members[1], SkipFinalSnapshot=True) == (
        "InvalidParameterCombination"
    )

    # failover to a standby: nothing lost, writes go on through the writer endpoint
    rds.failover_db_cluster(DBClusterIdentifier=cid, TargetDBInstanceIdentifier=members[2])

    def failed_over() -> bool:
        c = rds.describe_db_clusters(DBClusterIdentifier=cid)["DBClusters"][0]
        writer = [m["DBInstanceIdentifier"] for m in c["DBClusterMembers"] if m["IsClusterWriter"]]
        return c["Status"] == "available" and writer == [members[2]]

    eventually(failed_over, 120)
    with connect(cluster) as c:
        c.execute("INSERT INTO t VALUES (51)")
        assert c.execute("SELECT count(*) FROM t").fetchone()[0] == 51
    wait_status(rds, members[0], timeout=300)  # the old writer, now a standby
    assert eventually(lambda: semi_sync(cluster) == {members[0], members[1]}, 60)

    # a DB cluster snapshot (taken from the new writer) restores as a new Multi-AZ DB cluster
    snap = f"maz-snap-{unique}"
    rds.create_db_cluster_snapshot(DBClusterIdentifier=cid, DBClusterSnapshotIdentifier=snap)
    assert code(
        rds.create_db_cluster_snapshot, DBClusterIdentifier=cid, DBClusterSnapshotIdentifier=snap
    ) == ("DBClusterSnapshotAlreadyExistsFault")
    eventually(lambda: snapshot(rds, snap)["Status"] == "available", 120)
    assert (snapshot(rds, snap)["Engine"], snapshot(rds, snap)["AllocatedStorage"]) == ("postgres", 20)
    restore = {"SnapshotIdentifier": snap, "Engine": "postgres", "DBClusterInstanceClass": "db.m6i.large"}
    assert (
        code(
            rds.restore_db_cluster_from_snapshot,
            DBClusterIdentifier=f"r-{unique}",
            **restore | {"SnapshotIdentifier": f"nope-{unique}"},
        )
        == "DBClusterSnapshotNotFoundFault"
    )
    assert (
        code(
            rds.restore_db_cluster_from_snapshot,
            DBClusterIdentifier=f"r-{unique}",
            **restore | {"Engine": "aurora-postgresql"},
        )
        == "InvalidParameterCombination"
    )
    restored = rds.restore_db_cluster_from_snapshot(DBClusterIdentifier=f"r-{unique}", **restore)["DBCluster"]
    assert [(m["DBInstanceIdentifier"], m["IsClusterWriter"]) for m in restored["DBClusterMembers"]] == [
        (f"r-{unique}-instance-{i}", i == 1) for i in (1, 2, 3)
    ]
    assert code(rds.restore_db_cluster_from_snapshot, DBClusterIdentifier=f"r-{unique}", **restore) == (
        "DBClusterAlreadyExistsFault"
    )
    # its standbys are built after the writer: not yet deletable
    assert code(rds.delete_db_cluster, DBClusterIdentifier=f"r-{unique}", SkipFinalSnapshot=True) == (
        "InvalidDBClusterStateFault"
    )
    # and to a point in time, from the automated backup and the WAL archive of both writers
    pitr = rds.restore_db_cluster_to_point_in_time(
        SourceDBClusterIdentifier=cid, DBClusterIdentifier=f"p-{unique}", UseLatestRestorableTime=True
    )["DBCluster"]

    # deleted with a final DB cluster snapshot, which restores too
    assert code(rds.delete_db_cluster, DBClusterIdentifier=cid) == "InvalidParameterCombination"
    assert code(rds.delete_db_cluster, DBClusterIdentifier=cid, FinalDBSnapshotIdentifier=snap) == (
        "DBClusterSnapshotAlreadyExistsFault"
    )
    final = f"maz-final-{unique}"
    deleting = rds.delete_db_cluster(DBClusterIdentifier=cid, FinalDBSnapshotIdentifier=final)["DBCluster"]
    assert deleting["Status"] == "deleting"

    def gone() -> bool:
        try:
            rds.describe_db_clusters(DBClusterIdentifier=cid)
        except ClientError as e:
            return e.response["Error"]["Code"] == "DBClusterNotFoundFault"
        return False

    eventually(gone, 120)
    left = rds.describe_db_instances(Filters=[{"Name": "db-cluster-id", "Values": [cid]}])["DBInstances"]
    assert left == []
    assert (snapshot(rds, final)["Status"], snapshot(rds, final)["SnapshotType"]) == ("available", "manual")
    from_final = rds.restore_db_cluster_from_snapshot(
        DBClusterIdentifier=f"f-{unique}", **restore | {"SnapshotIdentifier": final}
    )["DBCluster"]

    for cluster in (restored, pitr, from_final):
        ident = cluster["DBClusterIdentifier"]
        members = [f"{ident}-instance-{i}" for i in (1, 2, 3)]
        for i in members:
            wait_status(rds, i, timeout=300)
        with connect(cluster) as c:
            assert c.execute("SELECT count(*) FROM t").fetchone()[0] == 51
            c.execute("INSERT INTO t VALUES (52)")  # takes writes: a standby acknowledges
        with connect(cluster, reader=True) as c:
            assert c.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
            assert eventually(lambda c=c: c.execute("SELECT count(*) FROM t").fetchone()[0] == 52, 60)
        assert eventually(lambda cluster=cluster, m=members: semi_sync(cluster) == {m[1], m[2]}, 60)
        described = rds.describe_db_clusters(DBClusterIdentifier=ident)["DBClusters"][0]
        assert (described["DBClusterInstanceClass"], described["StorageType"]) == ("db.m6i.large", "gp3")
        rds.delete_db_cluster(DBClusterIdentifier=ident, SkipFinalSnapshot=True)
    rds.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier=final)


def describe(rds: Any, cid: str) -> dict:
    return rds.describe_db_clusters(DBClusterIdentifier=cid)["DBClusters"][0]


def snapshot(rds: Any, ident: str) -> dict:
    return rds.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=ident)["DBClusterSnapshots"][0]


def test_a_mysql_multi_az_db_cluster_waits_for_a_standby_again_after_a_restart(strata_factory) -> None:
    """MariaDB's semi-synchronous replication is a runtime setting: after Strata restarts, the
    writer's commits wait for a standby again (they ran asynchronously before); so after
    RebootDBCluster and StopDBCluster/StartDBCluster. A snapshot of the
    cluster restores as a new Multi-AZ DB cluster, semi-synchronous too."""
    server = strata_factory()
    rds = server.client("rds")
    cluster = rds.create_db_cluster(
        DBClusterIdentifier="mazmy",
        Engine="mysql",
        DBClusterInstanceClass="db.m6i.large",
        AllocatedStorage=20,
        StorageType="gp3",
        MasterUsername=USER,
        MasterUserPassword=PASSWORD,
    )["DBCluster"]
    for i in (1, 2, 3):
        wait_status(rds, f"mazmy-instance-{i}", timeout=300)

    def sql(query: str, cluster: dict = cluster, reader: bool = False) -> list:
        with (
            pymysql.connect(
                host=cluster["ReaderEndpoint"] if reader else cluster["Endpoint"],
                port=cluster["Port"],
                user=USER,
                password=PASSWORD,
                connect_timeout=10,
                autocommit=True,
            ) as c,
            c.cursor() as cur,
        ):
            cur.execute(query)
            return list(cur.fetchall())

    def acknowledging(cluster: dict = cluster) -> int:
        status = dict(sql("SHOW STATUS LIKE 'Rpl_semi_sync_master_%'", cluster))
        return (
            int(status["Rpl_semi_sync_master_clients"])
            if status["Rpl_semi_sync_master_status"] == "ON"
            else 0
        )

    assert eventually(acknowledging, 60)
    sql("CREATE DATABASE shop")
    sql("CREATE TABLE shop.orders (id int PRIMARY KEY)")
    sql("INSERT INTO shop.orders VALUES (1), (2), (3)")
    server.restart()
    for i in (1, 2, 3):
        wait_status(rds, f"mazmy-instance-{i}", timeout=300)
    assert eventually(acknowledging, 60)
    # so after RebootDBCluster, and after StopDBCluster and StartDBCluster (every engine stopped)
    for change, status in (
        (rds.reboot_db_cluster, "rebooting"),
        (rds.stop_db_cluster, "stopping"),
        (rds.start_db_cluster, "starting"),
    ):
        assert change(DBClusterIdentifier="mazmy")["DBCluster"]["Status"] == status
        done = "stopped" if status == "stopping" else "available"
        eventually(lambda done=done: describe(rds, "mazmy")["Status"] == done, 120, 0.2)
        for i in (1, 2, 3):
            assert wait_status(rds, f"mazmy-instance-{i}", done, timeout=5)["DBInstanceStatus"] == done
    assert (
        code(rds.stop_db_instance, DBInstanceIdentifier="mazmy-instance-2") == "InvalidParameterCombination"
    )
    assert eventually(acknowledging, 60)
    sql("INSERT INTO shop.orders VALUES (10)")
    assert eventually(lambda: sql("SELECT count(*) FROM shop.orders", reader=True) == [(4,)], 60)
    sql("DELETE FROM shop.orders WHERE id = 10")

    # a DB cluster snapshot of a MariaDB-run cluster restores as a Multi-AZ DB cluster too
    rds.create_db_cluster_snapshot(DBClusterIdentifier="mazmy", DBClusterSnapshotIdentifier="mazmy-snap")
    eventually(
        lambda: (
            rds.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier="mazmy-snap")["DBClusterSnapshots"][
                0
            ]["Status"]
            == "available"
        ),
        120,
    )
    restored = rds.restore_db_cluster_from_snapshot(
        DBClusterIdentifier="mazmy-copy",
        SnapshotIdentifier="mazmy-snap",
        Engine="mysql",
        DBClusterInstanceClass="db.m6i.large",
    )["DBCluster"]
    for i in (1, 2, 3):
        wait_status(rds, f"mazmy-copy-instance-{i}", timeout=300)
    assert sql("SELECT count(*) FROM shop.orders", restored) == [(3,)]
    assert eventually(lambda: acknowledging(restored), 60)
    sql("INSERT INTO shop.orders VALUES (4)", restored)
    assert eventually(lambda: sql("SELECT count(*) FROM shop.orders", restored, reader=True) == [(4,)], 60)
