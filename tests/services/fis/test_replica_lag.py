"""Strata's own FIS action strata:rds:replica-lag: a PostgreSQL read replica's engine applies each
commit lagSeconds late (recovery_min_apply_delay), so a read-after-write through the replica's
endpoint sees stale data, then fresh; stopping the experiment lifts the delay."""

from __future__ import annotations

from tests.services.fis.test_experiments import DONE, wait_for
from tests.services.fis.test_templates import NONE, ROLE, error_of
from tests.services.rds.helpers import create_pg, eventually, pg_connect, wait_status


def lag_template(arn: str, lag: str) -> dict:
    return {
        "description": "lagging replica",
        "roleArn": ROLE,
        "stopConditions": NONE,
        "targets": {"replica": {"resourceType": "aws:rds:db", "resourceArns": [arn], "selectionMode": "ALL"}},
        "actions": {
            "lag": {
                "actionId": "strata:rds:replica-lag",
                "parameters": {"duration": "PT10M", "lagSeconds": lag},
                "targets": {"DBInstances": "replica"},
            }
        },
    }


def test_replica_lag_makes_read_after_write_stale_then_fresh(strata_server, unique):
    rds = strata_server.client("rds")
    fis = strata_server.client("fis")
    src_id, rep_id = f"lsrc-{unique}", f"lrep-{unique}"
    src = create_pg(rds, src_id, BackupRetentionPeriod=1)
    try:
        with pg_connect(src) as conn:
            conn.execute("CREATE TABLE notes (id int primary key)")
        rds.create_db_instance_read_replica(DBInstanceIdentifier=rep_id, SourceDBInstanceIdentifier=src_id)
        rep = wait_status(rds, rep_id)
        code, message, _ = error_of(
            lambda: fis.create_experiment_template(**lag_template(rep["DBInstanceArn"], "0"))
        )
        assert code == "ValidationException" and "lagSeconds" in message

        tid = fis.create_experiment_template(**lag_template(rep["DBInstanceArn"], "10"))[
            "experimentTemplate"
        ]["id"]
        with pg_connect(rep) as replica, pg_connect(src) as primary:
            eventually(lambda: replica.execute("SELECT to_regclass('notes')").fetchone()[0] is not None, 60)
            exp_id = fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"]
            eventually(lambda: replica.execute("SHOW recovery_min_apply_delay").fetchone() == ("10s",), 60)
            primary.execute("INSERT INTO notes VALUES (1)")
            assert replica.execute("SELECT id FROM notes WHERE id = 1").fetchone() is None  # stale
            assert eventually(
                lambda: replica.execute("SELECT id FROM notes WHERE id = 1").fetchone(), 60
            ) == (1,)  # then fresh, the delay later
            assert fis.get_experiment(id=exp_id)["experiment"]["state"]["status"] == "running"

            fis.stop_experiment(id=exp_id)
            assert wait_for(fis, exp_id, DONE)["state"]["status"] == "stopped"
            assert replica.execute("SHOW recovery_min_apply_delay").fetchone() == ("0",)
    finally:
        for ident in (rep_id, src_id):
            rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True)
