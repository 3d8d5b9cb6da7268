"""strata:rds:disk-full: an encrypted instance's own volume really fills up, so PostgreSQL answers
a write with its own disk-full error; StopExperiment, or a Strata restart mid-fault, gives the
space back and what was committed before is intact. Unencrypted targets are refused."""

from __future__ import annotations

import time

import psycopg
import pytest

from strata.storage.encrypted_volumes import unsupported
from tests.services.fis.conftest import runner_role
from tests.services.fis.test_experiments import DONE, wait_for
from tests.services.fis.test_templates import NONE, ROLE, error_of
from tests.services.rds.helpers import create_pg, eventually, pg_connect, wait_status
from tests.storage.at_rest import unmount_all

BIG_WRITE = "INSERT INTO notes SELECT g, repeat(md5(g::text), 64) FROM generate_series(1, 20000) g"


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


def _disk_full_error(inst: dict) -> psycopg.Error:
    """Wait until a big write fails (the volume fills a moment after the action starts); its error."""
    deadline = time.monotonic() + 60
    while True:
        try:
            with pg_connect(inst) as conn:
                conn.execute(BIG_WRITE)
                conn.execute("TRUNCATE notes")  # written before the volume was full: try again
        except psycopg.Error as e:
            if e.sqlstate == "53100":  # disk_full
                return e
            if time.monotonic() > deadline:
                raise
        assert time.monotonic() < deadline, "the write never met a full disk"
        time.sleep(0.2)


def _ballast(server) -> list:  # noqa: ANN001
    return [p for p in (server.data_dir / "rds" / "volumes").glob("*/ballast/*")]


@pytest.mark.skipif(unsupported() is not None, reason=f"encrypted volumes: {unsupported()}")
def test_disk_full_fills_an_encrypted_instances_volume_until_stopped_or_restarted(strata_factory, unique):
    server = strata_factory()
    try:
        runner_role(server)
        rds, fis = server.client("rds"), server.client("fis")
        plain = create_pg(rds, f"plain-{unique}", wait=False)
        code, message, status = error_of(
            lambda: fis.create_experiment_template(**disk_full_template(plain["DBInstanceArn"]))
        )
        assert (code, status) == ("ValidationException", 400)
        assert f"plain-{unique} is not encrypted" in message and "StorageEncrypted" in message

        inst = create_pg(rds, f"full-{unique}", StorageEncrypted=True)
        with pg_connect(inst) as conn:
            conn.execute("CREATE TABLE kept (id int primary key)")
            conn.execute("INSERT INTO kept SELECT generate_series(1, 1000)")
            conn.execute("CREATE TABLE notes (id int, body text)")
        tid = fis.create_experiment_template(**disk_full_template(inst["DBInstanceArn"]))[
            "experimentTemplate"
        ]["id"]

        exp_id = fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"]
        error = _disk_full_error(inst)
        assert "No space left on device" in str(error)
        assert _ballast(server)
        fis.stop_experiment(id=exp_id)
        exp = wait_for(fis, exp_id, DONE)
        assert exp["state"]["status"] == "stopped"
        assert not _ballast(server)

        def write() -> bool:
            with pg_connect(inst) as conn:
                conn.execute("TRUNCATE notes")
                conn.execute(BIG_WRITE)
                return conn.execute("SELECT count(*) FROM kept").fetchone() == (1000,)

        eventually(write, 120, 0.5)  # the space is back (after a restart, had PostgreSQL panicked)

        # a Strata killed mid-fault: the next start-up drains the volume before the engine starts
        exp_id = fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"]
        _disk_full_error(inst)
        server.kill()
        server.start()
        assert not _ballast(server)
        rds, fis = server.client("rds"), server.client("fis")
        assert fis.get_experiment(id=exp_id)["experiment"]["state"]["status"] == "failed"
        inst = wait_status(rds, f"full-{unique}")
        eventually(write, 120, 0.5)
    finally:
        server.stop()
        unmount_all(server.data_dir)
