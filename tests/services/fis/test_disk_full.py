"""strata:rds:disk-full and strata:efs:disk-full: an encrypted resource's own volume really fills up,
so PostgreSQL answers a write with its own disk-full error (or, writing WAL, PANICs: the instance
is storage-full until the space is back) and the NFS server with NFS4ERR_NOSPC;
StopExperiment, or a Strata restart mid-fault, gives the space back and what was written before
is intact. Targets that are not encrypted are refused (the same check for every disk-full action: shown
on EFS, which has no engine to start)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from strata.storage.encrypted_volumes import unsupported
from tests.services.efs.helpers import file_system_with_targets, needs_nfs, url
from tests.services.efs.libnfs import LibNfs
from tests.services.efs.test_nfs import nfs_bytes
from tests.services.fis.conftest import runner_role
from tests.services.fis.test_experiments import DONE, wait_for
from tests.services.fis.test_templates import NONE, ROLE, error_of
from tests.services.rds.helpers import create_pg, eventually, pg_connect, wait_status
from tests.storage.at_rest import unmount_all

BIG_WRITE = "INSERT INTO notes SELECT g, repeat(md5(g::text), 64) FROM generate_series(1, 2000) g"


def disk_full_template(arn: str) -> dict:
    return {
        "description": "disk full",
        "roleArn": ROLE,
        "stopConditions": NONE,
        "targets": {"db": {"resourceType": "aws:rds:db", "resourceArns": [arn], "selectionMode": "ALL"}},
        "actions": {
            "fill": {
                "actionId": "strata:rds:disk-full",
                "parameters": {"duration": "PT10M"},
                "targets": {"DBInstances": "db"},
            }
        },
    }


def _volume_full(server, inst: dict) -> bool:  # noqa: ANN001
    st = os.statvfs(server.data_dir / "rds" / "volumes" / f"instance-{inst['DBInstanceIdentifier']}")
    return bool(_ballast(server)) and st.f_bavail == 0


def _disk_full_error(server, inst: dict) -> psycopg.Error:  # noqa: ANN001
    """Once the instance's volume is full (a moment after the action starts), a write's error."""
    eventually(lambda: _volume_full(server, inst), 60, 0.1)
    with pg_connect(inst) as conn, pytest.raises(psycopg.Error) as e:
        conn.execute(BIG_WRITE)
    return e.value


def _free_storage(cw, ident: str) -> float:  # noqa: ANN001
    now = datetime.now(UTC)
    points = cw.get_metric_statistics(
        Namespace="AWS/RDS",
        MetricName="FreeStorageSpace",
        Dimensions=[{"Name": "DBInstanceIdentifier", "Value": ident}],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(hours=1),
        Period=60,
        Statistics=["Minimum"],
    )["Datapoints"]
    return min(p["Minimum"] for p in points)


def _ballast(server) -> list:  # noqa: ANN001
    return [p for p in (server.data_dir / "rds" / "volumes").glob("*/ballast/*")]


@pytest.mark.skipif(unsupported() is not None, reason=f"encrypted volumes: {unsupported()}")
def test_disk_full_fills_an_encrypted_instances_volume_until_stopped_or_restarted(strata_factory, unique):
    server = strata_factory()
    try:
        runner_role(server)
        rds, fis = server.client("rds"), server.client("fis")

        ident = f"full-{unique}"
        inst = create_pg(rds, ident, StorageEncrypted=True)
        with pg_connect(inst) as conn:
            conn.execute("CREATE TABLE kept (id int primary key)")
            conn.execute("INSERT INTO kept SELECT generate_series(1, 1000)")
            conn.execute("CREATE TABLE notes (id int, body text)")
            conn.execute("CREATE TABLE counter (n int) WITH (fillfactor = 50)")  # updated in place
            conn.execute("INSERT INTO counter VALUES (0)")
        tid = fis.create_experiment_template(**disk_full_template(inst["DBInstanceArn"]))[
            "experimentTemplate"
        ]["id"]

        exp_id = fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"]
        error = _disk_full_error(server, inst)
        assert error.sqlstate == "53100" and "No space left on device" in str(error)  # disk_full
        server.advance_clock("1m")  # CloudWatch samples the instance: no storage left
        assert _free_storage(server.client("cloudwatch"), inst["DBInstanceIdentifier"]) == 0

        # WAL that needs a new segment file: PostgreSQL PANICs and cannot start again on the full
        # disk, so the instance is storage-full (AWS's status) until there is space again
        acked: list[int] = []

        def write_wal_until_storage_full() -> bool:
            try:
                with pg_connect(inst) as conn:
                    for _ in range(20):
                        acked.append(conn.execute("UPDATE counter SET n = n + 1 RETURNING n").fetchone()[0])
                        conn.execute("SELECT pg_logical_emit_message(true, 'fill', repeat('x', 1000000))")
            except psycopg.Error:
                pass
            status = rds.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]
            return status["DBInstanceStatus"] == "storage-full"

        eventually(write_wal_until_storage_full, 120, 0.2)
        fis.stop_experiment(id=exp_id)
        exp = wait_for(fis, exp_id, DONE)
        assert exp["state"]["status"] == "stopped"
        assert not _ballast(server)

        def write() -> bool:
            with pg_connect(inst) as conn:
                conn.execute("TRUNCATE notes")
                conn.execute(BIG_WRITE)
                return conn.execute("SELECT count(*) FROM kept").fetchone() == (1000,)

        eventually(write, 120, 0.5)  # the space is back: the engine restarted, available again
        assert wait_status(rds, ident)["DBInstanceStatus"] == "available"
        with pg_connect(inst) as conn:  # no acknowledged commit lost
            assert acked and conn.execute("SELECT n FROM counter").fetchone()[0] >= acked[-1]

        # a Strata killed mid-fault: the next start-up drains the volume before the engine starts
        exp_id = fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"]
        eventually(lambda: _volume_full(server, inst), 60, 0.1)
        server.kill()
        server.start()
        assert not _ballast(server)
        rds, fis = server.client("rds"), server.client("fis")
        assert fis.get_experiment(id=exp_id)["experiment"]["state"]["status"] == "failed"
        eventually(write, 120, 0.5)
    finally:
        server.stop()
        unmount_all(server.data_dir)


def efs_template(target: dict) -> dict:
    return {
        "description": "disk full",
        "roleArn": ROLE,
        "stopConditions": NONE,
        "targets": {
            "fs": {"resourceType": "aws:elasticfilesystem:file-system", "selectionMode": "ALL", **target}
        },
        "actions": {
            "fill": {
                "actionId": "strata:efs:disk-full",
                "parameters": {"duration": "PT10M"},
                "targets": {"FileSystems": "fs"},
            }
        },
    }


@needs_nfs
@pytest.mark.skipif(unsupported() is not None, reason=f"encrypted volumes: {unsupported()}")
def test_efs_disk_full_answers_nfs_writes_with_nospc_until_stopped(strata_server, unique):
    fis = strata_server.client("fis")
    efs, plain_id, _ = file_system_with_targets(
        strata_server, zones=0, Tags=[{"Key": "full", "Value": unique}]
    )
    plain_arn = efs.describe_file_systems(FileSystemId=plain_id)["FileSystems"][0]["FileSystemArn"]
    code, message, status = error_of(
        lambda: fis.create_experiment_template(**efs_template({"resourceArns": [plain_arn]}))
    )
    assert (code, status) == ("ValidationException", 400)
    assert f"file system {plain_id} is not encrypted" in message and "Encrypted set to true" in message
    # found by its tags, it fails the action when the experiment runs
    tid = fis.create_experiment_template(**efs_template({"resourceTags": {"full": unique}}))[
        "experimentTemplate"
    ]["id"]
    exp = wait_for(fis, fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"], DONE)
    assert exp["state"]["status"] == "failed", exp["state"]
    assert f"file system {plain_id} is not encrypted" in exp["actions"]["fill"]["state"]["reason"], exp[
        "state"
    ]

    efs, fs_id, (mt,) = file_system_with_targets(strata_server, zones=1, Encrypted=True)
    arn = efs.describe_file_systems(FileSystemId=fs_id)["FileSystems"][0]["FileSystemArn"]
    kept = b"written before the disk filled\n" * 100
    client = LibNfs(mt["IpAddress"])
    try:
        client.write("/kept.txt", kept)
        tid = fis.create_experiment_template(**efs_template({"resourceArns": [arn]}))["experimentTemplate"][
            "id"
        ]
        exp_id = fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"]

        def refused() -> str:
            try:
                client.write("/big.bin", os.urandom(256 * 1024))
            except OSError as e:
                return str(e)
            client.unlink("/big.bin")
            return ""

        error = eventually(refused, 60, 0.2)
        assert "NOSPC" in error or "No space" in error, error
        fis.stop_experiment(id=exp_id)
        assert wait_for(fis, exp_id, DONE)["state"]["status"] == "stopped"
        client.write("/big.bin", os.urandom(256 * 1024))
    finally:
        client.close()
    assert nfs_bytes(url(mt["IpAddress"], "kept.txt")) == kept
