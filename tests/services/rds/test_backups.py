"""Snapshots and point-in-time restore: the seed's snippets, checked with real SQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError

from tests.services.rds.helpers import create_pg, pg_connect, wait_status


def seed_create_manual_snapshot(rds, db_identifier: str) -> str:  # noqa: ANN001 - the seed's code, verbatim
    snapshot_id = f"{db_identifier}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    rds.create_db_snapshot(
        DBInstanceIdentifier=db_identifier,
        DBSnapshotIdentifier=snapshot_id,
        Tags=[
            {"Key": "Purpose", "Value": "ManualBackup"},
        ],
    )
    return snapshot_id


def seed_restore_to_point_in_time(rds, source_db: str, target_db: str, restore_time: datetime):  # noqa: ANN001, ANN201
    response = rds.restore_db_instance_to_point_in_time(
        SourceDBInstanceIdentifier=source_db,
        TargetDBInstanceIdentifier=target_db,
        RestoreTime=restore_time,
        UseLatestRestorableTime=False,
        DBInstanceClass="db.t3.medium",
        PubliclyAccessible=False,
        MultiAZ=True,
    )
    return response


def wait_snapshot(rds, snap_id: str, timeout: float = 120) -> dict:  # noqa: ANN001
    waiter = rds.get_waiter("db_snapshot_available")
    waiter.wait(DBSnapshotIdentifier=snap_id, WaiterConfig={"Delay": 1, "MaxAttempts": int(timeout)})
    return rds.describe_db_snapshots(DBSnapshotIdentifier=snap_id)["DBSnapshots"][0]


def test_manual_snapshot_copy_restore_delete(strata_server, unique: str) -> None:
    rds = strata_server.client("rds")
    ident = f"snap-src-{unique}"
    inst = create_pg(rds, ident, BackupRetentionPeriod=0)
    with pg_connect(inst) as conn:
        conn.execute("CREATE TABLE orders (id int)")
        conn.execute("INSERT INTO orders SELECT generate_series(1, 100)")
    snap_id = seed_create_manual_snapshot(rds, ident)
    snap = wait_snapshot(rds, snap_id)
    assert snap["SnapshotType"] == "manual" and snap["DBInstanceIdentifier"] == ident
    assert {"Key": "Purpose", "Value": "ManualBackup"} in snap["TagList"]
    with pg_connect(inst) as conn:
        conn.execute("INSERT INTO orders VALUES (101)")  # after the snapshot: must not be restored

    copy_id = f"copy-{unique}"
    rds.copy_db_snapshot(
        SourceDBSnapshotIdentifier=snap_id, TargetDBSnapshotIdentifier=copy_id, CopyTags=True
    )
    copy = wait_snapshot(rds, copy_id)
    assert {"Key": "Purpose", "Value": "ManualBackup"} in copy["TagList"]

    restored_id = f"from-snap-{unique}"
    rds.restore_db_instance_from_db_snapshot(
        DBInstanceIdentifier=restored_id, DBSnapshotIdentifier=copy_id, DBInstanceClass="db.t3.micro"
    )
    restored = wait_status(rds, restored_id)
    assert restored["Endpoint"]["Port"] != inst["Endpoint"]["Port"]
    with pg_connect(restored) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (100,)
        conn.execute("INSERT INTO orders VALUES (500)")  # a restored instance is writable

    rds.delete_db_snapshot(DBSnapshotIdentifier=copy_id)
    with pytest.raises(ClientError) as e:
        rds.describe_db_snapshots(DBSnapshotIdentifier=copy_id)
    assert e.value.response["Error"]["Code"] == "DBSnapshotNotFound"
    for i in (ident, restored_id):
        rds.delete_db_instance(DBInstanceIdentifier=i, SkipFinalSnapshot=True)


def test_point_in_time_restore_to_the_second(strata_server, unique: str) -> None:
    rds = strata_server.client("rds")
    ident = f"pitr-src-{unique}"
    inst = create_pg(rds, ident, BackupRetentionPeriod=7)
    automated = rds.describe_db_snapshots(DBInstanceIdentifier=ident, SnapshotType="automated")["DBSnapshots"]
    assert automated and automated[0]["Status"] == "available"
    with pg_connect(inst) as conn:
        conn.execute("CREATE TABLE ledger (id int, note text)")
        conn.execute("INSERT INTO ledger VALUES (1, 'before')")
    time.sleep(1.5)
    restore_time = datetime.now(UTC).replace(microsecond=0)
    time.sleep(1.5)
    with pg_connect(inst) as conn:
        conn.execute("INSERT INTO ledger VALUES (2, 'after')")
        conn.execute("DELETE FROM ledger WHERE id = 1")  # the mistake PITR undoes

    target = f"pitr-dst-{unique}"
    resp = seed_restore_to_point_in_time(rds, ident, target, restore_time)
    assert resp["DBInstance"]["DBInstanceIdentifier"] == target
    restored = wait_status(rds, target, timeout=300)
    assert restored["MultiAZ"] and restored["DBInstanceClass"] == "db.t3.medium"
    assert "SecondaryAvailabilityZone" in restored
    with pg_connect(restored) as conn:
        assert conn.execute("SELECT id, note FROM ledger ORDER BY id").fetchall() == [(1, "before")]

    latest = f"pitr-latest-{unique}"
    rds.restore_db_instance_to_point_in_time(
        SourceDBInstanceIdentifier=ident, TargetDBInstanceIdentifier=latest, UseLatestRestorableTime=True
    )
    with pg_connect(wait_status(rds, latest, timeout=300)) as conn:
        assert conn.execute("SELECT id FROM ledger ORDER BY id").fetchall() == [(2,)]

    with pytest.raises(ClientError) as e:
        rds.restore_db_instance_to_point_in_time(
            SourceDBInstanceIdentifier=ident,
            TargetDBInstanceIdentifier=f"x-{unique}",
            RestoreTime=datetime(2001, 1, 1, tzinfo=UTC),
        )
    assert e.value.response["Error"]["Code"] == "InvalidRestoreFault"
    for i in (ident, target, latest):
        rds.delete_db_instance(DBInstanceIdentifier=i, SkipFinalSnapshot=True)


def test_point_in_time_restore_after_the_clock_moved(strata_factory, unique: str) -> None:
    """A RestoreTime from before a clock advance still restores exactly that second's data."""
    server = strata_factory()
    rds = server.client("rds")
    ident = f"pitr-clk-{unique}"
    inst = create_pg(rds, ident, BackupRetentionPeriod=7)
    with pg_connect(inst) as conn:
        conn.execute("CREATE TABLE ledger (id int)")
        conn.execute("INSERT INTO ledger VALUES (1)")
    time.sleep(1.5)
    restore_time = datetime.fromisoformat(server.admin("/_strata/clock")["now"]).replace(microsecond=0)
    time.sleep(1.5)
    server.advance_clock("1d")
    with pg_connect(inst) as conn:
        conn.execute("INSERT INTO ledger VALUES (2)")
    target = f"pitr-clk-dst-{unique}"
    rds.restore_db_instance_to_point_in_time(
        SourceDBInstanceIdentifier=ident, TargetDBInstanceIdentifier=target, RestoreTime=restore_time
    )
    restored = wait_status(rds, target, timeout=300)
    with pg_connect(restored) as conn:
        assert conn.execute("SELECT id FROM ledger ORDER BY id").fetchall() == [(1,)]
