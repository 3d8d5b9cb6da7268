"""Aurora PostgreSQL clusters: writer and reader endpoints, failover, cluster snapshots and PITR."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import UTC, datetime

import psycopg
import pytest
from botocore.exceptions import ClientError

from tests.services.rds.helpers import PASSWORD, USER, eventually, refused, wait_status


def cluster_connect(cluster: dict, reader: bool = False) -> psycopg.Connection:
    host = cluster["ReaderEndpoint"] if reader else cluster["Endpoint"]
    return psycopg.connect(
        host=host,
        port=cluster["Port"],
        user=USER,
        password=PASSWORD,
        dbname="app",
        connect_timeout=10,
        autocommit=True,
    )


class Committer(threading.Thread):
    """Inserts x = 1000, 1001, ... one autocommitted row at a time through `connect()` until stopped,
    reconnecting after errors; `acked` lists the rows whose COMMIT succeeded."""

    def __init__(self, connect, table: str = "t") -> None:  # noqa: ANN001
        super().__init__(daemon=True)
        self.connect = connect
        self.table = table
        self.acked: list[int] = []
        self.halt = threading.Event()

    def run(self) -> None:
        x, c = 1000, None
        while not self.halt.is_set():
            try:
                c = c or self.connect()
                with c.cursor() as cur:
                    cur.execute(f"INSERT INTO {self.table} VALUES (%s)", (x,))
                self.acked.append(x)
            except Exception:  # noqa: BLE001 - the endpoint moves during a failover
                c = None
                self.halt.wait(0.05)
            x += 1

    def stop(self) -> None:
        self.halt.set()
        self.join(30)


def _writer(cluster: dict) -> str | None:
    return next(
        (m["DBInstanceIdentifier"] for m in cluster["DBClusterMembers"] if m["IsClusterWriter"]), None
    )


def describe(rds, cid: str) -> dict:  # noqa: ANN001
    return rds.describe_db_clusters(DBClusterIdentifier=cid)["DBClusters"][0]


def pg_cluster(rds, cid: str, members: list[str], instance_class: str, **extra) -> dict:  # noqa: ANN001, ANN003
    """An aurora-postgresql cluster whose first member is the writer, every member available."""
    cluster = rds.create_db_cluster(
        DBClusterIdentifier=cid,
        Engine="aurora-postgresql",
        MasterUsername=USER,
        MasterUserPassword=PASSWORD,
        DatabaseName="app",
        **extra,
    )["DBCluster"]
    for ident in members:
        rds.create_db_instance(
            DBInstanceIdentifier=ident,
            DBClusterIdentifier=cid,
            Engine="aurora-postgresql",
            DBInstanceClass=instance_class,
        )
        wait_status(rds, ident)
    return cluster


def _custom_endpoints(rds, cluster: dict, writer: str, reader: str) -> None:  # noqa: ANN001
    """Custom endpoints: READER over a static reader, ANY excluding it, swapped, deleted; errors."""
    cid = cluster["DBClusterIdentifier"]
    u = cid.removeprefix("aurora-")  # endpoint names are unique in a region, as cluster names are
    ep = rds.create_db_cluster_endpoint(
        DBClusterIdentifier=cid,
        DBClusterEndpointIdentifier=f"Ro-Pick-{u}",
        EndpointType="READER",
        StaticMembers=[reader],
        Tags=[{"Key": "team", "Value": "bi"}],
    )
    assert (ep["DBClusterEndpointIdentifier"], ep["Status"], ep["EndpointType"]) == (
        f"ro-pick-{u}",
        "creating",
        "CUSTOM",
    )
    assert ep["Endpoint"] not in (cluster["Endpoint"], cluster["ReaderEndpoint"])
    assert rds.list_tags_for_resource(ResourceName=ep["DBClusterEndpointArn"])["TagList"] == [
        {"Key": "team", "Value": "bi"}
    ]
    rds.create_db_cluster_endpoint(
        DBClusterIdentifier=cid,
        DBClusterEndpointIdentifier=f"any-but-{u}",
        EndpointType="ANY",
        ExcludedMembers=[reader],
    )
    rds.create_db_cluster_endpoint(
        DBClusterIdentifier=cid,
        DBClusterEndpointIdentifier=f"pin-w1-{u}",
        EndpointType="ANY",
        StaticMembers=[writer],
    )
    listed = rds.describe_db_cluster_endpoints(DBClusterIdentifier=cid)["DBClusterEndpoints"]
    assert sorted((e["EndpointType"], e.get("CustomEndpointType"), e["Status"]) for e in listed) == [
        ("CUSTOM", "ANY", "available"),
        ("CUSTOM", "ANY", "available"),
        ("CUSTOM", "READER", "available"),
        ("READER", None, "available"),
        ("WRITER", None, "available"),
    ]
    readers = rds.describe_db_cluster_endpoints(
        Filters=[
            {"Name": "db-cluster-id", "Values": [cid]},
            {"Name": "db-cluster-endpoint-custom-type", "Values": ["reader"]},
        ]
    )["DBClusterEndpoints"]
    assert [(e["DBClusterEndpointIdentifier"], e["StaticMembers"]) for e in readers] == [
        (f"ro-pick-{u}", [reader])
    ]

    def in_recovery(name: str) -> bool:
        with cluster_connect({**cluster, "Endpoint": _address(rds, name)}) as conn:
            return conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]

    assert in_recovery(f"ro-pick-{u}") is True
    assert in_recovery(f"any-but-{u}") is False
    rds.modify_db_cluster_endpoint(
        DBClusterEndpointIdentifier=f"ro-pick-{u}", EndpointType="ANY", StaticMembers=[writer]
    )
    modified = rds.modify_db_cluster_endpoint(
        DBClusterEndpointIdentifier=f"any-but-{u}", ExcludedMembers=[writer]
    )
    assert (modified["Status"], modified["ExcludedMembers"]) == ("modifying", [writer])
    assert in_recovery(f"ro-pick-{u}") is False
    assert in_recovery(f"any-but-{u}") is True

    refused(
        lambda: rds.create_db_cluster_endpoint(
            DBClusterIdentifier=cid, DBClusterEndpointIdentifier=f"ro-pick-{u}", EndpointType="READER"
        ),
        "DBClusterEndpointAlreadyExistsFault",
    )
    refused(
        lambda: rds.create_db_cluster_endpoint(
            DBClusterIdentifier=cid,
            DBClusterEndpointIdentifier=f"ghost-{u}",
            EndpointType="ANY",
            StaticMembers=["nobody"],
        ),
        "DBInstanceNotFound",
    )
    refused(
        rds.create_db_cluster_endpoint,
        "InvalidParameterCombination",
        DBClusterIdentifier=cid,
        DBClusterEndpointIdentifier=f"both-{u}",
        EndpointType="ANY",
        StaticMembers=[writer],
        ExcludedMembers=[reader],
    )
    for n in (4, 5):  # five per cluster
        rds.create_db_cluster_endpoint(
            DBClusterIdentifier=cid, DBClusterEndpointIdentifier=f"e{n}-{u}", EndpointType="ANY"
        )
    refused(
        rds.create_db_cluster_endpoint,
        "DBClusterEndpointQuotaExceededFault",
        DBClusterIdentifier=cid,
        DBClusterEndpointIdentifier=f"e6-{u}",
        EndpointType="ANY",
    )
    for n in (4, 5):
        rds.delete_db_cluster_endpoint(DBClusterEndpointIdentifier=f"e{n}-{u}")
    address = _address(rds, f"ro-pick-{u}")
    deleted = rds.delete_db_cluster_endpoint(DBClusterEndpointIdentifier=f"ro-pick-{u}")
    assert deleted["Status"] == "deleting"
    refused(
        lambda: rds.delete_db_cluster_endpoint(DBClusterEndpointIdentifier=f"ro-pick-{u}"),
        "DBClusterEndpointNotFoundFault",
    )
    with pytest.raises(psycopg.OperationalError):
        cluster_connect({**cluster, "Endpoint": address}).close()
    rds.delete_db_cluster_endpoint(DBClusterEndpointIdentifier=f"any-but-{u}")


def _address(rds, name: str) -> str:  # noqa: ANN001
    return rds.describe_db_cluster_endpoints(DBClusterEndpointIdentifier=name)["DBClusterEndpoints"][0][
        "Endpoint"
    ]


def test_cluster_endpoints_failover_snapshot_and_pitr(strata_server, unique: str) -> None:
    rds = strata_server.client("rds")
    cid = f"aurora-{unique}"
    cluster = pg_cluster(
        rds,
        cid,
        [f"w1-{unique}", f"r1-{unique}"],
        "db.serverless",
        ServerlessV2ScalingConfiguration={"MinCapacity": 0.5, "MaxCapacity": 16},
        Tags=[{"Key": "tier", "Value": "gold"}],
    )
    assert cluster["ServerlessV2ScalingConfiguration"] == {"MinCapacity": 0.5, "MaxCapacity": 16.0}
    assert cluster["Endpoint"] != cluster["ReaderEndpoint"]
    cluster = describe(rds, cid)
    writers = [m["DBInstanceIdentifier"] for m in cluster["DBClusterMembers"] if m["IsClusterWriter"]]
    assert writers == [f"w1-{unique}"]

    with cluster_connect(cluster) as w:
        w.execute("CREATE TABLE events (id int primary key)")
        w.execute("INSERT INTO events SELECT generate_series(1, 50)")
    with cluster_connect(cluster, reader=True) as r:
        assert eventually(
            lambda: (
                r.execute("SELECT to_regclass('events')").fetchone()[0]
                and r.execute("SELECT count(*) FROM events").fetchone()[0] == 50
            ),
            60,
        )
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            r.execute("INSERT INTO events VALUES (999)")

    _custom_endpoints(rds, cluster, f"w1-{unique}", f"r1-{unique}")
    rds.create_db_cluster_snapshot(DBClusterIdentifier=cid, DBClusterSnapshotIdentifier=f"cs-{unique}")
    eventually(
        lambda: (
            rds.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=f"cs-{unique}")[
                "DBClusterSnapshots"
            ][0]["Status"]
            == "available"
        ),
        120,
        0.5,
    )
    _copy_to_another_region_and_restore(strata_server, f"cs-{unique}", unique)

    time.sleep(1.2)
    restore_time = datetime.now(UTC)
    time.sleep(1.2)
    with cluster_connect(cluster) as w:
        w.execute("INSERT INTO events VALUES (51)")

    rds.failover_db_cluster(DBClusterIdentifier=cid, TargetDBInstanceIdentifier=f"r1-{unique}")
    eventually(lambda: describe(rds, cid)["Status"] == "available", 60, 0.2)
    after = describe(rds, cid)
    assert [m["DBInstanceIdentifier"] for m in after["DBClusterMembers"] if m["IsClusterWriter"]] == [
        f"r1-{unique}"
    ]
    assert after["Port"] == cluster["Port"]
    with cluster_connect(after) as w:
        assert w.execute("SELECT count(*) FROM events").fetchone() == (51,)
        w.execute("INSERT INTO events VALUES (52)")
    wait_status(rds, f"w1-{unique}")  # the old writer is back, as a reader
    with cluster_connect(
        {**after, "Endpoint": _address(rds, f"pin-w1-{unique}")}
    ) as pinned:  # the custom endpoint followed the failover
        assert pinned.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
    # kill -9 of the writer's engine while a client commits: a reader takes over, nothing is lost
    writer = Committer(lambda: cluster_connect(after), table="events")
    writer.start()
    eventually(lambda: len(writer.acked) > 50, 60)
    (pidfile,) = (strata_server.data_dir / "rds" / "instances" / f"r1-{unique}").glob("*/postgres.pid")
    os.kill(int(pidfile.read_text()), signal.SIGKILL)
    eventually(lambda: _writer(describe(rds, cid)) == f"w1-{unique}", 120, 0.2)
    eventually(lambda: describe(rds, cid)["Status"] == "available", 60, 0.2)
    before = len(writer.acked)
    eventually(lambda: len(writer.acked) > before + 50, 60)
    writer.stop()
    with cluster_connect(after) as w:
        present = {row[0] for row in w.execute("SELECT id FROM events WHERE id >= 1000").fetchall()}
    assert set(writer.acked) <= present, f"lost commits: {sorted(set(writer.acked) - present)[:10]}"
    wait_status(rds, f"r1-{unique}")  # the failed writer is back, as a reader

    pitr = f"aurora-pitr-{unique}"
    rds.restore_db_cluster_to_point_in_time(
        SourceDBClusterIdentifier=cid, DBClusterIdentifier=pitr, RestoreToTime=restore_time
    )
    rds.create_db_instance(
        DBInstanceIdentifier=f"p1-{unique}",
        DBClusterIdentifier=pitr,
        Engine="aurora-postgresql",
        DBInstanceClass="db.r6g.large",
    )
    wait_status(rds, f"p1-{unique}", timeout=300)
    with cluster_connect(describe(rds, pitr)) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (50,)

    with pytest.raises(ClientError) as refused:  # a cluster's data is in its volume, not the instance
        rds.delete_db_instance(DBInstanceIdentifier=f"w1-{unique}", FinalDBSnapshotIdentifier=f"fin-{unique}")
    assert refused.value.response["Error"]["Code"] == "InvalidParameterCombination"
    assert refused.value.response["Error"]["Message"] == (
        "FinalDBSnapshotIdentifier can not be specified when deleting a cluster instance"
    )
    _stop_and_start(rds, cid, f"w1-{unique}", f"r1-{unique}")

    rds.delete_db_instance(DBInstanceIdentifier=f"w1-{unique}", SkipFinalSnapshot=True)
    rds.get_waiter("db_instance_deleted").wait(
        DBInstanceIdentifier=f"w1-{unique}", WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    for ident in (f"r1-{unique}", f"p1-{unique}"):
        rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True)
    for ident in (f"r1-{unique}", f"p1-{unique}"):
        rds.get_waiter("db_instance_deleted").wait(
            DBInstanceIdentifier=ident, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
    rds.delete_db_cluster(DBClusterIdentifier=cid, SkipFinalSnapshot=True)
    # the cluster's custom endpoints went with it
    assert not [
        e
        for e in rds.describe_db_cluster_endpoints()["DBClusterEndpoints"]
        if e["DBClusterIdentifier"] == cid
    ]
    rds.delete_db_cluster(DBClusterIdentifier=pitr, SkipFinalSnapshot=True)


def _stop_and_start(rds, cid: str, writer: str, reader: str) -> None:  # noqa: ANN001
    """StopDBCluster stops every member's engine (both endpoints refuse connections);
    StartDBCluster brings the data, both endpoints and the reader's replication back. A member
    stops and starts only with its cluster, as on AWS."""
    cluster = describe(rds, cid)
    assert "not eligible for stopping and starting" in refused(
        rds.stop_db_instance, "InvalidParameterCombination", DBInstanceIdentifier=reader
    )
    refused(rds.start_db_instance, "InvalidParameterCombination", DBInstanceIdentifier=writer)
    assert "is in available state" in refused(
        rds.start_db_cluster, "InvalidDBClusterStateFault", DBClusterIdentifier=cid
    )
    refused(rds.reboot_db_cluster, "InvalidParameterCombination", DBClusterIdentifier=cid)
    with cluster_connect(cluster) as w:
        count = w.execute("SELECT count(*) FROM events").fetchone()[0]

    assert rds.stop_db_cluster(DBClusterIdentifier=cid)["DBCluster"]["Status"] == "stopping"
    eventually(lambda: describe(rds, cid)["Status"] == "stopped", 120, 0.2)
    for ident in (writer, reader):
        wait_status(rds, ident, "stopped", timeout=5)
    for as_reader in (False, True):
        with pytest.raises(psycopg.OperationalError):
            cluster_connect(cluster, reader=as_reader)
    assert "is in stopped state" in refused(
        rds.stop_db_cluster, "InvalidDBClusterStateFault", DBClusterIdentifier=cid
    )
    refused(  # no instance joins a stopped cluster
        rds.create_db_instance,
        "InvalidDBClusterStateFault",
        DBInstanceIdentifier=f"late-{cid}",
        DBClusterIdentifier=cid,
        Engine="aurora-postgresql",
        DBInstanceClass="db.r6g.large",
    )

    assert rds.start_db_cluster(DBClusterIdentifier=cid)["DBCluster"]["Status"] == "starting"
    eventually(lambda: describe(rds, cid)["Status"] == "available", 120, 0.2)
    for ident in (writer, reader):
        wait_status(rds, ident, timeout=5)
    assert _writer(describe(rds, cid)) == writer
    with cluster_connect(cluster) as w:
        assert w.execute("SELECT count(*) FROM events").fetchone() == (count,)
        w.execute("INSERT INTO events VALUES (-1)")  # the reader streams from the writer again
    with cluster_connect(cluster, reader=True) as r:
        assert eventually(lambda: r.execute("SELECT count(*) FROM events").fetchone() == (count + 1,), 60)
    events = rds.describe_events(SourceIdentifier=cid, SourceType="db-cluster")["Events"]
    assert [e["Message"] for e in events][-2:] == ["DB cluster stopped", "DB cluster started"]


def _copy_to_another_region_and_restore(strata_server, snap_id: str, unique: str) -> None:  # noqa: ANN001
    """CopyDBClusterSnapshot across regions (the source named by its ARN, as AWS requires); the
    copy restores there as a cluster with the snapshot's rows."""
    east, west = strata_server.client("rds"), strata_server.client("rds", region="us-west-2")
    (snap,) = east.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=snap_id)["DBClusterSnapshots"]
    target, restored = f"cs-copy-{unique}", f"aurora-copy-{unique}"
    with pytest.raises(ClientError) as e:  # a bare identifier names nothing in us-west-2
        west.copy_db_cluster_snapshot(
            SourceDBClusterSnapshotIdentifier=snap_id, TargetDBClusterSnapshotIdentifier=target
        )
    assert e.value.response["Error"]["Code"] == "DBClusterSnapshotNotFoundFault"
    copy = west.copy_db_cluster_snapshot(
        SourceDBClusterSnapshotIdentifier=snap["DBClusterSnapshotArn"],
        TargetDBClusterSnapshotIdentifier=target,
        SourceRegion="us-east-1",
    )["DBClusterSnapshot"]
    assert copy["SourceDBClusterSnapshotArn"] == snap["DBClusterSnapshotArn"]
    assert copy["DBClusterSnapshotArn"].startswith("arn:aws:rds:us-west-2:")
    assert copy["SnapshotType"] == "manual"
    with pytest.raises(ClientError) as e:
        west.copy_db_cluster_snapshot(
            SourceDBClusterSnapshotIdentifier=snap["DBClusterSnapshotArn"],
            TargetDBClusterSnapshotIdentifier=target,
        )
    assert e.value.response["Error"]["Code"] == "DBClusterSnapshotAlreadyExistsFault"
    eventually(
        lambda: (
            west.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=target)["DBClusterSnapshots"][0][
                "Status"
            ]
            == "available"
        ),
        120,
        0.5,
    )
    west.restore_db_cluster_from_snapshot(
        DBClusterIdentifier=restored, SnapshotIdentifier=target, Engine="aurora-postgresql"
    )
    west.create_db_instance(
        DBInstanceIdentifier=f"c1-{unique}",
        DBClusterIdentifier=restored,
        Engine="aurora-postgresql",
        DBInstanceClass="db.r6g.large",
    )
    wait_status(west, f"c1-{unique}", timeout=300)
    with cluster_connect(describe(west, restored)) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (50,)
    west.delete_db_instance(DBInstanceIdentifier=f"c1-{unique}", SkipFinalSnapshot=True)
    west.get_waiter("db_instance_deleted").wait(
        DBInstanceIdentifier=f"c1-{unique}", WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    west.delete_db_cluster(DBClusterIdentifier=restored, SkipFinalSnapshot=True)
    west.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier=target)


def test_aurora_mysql_cluster(strata_server, unique: str) -> None:
    import pymysql

    rds = strata_server.client("rds")
    cid = f"amy-{unique}"
    cluster = rds.create_db_cluster(
        DBClusterIdentifier=cid,
        Engine="aurora-mysql",
        MasterUsername=USER,
        MasterUserPassword=PASSWORD,
        DatabaseName="app",
    )["DBCluster"]
    # AWS's default version and its family's default group
    assert cluster["EngineVersion"].startswith("8.0.mysql_aurora.3.")
    assert cluster["DBClusterParameterGroup"] == "default.aurora-mysql8.0"
    for name in ("w", "r"):
        rds.create_db_instance(
            DBInstanceIdentifier=f"{name}-{cid}",
            DBClusterIdentifier=cid,
            Engine="aurora-mysql",
            DBInstanceClass="db.r6g.large",
        )
        if name == "r":  # a failover to a reader still being created: AWS names the instance's state
            with pytest.raises(ClientError) as e:
                rds.failover_db_cluster(DBClusterIdentifier=cid, TargetDBInstanceIdentifier=f"r-{cid}")
            assert e.value.response["Error"]["Code"] == "InvalidDBInstanceState"
            assert f"r-{cid}" in e.value.response["Error"]["Message"]
        wait_status(rds, f"{name}-{cid}", timeout=300)

    def conn(reader: bool = False) -> pymysql.Connection:
        c = describe(rds, cid)
        return pymysql.connect(
            host=c["ReaderEndpoint"] if reader else c["Endpoint"],
            port=c["Port"],
            user=USER,
            password=PASSWORD,
            database="app",
            autocommit=True,
            connect_timeout=10,
        )

    def query(c: pymysql.Connection, sql: str) -> list:
        with c.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())

    with conn() as w:
        query(w, "CREATE TABLE t (x INT PRIMARY KEY)")
        query(w, "INSERT INTO t VALUES (1), (2)")
    with conn(reader=True) as r:
        assert eventually(lambda: query(r, "SELECT count(*) FROM t") == [(2,)], 60)
    # A planned failover while clients commit: every commit acknowledged by the old writer is on
    # the new one (Aurora's storage is shared; here the reader must have caught up first).
    writer = Committer(lambda: conn())
    writer.start()
    eventually(lambda: len(writer.acked) > 50, 60)
    rds.failover_db_cluster(DBClusterIdentifier=cid)
    eventually(lambda: describe(rds, cid)["Status"] == "available", 60, 0.2)
    writer.stop()
    assert cluster["Port"] == describe(rds, cid)["Port"]
    with conn() as w:
        present = {row[0] for row in query(w, "SELECT x FROM t WHERE x >= 1000")}
        assert set(writer.acked) <= present, f"lost commits: {sorted(set(writer.acked) - present)[:10]}"
        query(w, "DELETE FROM t WHERE x >= 1000")
        query(w, "INSERT INTO t VALUES (3)")
        assert query(w, "SELECT count(*) FROM t") == [(3,)]
    wait_status(rds, f"w-{cid}", timeout=300)
    # kill -9 of the writer's engine while a client commits: as on Aurora a reader takes over, and
    # no acknowledged commit is lost
    writer = Committer(lambda: conn())
    writer.start()
    eventually(lambda: len(writer.acked) > 50, 60)
    (pidfile,) = (strata_server.data_dir / "rds" / "instances" / f"r-{cid}").rglob("server.pid")
    os.kill(int(pidfile.read_text()), signal.SIGKILL)
    eventually(lambda: _writer(describe(rds, cid)) == f"w-{cid}", 120, 0.2)
    eventually(lambda: describe(rds, cid)["Status"] == "available", 60, 0.2)
    before = len(writer.acked)
    eventually(lambda: len(writer.acked) > before + 50, 60)
    writer.stop()
    with conn() as w:
        present = {row[0] for row in query(w, "SELECT x FROM t WHERE x >= 1000")}
        assert set(writer.acked) <= present, f"lost commits: {sorted(set(writer.acked) - present)[:10]}"
        query(w, "DELETE FROM t WHERE x >= 1000")
    wait_status(rds, f"r-{cid}", timeout=300)  # the failed writer is back, as a reader
    rds.failover_db_cluster(DBClusterIdentifier=cid)  # roles as before, for what follows
    eventually(lambda: describe(rds, cid)["Status"] == "available", 60, 0.2)
    wait_status(rds, f"w-{cid}", timeout=300)
    # Deleting the writer fails over to the reader first, as on AWS.
    rds.delete_db_instance(DBInstanceIdentifier=f"r-{cid}", SkipFinalSnapshot=True)
    rds.get_waiter("db_instance_deleted").wait(
        DBInstanceIdentifier=f"r-{cid}", WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    after = describe(rds, cid)
    assert [(m["DBInstanceIdentifier"], m["IsClusterWriter"]) for m in after["DBClusterMembers"]] == [
        (f"w-{cid}", True)
    ]
    with conn() as w:
        assert query(w, "SELECT count(*) FROM t") == [(3,)]
    rds.delete_db_instance(DBInstanceIdentifier=f"w-{cid}", SkipFinalSnapshot=True)
    rds.get_waiter("db_instance_deleted").wait(
        DBInstanceIdentifier=f"w-{cid}", WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    rds.delete_db_cluster(DBClusterIdentifier=cid, SkipFinalSnapshot=True)


def test_planned_failovers_under_load_lose_no_commit(strata_server, unique: str) -> None:
    """FailoverDBCluster while a client commits, there and back: the reader has every commit the
    writer acknowledged before it stopped (it once reconnected to the writer at that moment and
    missed the last ones)."""
    rds = strata_server.client("rds")
    cid = f"aload-{unique}"
    pg_cluster(rds, cid, [f"a-{cid}", f"b-{cid}"], "db.r6g.large")
    with cluster_connect(describe(rds, cid)) as w:
        w.execute("CREATE TABLE t (x int primary key)")
    for target in ("b", "a", "b"):
        writer = Committer(lambda: cluster_connect(describe(rds, cid)))
        writer.start()
        eventually(lambda: len(writer.acked) > 50, 60)  # noqa: B023 - used before the loop moves on
        rds.failover_db_cluster(DBClusterIdentifier=cid, TargetDBInstanceIdentifier=f"{target}-{cid}")
        eventually(lambda: _writer(describe(rds, cid)) == f"{target}-{cid}", 120, 0.2)  # noqa: B023
        eventually(lambda: describe(rds, cid)["Status"] == "available", 60, 0.2)
        before = len(writer.acked)
        eventually(lambda: len(writer.acked) > before + 20, 60)  # noqa: B023
        writer.stop()
        with cluster_connect(describe(rds, cid)) as w:
            present = {row[0] for row in w.execute("SELECT x FROM t").fetchall()}
            w.execute("DELETE FROM t")
        assert set(writer.acked) <= present, f"lost commits: {sorted(set(writer.acked) - present)[:10]}"
        for name in ("a", "b"):
            wait_status(rds, f"{name}-{cid}", timeout=300)
