"""Instances survive Strata restarts and kill -9 (no orphans); backups follow the simulated clock,
and so does AWS's start of an instance stopped for seven days."""

from __future__ import annotations

import json
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

from strata.engines.process import pid_alive
from tests.services.rds.helpers import (
    STARTED_BY_AWS,
    autostarted,
    create_pg,
    eventually,
    pg_connect,
    wait_status,
)
from tests.services.rds.test_mariadb import my_connect, rows


def engine_pids(data_dir: Path) -> list[int]:
    return [int(p.read_text()) for p in (data_dir / "rds" / "instances").glob("*/*/postgres.pid")]


def test_instance_survives_restart_and_kill_9(strata_factory, unique: str) -> None:
    server = strata_factory()
    rds = server.client("rds")
    inst = create_pg(rds, "durable", BackupRetentionPeriod=1)
    with pg_connect(inst) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")

    server.restart()
    rds = server.client("rds")
    # its engine starts again after Strata's: "rebooting" until it accepts connections
    assert rds.describe_db_instances(DBInstanceIdentifier="durable")["DBInstances"][0][
        "DBInstanceStatus"
    ] in (
        "rebooting",
        "available",
    )
    back = wait_status(rds, "durable")
    assert back["Endpoint"] == inst["Endpoint"]
    with pg_connect(back) as conn:
        assert conn.execute("SELECT x FROM t").fetchone() == (1,)
        conn.execute("INSERT INTO t VALUES (2)")

    pids = engine_pids(server.data_dir)
    assert pids and all(pid_alive(p) for p in pids)
    server.kill()
    eventually(lambda: not any(pid_alive(p) for p in pids), 30)  # the engines died with Strata

    server.start()
    rds = server.client("rds")
    again = wait_status(rds, "durable")
    with pg_connect(again) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)
    rds.delete_db_instance(DBInstanceIdentifier="durable", SkipFinalSnapshot=True)


def test_automated_backups_follow_the_simulated_clock(strata_factory) -> None:
    server = strata_factory()
    rds = server.client("rds")
    # Backups are taken in the window: one opening 4-5 h after creation makes each 25 h step
    # cross exactly one, and keeps the second backup inside the 2-day window at the end.
    now = datetime.fromisoformat(server.admin("/_strata/clock")["now"])
    hour = (now.hour + 5) % 24
    create_pg(rds, "clocked", BackupRetentionPeriod=2, PreferredBackupWindow=f"{hour:02d}:00-{hour:02d}:30")

    def automated() -> list[dict]:
        snaps = rds.describe_db_snapshots(DBInstanceIdentifier="clocked", SnapshotType="automated")[
            "DBSnapshots"
        ]
        return [s for s in snaps if s["Status"] == "available"]

    first = automated()
    assert len(first) == 1
    server.advance_clock("25h")
    eventually(lambda: len(automated()) == 2, 60, 0.5)
    server.advance_clock("25h")
    eventually(lambda: len(automated()) == 3, 60, 0.5)
    # 75 h in: the first backup is older than the newest one before the 2-day window, so it goes.
    server.advance_clock("25h")
    eventually(
        lambda: (
            len(automated()) == 3
            and first[0]["DBSnapshotIdentifier"] not in {s["DBSnapshotIdentifier"] for s in automated()}
        ),
        60,
        0.5,
    )
    with urllib.request.urlopen(f"{server.endpoint}/_strata/meter?service=rds") as r:
        events = json.load(r)["events"]
    hours = sum(e["quantity"] for e in events if e["event"] == "InstanceHours")
    assert hours >= 70  # three simulated days of one instance

    # Stopped: storage is metered, instance hours are not; AWS starts it after seven days.
    def metered(event: str) -> float:
        events = server.admin("/_strata/meter?service=rds")["events"]
        return sum(e["quantity"] for e in events if e["event"] == event)

    rds.stop_db_instance(DBInstanceIdentifier="clocked")
    stopped = wait_status(rds, "clocked", "stopped")
    now = datetime.fromisoformat(server.admin("/_strata/clock")["now"])
    assert (
        timedelta(days=7) - timedelta(minutes=5) < stopped["AutomaticRestartTime"] - now <= timedelta(days=7)
    )
    hours, storage = metered("InstanceHours"), metered("StorageGBHours")
    assert autostarted(server.advance_clock("3d")) == {}
    eventually(lambda: metered("StorageGBHours") >= storage + 20 * 71, 30, 0.5)
    assert metered("InstanceHours") == hours
    assert autostarted(server.advance_clock("5d")) == {"instances": 1}
    inst = wait_status(rds, "clocked")
    assert "AutomaticRestartTime" not in inst
    assert autostarted(server.advance_clock("1s")) == {}  # once
    with pg_connect(inst) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    messages = [
        e["Message"]
        for e in rds.describe_events(SourceIdentifier="clocked", SourceType="db-instance", Duration=20000)[
            "Events"
        ]
    ]
    assert f"DB instance {STARTED_BY_AWS}" in messages
    assert metered("InstanceHours") < hours + 0.1  # the seconds since the start, not eight days
    rds.delete_db_instance(DBInstanceIdentifier="clocked", SkipFinalSnapshot=True)


def test_replication_topologies_come_back_after_kill_9(strata_factory) -> None:
    import psycopg

    from tests.services.rds.helpers import PASSWORD, USER

    server = strata_factory()
    rds = server.client("rds")
    src = create_pg(rds, "src", MultiAZ=True, BackupRetentionPeriod=0)
    rds.create_db_instance_read_replica(DBInstanceIdentifier="rep", SourceDBInstanceIdentifier="src")
    rds.create_db_instance(
        DBInstanceIdentifier="msrc",
        Engine="mariadb",
        MasterUsername=USER,
        MasterUserPassword=PASSWORD,
        DBInstanceClass="db.t3.micro",
        AllocatedStorage=20,
        DBName="app",
        MultiAZ=True,
        BackupRetentionPeriod=0,
    )
    rds.create_db_cluster(
        DBClusterIdentifier="cl",
        Engine="aurora-postgresql",
        MasterUsername=USER,
        MasterUserPassword=PASSWORD,
        DatabaseName="app",
    )
    for name in ("cw", "cr"):
        rds.create_db_instance(
            DBInstanceIdentifier=name,
            DBClusterIdentifier="cl",
            Engine="aurora-postgresql",
            DBInstanceClass="db.serverless",
        )
    for ident in ("rep", "cw", "cr", "msrc"):
        wait_status(rds, ident, timeout=300)
    before = {i["DBInstanceIdentifier"]: i["Endpoint"] for i in rds.describe_db_instances()["DBInstances"]}
    cluster_before = rds.describe_db_clusters(DBClusterIdentifier="cl")["DBClusters"][0]
    custom = rds.create_db_cluster_endpoint(  # a custom endpoint is re-routed at start-up too
        DBClusterIdentifier="cl",
        DBClusterEndpointIdentifier="cr-only",
        EndpointType="READER",
        StaticMembers=["cr"],
    )
    with pg_connect(src) as conn:
        conn.execute("CREATE TABLE before_kill AS SELECT generate_series(1, 100) AS x")
    with psycopg.connect(
        host=cluster_before["Endpoint"],
        port=cluster_before["Port"],
        user=USER,
        password=PASSWORD,
        dbname="app",
        autocommit=True,
    ) as w:
        w.execute("CREATE TABLE cluster_before_kill AS SELECT generate_series(1, 100) AS x")

    server.kill()  # kill -9 of Strata: the engines die with it and come back with it, data included
    server.start()
    rds = server.client("rds")
    for ident in ("src", "rep", "cw", "cr", "msrc"):
        wait_status(rds, ident, timeout=300)
    # Multi-AZ MariaDB commits wait for the standby again (semi-synchronous replication is not a
    # setting the engine keeps across its own restart)
    msrc = rds.describe_db_instances(DBInstanceIdentifier="msrc")["DBInstances"][0]
    semi_sync = "SHOW GLOBAL STATUS WHERE Variable_name IN ('Rpl_semi_sync_master_status', 'Rpl_semi_sync_master_clients')"

    def synchronous() -> bool:  # (the record says available while the engines are being resumed)
        with my_connect(msrc) as conn:
            return dict(rows(conn, semi_sync)) == {
                "Rpl_semi_sync_master_status": "ON",
                "Rpl_semi_sync_master_clients": "1",
            }

    eventually(synchronous, 60)
    after = {i["DBInstanceIdentifier"]: i["Endpoint"] for i in rds.describe_db_instances()["DBInstances"]}
    assert after == before
    rep = rds.describe_db_instances(DBInstanceIdentifier="rep")["DBInstances"][0]
    with pg_connect(src) as conn:
        assert conn.execute("SELECT count(*) FROM before_kill").fetchone() == (100,)
    with pg_connect(rep) as conn:
        eventually(lambda: conn.execute("SELECT count(*) FROM before_kill").fetchone() == (100,), 60)
    with pg_connect(src) as conn:  # synchronous commit needs the standby back too
        conn.execute("CREATE TABLE after_restart (x int)")
        conn.execute("INSERT INTO after_restart VALUES (1)")
    with pg_connect(rep) as conn:
        eventually(lambda: conn.execute("SELECT to_regclass('after_restart')").fetchone()[0] is not None, 60)
    cluster = rds.describe_db_clusters(DBClusterIdentifier="cl")["DBClusters"][0]
    assert (cluster["Endpoint"], cluster["ReaderEndpoint"], cluster["Port"]) == (
        cluster_before["Endpoint"],
        cluster_before["ReaderEndpoint"],
        cluster_before["Port"],
    )

    def connect(host: str) -> psycopg.Connection:
        return psycopg.connect(
            host=host,
            port=cluster["Port"],
            user=USER,
            password=PASSWORD,
            dbname="app",
            autocommit=True,
            connect_timeout=10,
        )

    with connect(cluster["Endpoint"]) as w:
        assert w.execute("SELECT count(*) FROM cluster_before_kill").fetchone() == (100,)
        w.execute("CREATE TABLE c (x int)")
    with connect(cluster["ReaderEndpoint"]) as r:
        eventually(lambda: r.execute("SELECT to_regclass('c')").fetchone()[0] is not None, 60)
        assert r.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
    (kept,) = rds.describe_db_cluster_endpoints(DBClusterEndpointIdentifier="cr-only")["DBClusterEndpoints"]
    assert (kept["Endpoint"], kept["StaticMembers"], kept["Status"]) == (
        custom["Endpoint"],
        ["cr"],
        "available",
    )
    with connect(kept["Endpoint"]) as r:
        assert r.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
