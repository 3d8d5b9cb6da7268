"""Strata's own FIS actions strata:rds:replica-lag (a read replica's engine applies each commit
lagSeconds late: PostgreSQL recovery_min_apply_delay, MariaDB MASTER_DELAY) and
strata:elasticache:replica-lag (a Redis replica gets its primary's stream lagSeconds late), so a
read-after-write through the replica's endpoint sees stale data, then fresh, and CloudWatch's
ReplicaLag shows the lag (PostgreSQL); stopping the
experiment lifts the delay."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import redis

from tests.services.ec2.helpers import no_egress_group
from tests.services.elasticache.conftest import group
from tests.services.fis.conftest import runner_role
from tests.services.fis.test_experiments import DONE, wait_for
from tests.services.fis.test_templates import NONE, ROLE, error_of
from tests.services.rds.helpers import PASSWORD, USER, create_pg, eventually, pg_connect, wait_status
from tests.services.rds.test_mariadb import my_connect, rows


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


def test_mariadb_replica_lag_holds_the_replicas_apply_back(strata_server, unique):
    """An hour of lag: a write is not on the replica seconds later; stopping the experiment lifts
    the delay and the write arrives (held back, not lost). The master user cannot read SHOW SLAVE
    STATUS (as on RDS), so what is seen is what a client sees."""
    rds = strata_server.client("rds")
    fis = strata_server.client("fis")
    src_id, rep_id = f"mlsrc-{unique}", f"mlrep-{unique}"
    rds.create_db_instance(
        DBInstanceIdentifier=src_id,
        Engine="mariadb",
        MasterUsername=USER,
        MasterUserPassword=PASSWORD,
        DBInstanceClass="db.t3.micro",
        AllocatedStorage=20,
        DBName="app",
        BackupRetentionPeriod=1,
    )
    try:
        src = wait_status(rds, src_id, timeout=300)
        with my_connect(src) as conn:
            rows(conn, "CREATE TABLE notes (id INT PRIMARY KEY) ENGINE=InnoDB")
        rds.create_db_instance_read_replica(DBInstanceIdentifier=rep_id, SourceDBInstanceIdentifier=src_id)
        rep = wait_status(rds, rep_id, timeout=300)
        tid = fis.create_experiment_template(**lag_template(rep["DBInstanceArn"], "3600"))[
            "experimentTemplate"
        ]["id"]
        with my_connect(rep) as replica, my_connect(src) as primary:
            eventually(lambda: rows(replica, "SHOW TABLES LIKE 'notes'"), 60)
            exp_id = fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"]
            wait_for(fis, exp_id, ("running", *DONE))
            written = []

            def held_back() -> bool:  # a fresh write still missing on the replica 1 s later
                written.append(len(written) + 1)
                rows(primary, f"INSERT INTO notes VALUES ({written[-1]})")
                time.sleep(1)  # unlagged, MariaDB's replica applies it in milliseconds
                return not rows(replica, f"SELECT id FROM notes WHERE id = {written[-1]}")

            eventually(held_back, 60)
            time.sleep(1)
            assert not rows(replica, f"SELECT id FROM notes WHERE id = {written[-1]}")  # still stale
            exp = fis.get_experiment(id=exp_id)["experiment"]
            assert exp["actions"]["lag"]["state"]["status"] == "running", exp["state"]

            fis.stop_experiment(id=exp_id)
            assert wait_for(fis, exp_id, DONE)["state"]["status"] == "stopped"
            everything = [(i,) for i in written]
            assert eventually(lambda: rows(replica, "SELECT id FROM notes ORDER BY id") == everything, 60)
    finally:
        for ident in (rep_id, src_id):
            rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_elasticache_replica_lag_holds_the_zones_replicas_behind(strata_server, unique, tls):
    """strata:elasticache:replica-lag: the group's replica in the target zone follows a relay that
    holds its primary's stream back, so a read from it right after a write is stale, then fresh;
    stopping the experiment points it at its primary again. With TLS in transit too; without, in
    a security group allowing no traffic out: the relay the replica dials is replication too."""
    ec = strata_server.client("elasticache")
    fis = strata_server.client("fis")
    gid = f"lag-{unique}"
    ec.create_replication_group(
        ReplicationGroupId=gid,
        ReplicationGroupDescription="d",
        NumCacheClusters=2,
        PreferredCacheClusterAZs=["us-east-1a", "us-east-1b"],
        TransitEncryptionEnabled=tls,
        **({} if tls else no_egress_group(strata_server, f"no-out-{unique}", "SecurityGroupIds")),
    )
    try:
        g = group(ec, gid)
        ep = g["NodeGroups"][0]["PrimaryEndpoint"]
        member = next(
            m for m in g["NodeGroups"][0]["NodeGroupMembers"] if m["CacheClusterId"] == f"{gid}-002"
        )
        ca = {"ssl": True, "ssl_ca_certs": str(strata_server.data_dir / "tls" / "ca.pem")} if tls else {}
        primary = redis.Redis(ep["Address"], ep["Port"], decode_responses=True, **ca)
        replica = redis.Redis(  # in us-east-1b
            member["ReadEndpoint"]["Address"], member["ReadEndpoint"]["Port"], decode_responses=True, **ca
        )
        body = {
            **lag_template("", "4"),
            "targets": {
                "caches": {
                    "resourceType": "aws:elasticache:replicationgroup",
                    "resourceArns": [g["ARN"]],
                    "selectionMode": "ALL",
                    "parameters": {"availabilityZoneIdentifier": "us-east-1b"},
                }
            },
        }
        body["actions"]["lag"].update(
            actionId="strata:elasticache:replica-lag", targets={"ReplicationGroups": "caches"}
        )
        tid = fis.create_experiment_template(**body)["experimentTemplate"]["id"]
        exp_id = fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"]
        link = lambda: replica.info("replication")  # noqa: E731
        eventually(lambda: link()["master_port"] != ep["Port"] and link()["master_link_status"] == "up", 60)
        for i in range(3):
            primary.set("note", i)
            assert replica.get("note") == (str(i - 1) if i else None)  # stale
            assert eventually(lambda i=i: replica.get("note") == str(i), 60)  # then fresh
        assert fis.get_experiment(id=exp_id)["experiment"]["state"]["status"] == "running"

        fis.stop_experiment(id=exp_id)
        assert wait_for(fis, exp_id, DONE)["state"]["status"] == "stopped"
        assert link()["master_port"] == ep["Port"]
        eventually(lambda: link()["master_link_status"] == "up", 60)
        primary.set("note", "after")
        assert eventually(lambda: replica.get("note") == "after", 60)
    finally:
        ec.delete_replication_group(ReplicationGroupId=gid)
