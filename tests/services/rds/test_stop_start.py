"""StopDBCluster/StartDBCluster of an Aurora PostgreSQL cluster with a reader (its members' engines
really stop; data, endpoints and replication are back after the start) and AWS's refusals; then
AWS's start of a DB instance or DB cluster stopped for seven days: the scheduler's `rds.autostart`
rule on the simulated clock (`strata clock advance 8d`), with AWS's events; while stopped, the
meter has storage but no instance hours."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from botocore.exceptions import ClientError

from tests.services.rds.helpers import create_pg, eventually, pg_connect, wait_status
from tests.services.rds.test_aurora import _writer, backed_up, cluster_connect, describe, pg_cluster

STARTED_BY_AWS = "is being started due to it exceeding the maximum allowed time being stopped."


def metered(server, event: str, ident: str) -> float:  # noqa: ANN001
    events = server.admin("/_strata/meter?service=rds")["events"]
    return sum(e["quantity"] for e in events if e["event"] == event and e["dims"].get("instance") == ident)


def autostarted(report: dict) -> dict:
    """What the `rds.autostart` rule started, in an advance_clock report (counts of 0 left out)."""
    return {k: v for k, v in report["ran"].get("rds.autostart", {}).items() if v}


def refused(call, code: str, **kw) -> str:  # noqa: ANN001, ANN003
    with pytest.raises(ClientError) as e:
        call(**kw)
    assert e.value.response["Error"]["Code"] == code
    return e.value.response["Error"]["Message"]


def test_stop_start_a_cluster_then_seven_days_start_it(strata_factory) -> None:
    server = strata_factory()
    rds = server.client("rds")
    inst = create_pg(rds, "solo", BackupRetentionPeriod=0)
    cid, writer, reader = "auto", "auto-w", "auto-r"
    pg_cluster(rds, cid, [writer, reader], "db.t3.medium")
    cluster = describe(rds, cid)
    with pg_connect(inst) as conn:
        conn.execute("CREATE TABLE kept AS SELECT 7 AS x")
    with cluster_connect(cluster) as conn:
        conn.execute("CREATE TABLE kept AS SELECT 8 AS x")

    # a member stops and starts only with its cluster; a running cluster cannot be started
    assert "not eligible for stopping and starting" in refused(
        rds.stop_db_instance, "InvalidParameterCombination", DBInstanceIdentifier=reader
    )
    refused(rds.start_db_instance, "InvalidParameterCombination", DBInstanceIdentifier=writer)
    assert "is in available state" in refused(
        rds.start_db_cluster, "InvalidDBClusterStateFault", DBClusterIdentifier=cid
    )
    refused(rds.reboot_db_cluster, "InvalidParameterCombination", DBClusterIdentifier=cid)

    # Stopped: every member's engine, both endpoints refuse connections.
    backed_up(rds, cid)
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
        DBInstanceIdentifier="late",
        DBClusterIdentifier=cid,
        Engine="aurora-postgresql",
        DBInstanceClass="db.t3.medium",
    )

    # Started: the data, both endpoints, the reader streaming from the writer again.
    assert rds.start_db_cluster(DBClusterIdentifier=cid)["DBCluster"]["Status"] == "starting"
    eventually(lambda: describe(rds, cid)["Status"] == "available", 120, 0.2)
    for ident in (writer, reader):
        wait_status(rds, ident, timeout=5)
    assert _writer(describe(rds, cid)) == writer
    with cluster_connect(cluster) as w:
        assert w.execute("SELECT x FROM kept").fetchone() == (8,)
        w.execute("INSERT INTO kept VALUES (9)")
    with cluster_connect(cluster, reader=True) as r:
        assert eventually(lambda: r.execute("SELECT count(*) FROM kept").fetchone() == (2,), 60)
    events = rds.describe_events(SourceIdentifier=cid, SourceType="db-cluster")["Events"]
    assert [e["Message"] for e in events][-2:] == ["DB cluster stopped", "DB cluster started"]

    # Stopped again, with the instance: a restart time seven days on.
    rds.stop_db_instance(DBInstanceIdentifier="solo")
    rds.stop_db_cluster(DBClusterIdentifier=cid)
    wait_status(rds, "solo", "stopped")
    eventually(lambda: describe(rds, cid)["Status"] == "stopped", 120, 0.2)
    now = dt.datetime.fromisoformat(server.admin("/_strata/clock")["now"])
    for restart_at in (
        describe(rds, cid)["AutomaticRestartTime"],
        wait_status(rds, "solo", "stopped")["AutomaticRestartTime"],
    ):
        assert dt.timedelta(days=7) - dt.timedelta(minutes=5) < restart_at - now <= dt.timedelta(days=7)
    before = {i: metered(server, "InstanceHours", i) for i in ("solo", writer)}
    storage = metered(server, "StorageGBHours", "solo")

    # Three days on: still stopped, storage metered, no instance hours.
    assert autostarted(server.advance_clock("3d")) == {}
    eventually(lambda: metered(server, "StorageGBHours", "solo") >= storage + 20 * 71, 30, 0.5)
    assert {i: metered(server, "InstanceHours", i) for i in ("solo", writer)} == before

    # Eight days after the stop: both started, once, with AWS's events, their data kept.
    assert autostarted(server.advance_clock("5d")) == {"instances": 1, "clusters": 1}
    inst = wait_status(rds, "solo")
    eventually(lambda: describe(rds, cid)["Status"] == "available", 120, 0.2)
    assert "AutomaticRestartTime" not in inst and "AutomaticRestartTime" not in describe(rds, cid)
    assert autostarted(server.advance_clock("1s")) == {}
    with pg_connect(inst) as conn:
        assert conn.execute("SELECT x FROM kept").fetchone() == (7,)
    with cluster_connect(cluster, reader=True) as conn:
        assert conn.execute("SELECT count(*) FROM kept").fetchone() == (2,)
    for ident, kind in (("solo", "db-instance"), (cid, "db-cluster")):
        messages = [
            e["Message"]
            for e in rds.describe_events(SourceIdentifier=ident, SourceType=kind, Duration=20000)["Events"]
        ]
        what = "DB instance" if kind == "db-instance" else "DB cluster"
        assert f"{what} {STARTED_BY_AWS}" in messages
    # the eight stopped days are not billed as instance hours (the seconds since the start are)
    assert metered(server, "InstanceHours", writer) < before[writer] + 0.1
