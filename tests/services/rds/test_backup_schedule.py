"""RDS automated backups as the scheduler's `rds.backups` rule: taken in PreferredBackupWindow on
the simulated clock, once per window however far the clock jumps, kept BackupRetentionPeriod days,
and reported by the clock advance (the admin API, as `strata clock advance` shows it)."""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.exceptions import ClientError

from tests.services.rds.helpers import STARTED_BY_AWS, autostarted, create_pg, eventually, wait_status
from tests.services.rds.test_aurora import cluster_connect, describe, pg_cluster


def ran(report: dict) -> int:
    """Backups the `rds.backups` rule started, or put off until the instance's work ends."""
    counts = report["ran"]["rds.backups"]
    return counts.get("backups", 0) + counts.get("deferred", 0)


def test_backups_run_in_the_window_and_catch_up_after_a_jump_and_a_restart(strata_factory) -> None:
    server = strata_factory()
    rds = server.client("rds")
    now = dt.datetime.fromisoformat(server.admin("/_strata/clock")["now"])
    hour = (now.hour + 2) % 24
    window = f"{hour:02d}:00-{hour:02d}:30"
    create_pg(rds, "windowed", BackupRetentionPeriod=3, PreferredBackupWindow=window)

    def automated() -> list[dict]:
        snaps = rds.describe_db_snapshots(DBInstanceIdentifier="windowed", SnapshotType="automated")
        return sorted(
            (s for s in snaps["DBSnapshots"] if s["Status"] == "available"),
            key=lambda s: s["SnapshotCreateTime"],
        )

    first = automated()
    assert len(first) == 1  # the one taken at creation
    # The maintenance window is recorded as given (lower case), a day and a few hours apart.
    later = (hour + 2) % 24
    rds.modify_db_instance(
        DBInstanceIdentifier="windowed", PreferredMaintenanceWindow=f"TUE:{later:02d}:00-TUE:{later:02d}:45"
    )
    described = rds.describe_db_instances(DBInstanceIdentifier="windowed")["DBInstances"][0]
    assert described["PreferredMaintenanceWindow"] == f"tue:{later:02d}:00-tue:{later:02d}:45"
    with pytest.raises(ClientError) as e:  # the daily backup window opens inside it
        rds.modify_db_instance(
            DBInstanceIdentifier="windowed", PreferredMaintenanceWindow=f"wed:{hour:02d}:15-wed:{hour:02d}:50"
        )
    assert (
        e.value.response["Error"]["Message"] == "The backup window and maintenance window must not overlap."
    )

    # One day: exactly one window opens, and the backup is stamped with its opening.
    assert ran(server.advance_clock("1d")) == 1
    eventually(lambda: len(automated()) == 2, 120, 0.5)
    stamp = automated()[-1]["SnapshotCreateTime"].astimezone(dt.UTC)
    assert (stamp.hour, stamp.minute, stamp.second) == (hour, 0, 0)
    # Idempotent: moving on inside the same day (no new window) takes nothing.
    assert ran(server.advance_clock("1s")) == 0
    assert len(automated()) == 2

    # A year at once: one backup, for the latest window (not 365), and retention prunes the
    # creation backup (the newest one older than 3 days stays as the window's base).
    before = dt.datetime.fromisoformat(server.admin("/_strata/clock")["now"])
    assert ran(server.advance_clock("365d")) == 1
    eventually(
        lambda: (
            len(automated()) == 2
            and first[0]["DBSnapshotIdentifier"] not in {s["DBSnapshotIdentifier"] for s in automated()}
        ),
        120,
        0.5,
    )
    newest = automated()[-1]["SnapshotCreateTime"]
    assert newest > before + dt.timedelta(days=364) and newest.astimezone(dt.UTC).hour == hour

    # A restart in the middle: the rule resumes, and the next day's window is backed up.
    server.restart()
    wait_status(rds, "windowed")
    assert ran(server.advance_clock("1d")) == 1
    eventually(lambda: len(automated()) == 3, 120, 0.5)
    assert ran(server.advance_clock("1s")) == 0
    rds.delete_db_instance(DBInstanceIdentifier="windowed", SkipFinalSnapshot=True)


def test_a_malformed_or_short_backup_window_is_refused(strata_server) -> None:
    rds = strata_server.client("rds")
    for window in ("25:00-03:00", "3:00-3:30", "03:00-03:10", "23:50-00:10"):
        with pytest.raises(ClientError) as e:
            create_pg(rds, "badwindow", wait=False, PreferredBackupWindow=window)
        assert e.value.response["Error"]["Code"] == "InvalidParameterValue", window


def test_a_bad_or_overlapping_maintenance_window_is_refused(strata_server) -> None:
    rds = strata_server.client("rds")
    cases = {
        "mon:16:00-tue:17:00": "Maintenance window must be less than 24 hours.",
        "mon:16:00-mon:16:05": "The maintenance window must be at least 30 minutes.",
        "sim:16:00-mon:16:30": "Invalid day:hour:minute value: sim:16:00",
        "mon:16tue:17:00": "Invalid maintenance window format: Should be specified as a range "
        "ddd:hh24:mi-ddd:hh24:mi (24H Clock UTC). Example: Sun:23:45-Mon:00:15",
    }
    for window, message in cases.items():
        with pytest.raises(ClientError) as e:
            create_pg(rds, "badmaint", wait=False, PreferredMaintenanceWindow=window)
        assert e.value.response["Error"]["Code"] == "InvalidParameterValue", window
        assert e.value.response["Error"]["Message"] == message, window
    for backup, maintenance in (
        ("20:00-20:30", "wed:18:00-wed:22:00"),
        ("23:50-00:20", "thu:00:00-thu:14:00"),
    ):
        with pytest.raises(ClientError) as e:
            create_pg(
                rds,
                "badmaint",
                wait=False,
                PreferredBackupWindow=backup,
                PreferredMaintenanceWindow=maintenance,
            )
        assert (
            e.value.response["Error"]["Message"]
            == "The backup window and maintenance window must not overlap."
        )
    assert all(i["DBInstanceIdentifier"] != "badmaint" for i in rds.describe_db_instances()["DBInstances"])


def test_cluster_backups_follow_the_cluster_window_and_retention(strata_factory) -> None:
    server = strata_factory()
    rds = server.client("rds")
    now = dt.datetime.fromisoformat(server.admin("/_strata/clock")["now"])
    hour = (now.hour + 5) % 24
    window = f"{hour:02d}:00-{hour:02d}:30"
    pg_cluster(rds, "cwin", ["cwin-w"], "db.r6g.large", BackupRetentionPeriod=1, PreferredBackupWindow=window)
    assert (
        rds.describe_db_clusters(DBClusterIdentifier="cwin")["DBClusters"][0]["PreferredBackupWindow"]
        == window
    )

    def automated() -> list[dict]:
        snaps = rds.describe_db_cluster_snapshots(DBClusterIdentifier="cwin", SnapshotType="automated")
        return sorted(
            (s for s in snaps["DBClusterSnapshots"] if s["Status"] == "available"),
            key=lambda s: s["SnapshotCreateTime"],
        )

    eventually(lambda: len(automated()) == 1, 120, 0.5)  # the one taken when the writer came up
    (first,) = automated()
    assert ran(server.advance_clock("1d")) == 1
    eventually(lambda: len(automated()) == 2, 120, 0.5)
    assert automated()[-1]["SnapshotCreateTime"].astimezone(dt.UTC).hour == hour
    # Ten days at once: one backup for the latest window; past the 1-day retention, the creation
    # backup goes (the older one stays as the base of the retention period's first seconds).
    assert ran(server.advance_clock("10d")) == 1
    eventually(lambda: len(automated()) == 3, 120, 0.5)
    # pruned by the next run that finds the writer idle (one may still find it finishing the backup)
    eventually(lambda: server.advance_clock("1s")["ran"]["rds.backups"] == {"pruned": 1}, 120, 0.5)
    names = [s["DBClusterSnapshotIdentifier"] for s in automated()]
    assert len(names) == 2 and first["DBClusterSnapshotIdentifier"] not in names

    # Stopped, the cluster takes no backup; AWS starts it after seven days (rds.autostart).
    rds.stop_db_cluster(DBClusterIdentifier="cwin")
    eventually(lambda: describe(rds, "cwin")["Status"] == "stopped", 120, 0.2)
    assert "AutomaticRestartTime" in describe(rds, "cwin")

    def instance_hours() -> float:
        events = server.admin("/_strata/meter?service=rds")["events"]
        return sum(e["quantity"] for e in events if e["event"] == "InstanceHours")

    hours = instance_hours()
    report = server.advance_clock("3d")
    assert autostarted(report) == {} and ran(report) == 0
    assert instance_hours() == hours  # the stopped writer is not billed by the hour
    assert autostarted(server.advance_clock("5d")) == {"clusters": 1}
    eventually(lambda: describe(rds, "cwin")["Status"] == "available", 120, 0.2)
    wait_status(rds, "cwin-w")
    with cluster_connect(describe(rds, "cwin")) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    messages = [
        e["Message"]
        for e in rds.describe_events(SourceIdentifier="cwin", SourceType="db-cluster", Duration=20000)[
            "Events"
        ]
    ]
    assert f"DB cluster {STARTED_BY_AWS}" in messages
    rds.delete_db_instance(DBInstanceIdentifier="cwin-w", SkipFinalSnapshot=True)
