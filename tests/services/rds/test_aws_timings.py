"""`--timings aws` (STRATA_TIMINGS=aws): a Multi-AZ instance's forced failover takes the 60 s AWS
documents, in simulated time: it is under way and the endpoint unanswered until the clock has moved
past them; then the instance serves from the standby's zone through the same endpoint, nothing
lost. A bad setting stops start-up."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psycopg

from tests.services.rds.helpers import PASSWORD, USER, create_pg, eventually, pg_connect, wait_status


def _answers(inst: dict) -> bool:
    try:
        with psycopg.connect(
            host=inst["Endpoint"]["Address"],
            port=inst["Endpoint"]["Port"],
            user=USER,
            password=PASSWORD,
            dbname="app",
            connect_timeout=2,
        ) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False


def test_multi_az_failover_takes_aws_time(strata_factory, unique):
    server = strata_factory(extra_env={"STRATA_TIMINGS": "aws"})
    rds = server.client("rds")
    db = f"maz-{unique}"
    inst = create_pg(rds, db, MultiAZ=True, BackupRetentionPeriod=0)
    with pg_connect(inst) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")

    rds.reboot_db_instance(DBInstanceIdentifier=db, ForceFailover=True)

    def started() -> bool:
        events = rds.describe_events(SourceIdentifier=db, SourceType="db-instance")["Events"]
        return "Multi-AZ instance failover started." in [e["Message"] for e in events]

    eventually(started)
    time.sleep(1)  # far less than the 60 s the failover holds
    now = rds.describe_db_instances(DBInstanceIdentifier=db)["DBInstances"][0]
    assert now["DBInstanceStatus"] == "rebooting" and now["AvailabilityZone"] == inst["AvailabilityZone"]
    assert not _answers(inst)

    server.advance_clock("2m")
    after = wait_status(rds, db)
    assert after["AvailabilityZone"] == inst["SecondaryAvailabilityZone"]
    with pg_connect(after) as conn:
        assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]


def test_timings_setting_is_checked():
    for args, env in ((["--timings", "slow"], {}), ([], {"STRATA_TIMINGS": "slow"})):
        done = subprocess.run(
            [sys.executable, "-m", "strata.cli", "serve", "--port", "1", *args],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode != 0 and "slow" in done.stderr, done.stderr
