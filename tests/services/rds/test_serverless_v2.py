"""Aurora Serverless v2: capacity follows load, MinCapacity 0 pauses an idle writer, a connection
resumes it; the scaling configuration is checked as AWS checks it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pymysql
import pytest
from botocore.exceptions import ClientError

from tests.services.rds.helpers import PASSWORD, USER, eventually, pg_connect, wait_status


def _cluster_args(cid: str, **scaling: float) -> dict:
    return {
        "DBClusterIdentifier": cid,
        "Engine": "aurora-postgresql",
        "MasterUsername": USER,
        "MasterUserPassword": PASSWORD,
        "DatabaseName": "app",
        "ServerlessV2ScalingConfiguration": scaling,
    }


@pytest.mark.parametrize(
    ("scaling", "message"),
    [
        ({"MinCapacity": 4, "MaxCapacity": 2}, "greater than or equal to the minimum"),
        ({"MinCapacity": 0.25, "MaxCapacity": 2}, "minimum capacity 0.25 isn't valid"),
        ({"MinCapacity": 0.5, "MaxCapacity": 0.5}, "maximum capacity 0.5 isn't valid"),
        ({"MinCapacity": 1, "MaxCapacity": 300}, "maximum capacity 300.0 isn't valid"),
        ({"MinCapacity": 0.5, "MaxCapacity": 2, "SecondsUntilAutoPause": 300}, "only be specified when"),
        ({"MinCapacity": 0, "MaxCapacity": 2, "SecondsUntilAutoPause": 299}, "between 300 and 86400"),
        ({"MinCapacity": 0, "MaxCapacity": 2, "SecondsUntilAutoPause": 86401}, "between 300 and 86400"),
    ],
)
def test_scaling_configuration_is_checked(strata_server, unique, scaling, message) -> None:
    rds = strata_server.client("rds")
    with pytest.raises(ClientError) as e:
        rds.create_db_cluster(**_cluster_args(f"bad-{unique}", **scaling))
    assert e.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert message in e.value.response["Error"]["Message"]


def test_auto_pause_setting_is_shown_with_minimum_zero(strata_server, unique) -> None:
    rds = strata_server.client("rds")
    cid = f"sls-{unique}"
    out = rds.create_db_cluster(**_cluster_args(cid, MinCapacity=0, MaxCapacity=4))["DBCluster"]
    try:
        assert out["ServerlessV2ScalingConfiguration"] == {
            "MinCapacity": 0.0,
            "MaxCapacity": 4.0,
            "SecondsUntilAutoPause": 300,  # AWS's default
        }
        config = {"MinCapacity": 1, "MaxCapacity": 4}
        rds.modify_db_cluster(DBClusterIdentifier=cid, ServerlessV2ScalingConfiguration=config)
        shown = rds.describe_db_clusters(DBClusterIdentifier=cid)["DBClusters"][0]
        assert shown["ServerlessV2ScalingConfiguration"] == {"MinCapacity": 1.0, "MaxCapacity": 4.0}
        config = {"MinCapacity": 0, "MaxCapacity": 4, "SecondsUntilAutoPause": 3600}
        rds.modify_db_cluster(DBClusterIdentifier=cid, ServerlessV2ScalingConfiguration=config)
        shown = rds.describe_db_clusters(DBClusterIdentifier=cid)["DBClusters"][0]
        assert shown["ServerlessV2ScalingConfiguration"]["SecondsUntilAutoPause"] == 3600
        # what a change leaves out is kept: the minimum, and the pause time while it stays 0
        rds.modify_db_cluster(DBClusterIdentifier=cid, ServerlessV2ScalingConfiguration={"MaxCapacity": 8})
        shown = rds.describe_db_clusters(DBClusterIdentifier=cid)["DBClusters"][0]
        assert shown["ServerlessV2ScalingConfiguration"] == {
            "MinCapacity": 0.0,
            "MaxCapacity": 8.0,
            "SecondsUntilAutoPause": 3600,
        }
        rds.modify_db_cluster(DBClusterIdentifier=cid, ServerlessV2ScalingConfiguration={"MinCapacity": 2})
        shown = rds.describe_db_clusters(DBClusterIdentifier=cid)["DBClusters"][0]
        assert shown["ServerlessV2ScalingConfiguration"] == {"MinCapacity": 2.0, "MaxCapacity": 8.0}
    finally:
        rds.delete_db_cluster(DBClusterIdentifier=cid, SkipFinalSnapshot=True)


def _connect(cluster: dict) -> psycopg.Connection:
    return psycopg.connect(
        host=cluster["Endpoint"],
        port=cluster["Port"],
        user=USER,
        password=PASSWORD,
        dbname="app",
        connect_timeout=30,
        autocommit=True,
    )


class Load:
    """Threads running CPU-heavy queries through their own connections until stopped."""

    def __init__(self, cluster: dict, threads: int = 2) -> None:
        self.halt = threading.Event()
        self.queries = 0
        self.threads = [
            threading.Thread(target=self._run, args=(cluster,), daemon=True) for _ in range(threads)
        ]
        for t in self.threads:
            t.start()

    def _run(self, cluster: dict) -> None:
        with _connect(cluster) as conn:
            while not self.halt.is_set():
                conn.execute("SELECT sum(x) FROM generate_series(1, 200000) x").fetchone()
                self.queries += 1

    def stop(self) -> None:
        self.halt.set()
        for t in self.threads:
            t.join(60)


def test_capacity_follows_load_then_pauses_and_a_connection_resumes(strata_factory, unique) -> None:
    server = strata_factory()
    rds, cw = server.client("rds"), server.client("cloudwatch")
    cid, ident = f"sls-{unique}", f"sls-w-{unique}"
    # a backup window far from the hours this test moves the clock over: a base backup of the
    # running writer would load it (its capacity) while the test waits for it to scale down
    hour = (datetime.now(UTC).hour + 12) % 24
    cluster = rds.create_db_cluster(
        **_cluster_args(cid, MinCapacity=0, MaxCapacity=4),
        PreferredBackupWindow=f"{hour:02d}:00-{hour:02d}:30",
    )["DBCluster"]
    rds.create_db_instance(
        DBInstanceIdentifier=ident,
        DBClusterIdentifier=cid,
        Engine="aurora-postgresql",
        DBInstanceClass="db.serverless",
    )
    wait_status(rds, ident)

    def metric(name: str) -> float:
        """The value CloudWatch got for the minute the clock is moved over."""
        server.advance_clock("1m")
        now = datetime.now(UTC)
        points = cw.get_metric_statistics(
            Namespace="AWS/RDS",
            MetricName=name,
            Dimensions=[{"Name": "DBInstanceIdentifier", "Value": ident}],
            StartTime=now - timedelta(hours=12),
            EndTime=now + timedelta(hours=12),
            Period=60,
            Statistics=["Maximum"],
        )["Datapoints"]
        return max(points, key=lambda p: p["Timestamp"])["Maximum"] if points else -1.0

    def acu_hours() -> float:
        events = server.admin("/_strata/meter?service=rds")["events"]
        return sum(
            e["quantity"]
            for e in events
            if e["event"] == "ServerlessV2ACUHours" and e["dims"].get("instance") == ident
        )

    # an idle session all along: the instance does not pause while the polls below move the clock
    with _connect(cluster) as idle:
        idle.execute("CREATE TABLE kept AS SELECT generate_series(1, 10) AS x")
        load = Load(cluster)
        try:
            assert eventually(lambda: metric("ServerlessDatabaseCapacity") > 0.5, 90, 0.5), "never scaled up"
            assert 0 < metric("ACUUtilization") <= 100
        finally:
            load.stop()
        assert load.queries > 0
        assert eventually(lambda: metric("ServerlessDatabaseCapacity") == 0.5, 90, 0.5), "never scaled down"

    # MinCapacity 0: idle for SecondsUntilAutoPause (300 s of simulated time), it pauses
    server.advance_clock("6m")
    assert eventually(lambda: metric("ServerlessDatabaseCapacity") == 0.0, 60, 0.5), "never paused"
    before = acu_hours()
    server.advance_clock("1h")
    assert eventually(lambda: metric("ServerlessDatabaseCapacity") == 0.0, 10, 0.5)
    assert acu_hours() == pytest.approx(before)  # nothing metered while paused
    inst = rds.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]
    assert inst["DBInstanceStatus"] == "available"

    with _connect(cluster) as conn:  # held while the engine starts, then passed through
        assert conn.execute("SELECT count(*) FROM kept").fetchone()[0] == 10
        assert metric("ServerlessDatabaseCapacity") >= 0.5
    messages = [
        e["Message"]
        for e in rds.describe_events(SourceIdentifier=ident, SourceType="db-instance", Duration=1440)[
            "Events"
        ]
    ]
    assert any("paused" in msg for msg in messages) and any("resumed" in msg for msg in messages)

    # background work on a paused instance resumes it first: a cluster snapshot is taken
    server.advance_clock("6m")
    assert eventually(lambda: metric("ServerlessDatabaseCapacity") == 0.0, 60, 0.5), "never paused again"
    rds.create_db_cluster_snapshot(DBClusterIdentifier=cid, DBClusterSnapshotIdentifier=f"snap-{unique}")
    snapshot = lambda: rds.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=f"snap-{unique}")  # noqa: E731
    assert eventually(lambda: snapshot()["DBClusterSnapshots"][0]["Status"] == "available", 120, 0.5)
    assert wait_status(rds, ident)["DBInstanceStatus"] == "available"


def _capacities(server, cw, *idents: str) -> list[float]:  # noqa: ANN001
    """ServerlessDatabaseCapacity CloudWatch got for each of `idents` in the minute the clock is
    moved over (-1: none)."""
    now = datetime.fromisoformat(server.advance_clock("1m")["now"])  # simulated
    out = []
    for ident in idents:
        points = cw.get_metric_statistics(
            Namespace="AWS/RDS",
            MetricName="ServerlessDatabaseCapacity",
            Dimensions=[{"Name": "DBInstanceIdentifier", "Value": ident}],
            StartTime=now - timedelta(hours=2),
            EndTime=now + timedelta(hours=2),
            Period=60,
            Statistics=["Maximum"],
        )["Datapoints"]
        out.append(max(points, key=lambda p: p["Timestamp"])["Maximum"] if points else -1.0)
    return out


def _mysql(cluster: dict, host: str) -> pymysql.Connection:
    return pymysql.connect(
        host=host,
        port=cluster["Port"],
        user=USER,
        password=PASSWORD,
        database="app",
        autocommit=True,
        connect_timeout=30,
    )


def test_writer_and_tier_1_reader_pause_together_a_tier_2_reader_alone(strata_factory, unique) -> None:
    """On PostgreSQL and MySQL (whose readers replicate over TCP: not user connections)."""
    server = strata_factory()
    rds, cw = server.client("rds"), server.client("cloudwatch")
    pg, my = f"grp-pg-{unique}", f"grp-my-{unique}"
    writer, reader, my_writer, my_reader = (f"{c}-{role}" for c in (pg, my) for role in ("w", "r"))
    hour = (datetime.now(UTC).hour + 12) % 24  # no automated backup in the hours moved over
    window = {"PreferredBackupWindow": f"{hour:02d}:00-{hour:02d}:30"}
    family = rds.describe_db_engine_versions(Engine="aurora-postgresql", DefaultOnly=True)
    group = {"DBClusterParameterGroupName": pg}
    rds.create_db_cluster_parameter_group(
        **group,
        DBParameterGroupFamily=family["DBEngineVersions"][0]["DBParameterGroupFamily"],
        Description="d",
    )
    cluster = rds.create_db_cluster(**_cluster_args(pg, MinCapacity=0, MaxCapacity=2), **window, **group)[
        "DBCluster"
    ]
    my_cluster = rds.create_db_cluster(
        **{**_cluster_args(my, MinCapacity=0, MaxCapacity=2), "Engine": "aurora-mysql"}, **window
    )["DBCluster"]
    member = {"DBClusterIdentifier": pg, "Engine": "aurora-postgresql", "DBInstanceClass": "db.serverless"}
    my_member = {**member, "DBClusterIdentifier": my, "Engine": "aurora-mysql"}
    rds.create_db_instance(DBInstanceIdentifier=writer, **member)
    rds.create_db_instance(DBInstanceIdentifier=my_writer, **my_member)
    wait_status(rds, writer)
    wait_status(rds, my_writer)
    with pytest.raises(ClientError) as e:
        rds.create_db_instance(DBInstanceIdentifier=reader, PromotionTier=16, **member)
    assert e.value.response["Error"]["Code"] == "InvalidParameterValue"
    rds.create_db_instance(DBInstanceIdentifier=reader, PromotionTier=1, **member)
    rds.create_db_instance(DBInstanceIdentifier=my_reader, **my_member)  # AWS's default tier: 1
    assert wait_status(rds, reader)["PromotionTier"] == 1
    assert wait_status(rds, my_reader)["PromotionTier"] == 1
    with _connect(cluster) as conn:
        conn.execute("CREATE TABLE kept AS SELECT generate_series(1, 10) AS x")
    with _mysql(my_cluster, my_cluster["Endpoint"]) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE kept (x int)")
        cur.execute("INSERT INTO kept VALUES (1), (2)")

    # no user connection to any member (the readers' replication is not one): each group pauses
    server.advance_clock("6m")
    everyone = (writer, reader, my_writer, my_reader)
    assert eventually(lambda: _capacities(server, cw, *everyone) == [0.0] * 4, 60, 0.5), "never paused"
    for ident in everyone:  # as AWS reports a paused instance
        status = rds.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]["DBInstanceStatus"]
        assert status == "available"
    # the clusters' automated backups come due: taken without resuming them (AWS), i.e. skipped
    ran = server.advance_clock("1d")["ran"]["rds.backups"]
    assert ran.get("skipped") == 2 and not ran.get("backups"), ran
    # a parameter change is written for the engines to read when they resume: it resumes nothing
    work_mem = {"ParameterName": "work_mem", "ParameterValue": "7MB", "ApplyMethod": "immediate"}
    rds.modify_db_cluster_parameter_group(**group, Parameters=[work_mem])
    assert _capacities(server, cw, *everyone) == [0.0] * 4

    # a connection to the reader endpoint is held while the group resumes, then answers
    with _connect({**cluster, "Endpoint": cluster["ReaderEndpoint"]}) as conn:
        assert conn.execute("SELECT count(*) FROM kept").fetchone()[0] == 10
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True  # the reader answered
        assert conn.execute("SHOW work_mem").fetchone()[0] == "7MB"
    with _mysql(my_cluster, my_cluster["ReaderEndpoint"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM kept")
        assert cur.fetchone() == (2,)
        with pytest.raises(pymysql.err.OperationalError) as refused:  # a reader still: read-only
            cur.execute("INSERT INTO kept VALUES (9)")
        assert refused.value.args[0] == 1290
    assert min(_capacities(server, cw, writer, my_writer)) >= 0.5  # the writers resumed with them
    with _mysql(my_cluster, my_cluster["Endpoint"]) as w, w.cursor() as cur:
        cur.execute("INSERT INTO kept VALUES (3)")  # the resumed reader streams from the writer again
    with _mysql(my_cluster, my_cluster["ReaderEndpoint"]) as conn, conn.cursor() as cur:
        assert eventually(
            lambda: cur.execute("SELECT count(*) FROM kept") and cur.fetchone() == (3,), 60, 0.2
        )
    rds.reboot_db_instance(DBInstanceIdentifier=my_reader)  # a restarted reader stays read-only too
    wait_status(rds, my_reader)
    with _mysql(my_cluster, my_cluster["ReaderEndpoint"]) as conn, conn.cursor() as cur:
        with pytest.raises(pymysql.err.OperationalError) as refused:
            cur.execute("INSERT INTO kept VALUES (9)")
        assert refused.value.args[0] == 1290

    # PromotionTier 2: the reader pauses on its own while the writer is in use
    rds.modify_db_instance(DBInstanceIdentifier=reader, PromotionTier=2)
    members = rds.describe_db_clusters(DBClusterIdentifier=pg)["DBClusters"][0]["DBClusterMembers"]
    assert {m["DBInstanceIdentifier"]: m["PromotionTier"] for m in members} == {writer: 1, reader: 2}
    with _connect(cluster) as busy:
        server.advance_clock("6m")
        assert eventually(lambda: _capacities(server, cw, reader)[0] == 0.0, 60, 0.5), "tier 2 never paused"
        assert _capacities(server, cw, writer)[0] >= 0.5
        busy.execute("INSERT INTO kept VALUES (11)")
        # its own endpoint resumes it alone; its replication catches up with what was written
        instance = rds.describe_db_instances(DBInstanceIdentifier=reader)["DBInstances"][0]
        with pg_connect(instance) as conn:
            count = lambda: conn.execute("SELECT count(*) FROM kept").fetchone()[0]  # noqa: E731
            assert eventually(lambda: count() == 11, 60, 0.2)
