"""AWS starts a DB instance or DB cluster stopped for seven days: the scheduler's `rds.autostart`
rule on the simulated clock (`strata clock advance 8d`), with AWS's events; while stopped, the
meter has storage but no instance hours."""

from __future__ import annotations

import datetime as dt

from botocore.exceptions import ClientError

from tests.services.rds.helpers import create_pg, eventually, pg_connect, wait_status
from tests.services.rds.test_aurora import backed_up, cluster_connect, describe, pg_cluster

STARTED_BY_AWS = "is being started due to it exceeding the maximum allowed time being stopped."


def metered(server, event: str, ident: str) -> float:  # noqa: ANN001
    events = server.admin("/_strata/meter?service=rds")["events"]
    return sum(e["quantity"] for e in events if e["event"] == event and e["dims"].get("instance") == ident)


def autostarted(report: dict) -> dict:
    """What the `rds.autostart` rule started, in an advance_clock report (counts of 0 left out)."""
    return {k: v for k, v in report["ran"].get("rds.autostart", {}).items() if v}


def test_stopped_instance_and_cluster_start_after_seven_days(strata_factory) -> None:
    server = strata_factory()
    rds = server.client("rds")
    inst = create_pg(rds, "solo", BackupRetentionPeriod=0)
    pg_cluster(rds, "auto", ["auto-w"], "db.t3.medium")
    with pg_connect(inst) as conn:
        conn.execute("CREATE TABLE kept AS SELECT 7 AS x")
    with cluster_connect(describe(rds, "auto")) as conn:
        conn.execute("CREATE TABLE kept AS SELECT 8 AS x")

    rds.stop_db_instance(DBInstanceIdentifier="solo")
    backed_up(rds, "auto")
    rds.stop_db_cluster(DBClusterIdentifier="auto")
    wait_status(rds, "solo", "stopped")
    eventually(lambda: describe(rds, "auto")["Status"] == "stopped", 120, 0.2)
    now = dt.datetime.fromisoformat(server.admin("/_strata/clock")["now"])
    for restart_at in (
        describe(rds, "auto")["AutomaticRestartTime"],
        wait_status(rds, "solo", "stopped")["AutomaticRestartTime"],
    ):
        assert dt.timedelta(days=7) - dt.timedelta(minutes=5) < restart_at - now <= dt.timedelta(days=7)
    before = {i: metered(server, "InstanceHours", i) for i in ("solo", "auto-w")}
    storage = metered(server, "StorageGBHours", "solo")

    # Three days on: still stopped, storage metered, no instance hours.
    assert autostarted(server.advance_clock("3d")) == {}
    eventually(lambda: metered(server, "StorageGBHours", "solo") >= storage + 20 * 71, 30, 0.5)
    assert {i: metered(server, "InstanceHours", i) for i in ("solo", "auto-w")} == before
    try:  # no instance joins a stopped cluster
        rds.create_db_instance(
            DBInstanceIdentifier="auto-r",
            DBClusterIdentifier="auto",
            Engine="aurora-postgresql",
            DBInstanceClass="db.t3.medium",
        )
        raise AssertionError("an instance was added to a stopped cluster")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "InvalidDBClusterStateFault"

    # Eight days after the stop: both started, once, with AWS's events, their data kept.
    assert autostarted(server.advance_clock("5d")) == {"instances": 1, "clusters": 1}
    inst = wait_status(rds, "solo")
    eventually(lambda: describe(rds, "auto")["Status"] == "available", 120, 0.2)
    assert "AutomaticRestartTime" not in inst and "AutomaticRestartTime" not in describe(rds, "auto")
    assert autostarted(server.advance_clock("1s")) == {}
    with pg_connect(inst) as conn:
        assert conn.execute("SELECT x FROM kept").fetchone() == (7,)
    with cluster_connect(describe(rds, "auto")) as conn:
        assert conn.execute("SELECT x FROM kept").fetchone() == (8,)
    for ident, kind in (("solo", "db-instance"), ("auto", "db-cluster")):
        messages = [
            e["Message"]
            for e in rds.describe_events(SourceIdentifier=ident, SourceType=kind, Duration=20000)["Events"]
        ]
        what = "DB instance" if kind == "db-instance" else "DB cluster"
        assert f"{what} {STARTED_BY_AWS}" in messages
    wait_status(rds, "auto-w")
    # the eight stopped days are not billed as instance hours (the seconds since the start are)
    assert metered(server, "InstanceHours", "auto-w") < before["auto-w"] + 0.1
