"""Strata's own FIS action strata:rds:replica-lag: a PostgreSQL read replica's engine applies each
commit lagSeconds late (recovery_min_apply_delay), so a read-after-write through the replica's
endpoint sees stale data, then fresh, and CloudWatch's ReplicaLag shows the lag; stopping the
experiment lifts the delay."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from tests.services.fis.conftest import runner_role
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


def _replica_lag(cw, ident: str) -> list[dict]:
    now = datetime.now(UTC)
    return cw.get_metric_statistics(
        Namespace="AWS/RDS",
        MetricName="ReplicaLag",
        Dimensions=[{"Name": "DBInstanceIdentifier", "Value": ident}],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(hours=1),
        Period=60,
        Statistics=["Maximum"],
    )["Datapoints"]


def test_replica_lag_makes_read_after_write_stale_then_fresh(strata_factory, unique):
    server = strata_factory()  # a private server: the test moves its clock to sample ReplicaLag
    runner_role(server)
    rds, fis, cw = server.client("rds"), server.client("fis"), server.client("cloudwatch")
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
            # a commit the replica replays: ReplicaLag is the time since the last one replayed
            first = time.time()
            primary.execute("INSERT INTO notes VALUES (0)")
            eventually(lambda: replica.execute("SELECT id FROM notes WHERE id = 0").fetchone(), 60)
            exp_id = fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"]
            eventually(lambda: replica.execute("SHOW recovery_min_apply_delay").fetchone() == ("10s",), 60)
            primary.execute("INSERT INTO notes VALUES (1)")
            assert replica.execute("SELECT id FROM notes WHERE id = 1").fetchone() is None  # stale
            server.advance_clock("1m")  # CloudWatch samples the replica while it lags
            sampled = time.time()
            assert replica.execute("SELECT id FROM notes WHERE id = 1").fetchone() is None  # still
            lag = _replica_lag(cw, rep_id)
            assert lag and lag[-1]["Unit"] == "Seconds"
            assert 0 < lag[-1]["Maximum"] <= sampled - first  # behind since the last replayed commit
            assert not _replica_lag(cw, src_id)  # a source has no lag
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
