"""DB instance life cycle against a real Strata server, checked with psycopg."""

from __future__ import annotations

import psycopg
import pytest
from botocore.exceptions import ClientError

from tests.services.rds.helpers import PASSWORD, create_pg, pg_connect, wait_status


def test_create_connect_and_describe(strata_server, unique: str) -> None:
    rds = strata_server.client("rds")
    ident = f"pg-{unique}"
    created = rds.create_db_instance(
        DBInstanceIdentifier=ident,
        Engine="postgres",
        MasterUsername="master",
        MasterUserPassword=PASSWORD,
        DBInstanceClass="db.t3.micro",
        AllocatedStorage=20,
        DBName="app",
        BackupRetentionPeriod=3,
        Tags=[{"Key": "team", "Value": "db"}],
    )["DBInstance"]
    assert created["DBInstanceStatus"] == "creating"
    inst = wait_status(rds, ident)
    # States seen by polling follow AWS's order, ending available (a short backing-up may fall
    # between two polls on a busy machine: which ones are seen is timing, not behaviour).
    order = ["creating", "backing-up", "available"]
    seen = inst["_seen"]
    assert seen[-1] == "available" and set(seen) <= set(order)
    assert [order.index(s) for s in seen] == sorted(order.index(s) for s in seen)
    assert inst["Endpoint"] == created["Endpoint"]
    assert inst["Engine"] == "postgres" and inst["DBName"] == "app" and not inst["StorageEncrypted"]
    assert inst["BackupRetentionPeriod"] == 3
    assert "LatestRestorableTime" in inst
    assert {"Key": "team", "Value": "db"} in inst["TagList"]
    with pg_connect(inst) as conn:
        conn.execute("CREATE TABLE t (id int primary key, v text)")
        conn.execute("INSERT INTO t VALUES (1, 'one')")
        assert conn.execute("SELECT v FROM t").fetchone() == ("one",)
        assert conn.execute("SHOW server_version").fetchone()[0].startswith("18")
    with pytest.raises(psycopg.OperationalError):
        pg_connect(inst, password="wrong-password")
    events = rds.describe_events(SourceIdentifier=ident, SourceType="db-instance")["Events"]
    assert any("backup" in e["Message"].lower() for e in events)
    rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True)


def test_validation_errors(strata_server, unique: str) -> None:
    rds = strata_server.client("rds")
    cases = [
        ({"Engine": "oracle-ee"}, "InvalidParameterCombination"),
        ({"Engine": "sqlserver-ex"}, "InvalidParameterCombination"),
        ({"Engine": "postgres", "DBInstanceIdentifier": "1bad"}, "InvalidParameterValue"),
        ({"Engine": "postgres", "DBInstanceIdentifier": "bad--name"}, "InvalidParameterValue"),
        ({"Engine": "postgres", "MasterUserPassword": "short"}, "InvalidParameterValue"),
        ({"Engine": "postgres", "BackupRetentionPeriod": 36}, "InvalidParameterValue"),
        ({"Engine": "aurora-postgresql"}, "InvalidParameterCombination"),
    ]
    for overrides, code in cases:
        args = {
            "DBInstanceIdentifier": f"v-{unique}",
            "MasterUsername": "master",
            "MasterUserPassword": PASSWORD,
            "DBInstanceClass": "db.t3.micro",
            "AllocatedStorage": 20,
            **overrides,
        }
        with pytest.raises(ClientError) as e:
            rds.create_db_instance(**args)
        assert e.value.response["Error"]["Code"] == code, overrides
    with pytest.raises(ClientError) as e:
        rds.describe_db_instances(DBInstanceIdentifier=f"missing-{unique}")
    assert e.value.response["Error"]["Code"] == "DBInstanceNotFound"


def test_modify_stop_start_reboot_delete(strata_server, unique: str) -> None:
    rds = strata_server.client("rds")
    ident = f"life-{unique}"
    inst = create_pg(rds, ident, BackupRetentionPeriod=0)
    with pytest.raises(ClientError) as e:
        create_pg(rds, ident, wait=False)
    assert e.value.response["Error"]["Code"] == "DBInstanceAlreadyExists"
    with pg_connect(inst) as conn:
        conn.execute("CREATE TABLE kept (x int)")
        conn.execute("INSERT INTO kept VALUES (42)")

    rds.modify_db_instance(
        DBInstanceIdentifier=ident,
        MasterUserPassword="New-pass-4567",
        DBInstanceClass="db.t3.small",
        AllocatedStorage=30,
        ApplyImmediately=True,
    )
    inst = wait_status(rds, ident)
    assert inst["DBInstanceClass"] == "db.t3.small" and inst["AllocatedStorage"] == 30
    with pg_connect(inst, password="New-pass-4567") as conn:
        assert conn.execute("SELECT x FROM kept").fetchone() == (42,)

    rds.stop_db_instance(DBInstanceIdentifier=ident)
    wait_status(rds, ident, "stopped")
    with pytest.raises(psycopg.OperationalError):
        pg_connect(inst, password="New-pass-4567")
    rds.start_db_instance(DBInstanceIdentifier=ident)
    inst = wait_status(rds, ident)
    with pg_connect(inst, password="New-pass-4567") as conn:
        assert conn.execute("SELECT x FROM kept").fetchone() == (42,)

    with pytest.raises(ClientError) as e:
        rds.reboot_db_instance(DBInstanceIdentifier=ident, ForceFailover=True)
    assert e.value.response["Error"]["Code"] == "InvalidParameterCombination"
    rds.reboot_db_instance(DBInstanceIdentifier=ident)
    inst = wait_status(rds, ident)
    with pg_connect(inst, password="New-pass-4567") as conn:
        assert conn.execute("SELECT x FROM kept").fetchone() == (42,)

    with pytest.raises(ClientError) as e:
        rds.delete_db_instance(DBInstanceIdentifier=ident)
    assert e.value.response["Error"]["Code"] == "InvalidParameterCombination"
    with pytest.raises(ClientError) as e:  # a named final snapshot is not skipped silently
        rds.delete_db_instance(
            DBInstanceIdentifier=ident, SkipFinalSnapshot=True, FinalDBSnapshotIdentifier=f"final-{unique}"
        )
    assert e.value.response["Error"]["Code"] == "InvalidParameterCombination"
    assert e.value.response["Error"]["Message"] == (
        "You cannot specify both FinalDBSnapshotIdentifier and SkipFinalSnapshot"
    )
    assert rds.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]["DBInstanceStatus"] == (
        "available"
    )
    rds.delete_db_instance(DBInstanceIdentifier=ident, FinalDBSnapshotIdentifier=f"final-{unique}")
    waiter = rds.get_waiter("db_instance_deleted")
    waiter.wait(DBInstanceIdentifier=ident, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    snap = rds.describe_db_snapshots(DBSnapshotIdentifier=f"final-{unique}")["DBSnapshots"][0]
    assert snap["DBInstanceIdentifier"] == ident and snap["SnapshotType"] == "manual"


def test_catalogue(strata_server) -> None:
    rds = strata_server.client("rds")
    versions = rds.describe_db_engine_versions()["DBEngineVersions"]
    engines = {v["Engine"] for v in versions}
    assert {"postgres", "aurora-postgresql"} <= engines
    pg = rds.describe_db_engine_versions(Engine="postgres")["DBEngineVersions"][0]
    assert pg["EngineVersion"].startswith("18") and pg["DBParameterGroupFamily"] == "postgres18"
    opts = rds.describe_orderable_db_instance_options(Engine="postgres")["OrderableDBInstanceOptions"]
    assert any(o["DBInstanceClass"] == "db.t3.micro" and o["MultiAZCapable"] for o in opts)


def test_parameter_group_applied_and_subnet_group(strata_server, unique: str) -> None:
    rds = strata_server.client("rds")
    group = f"pg-params-{unique}"
    rds.create_db_parameter_group(
        DBParameterGroupName=group, DBParameterGroupFamily="postgres18", Description="test"
    )
    rds.modify_db_parameter_group(
        DBParameterGroupName=group,
        Parameters=[{"ParameterName": "work_mem", "ParameterValue": "12345kB", "ApplyMethod": "immediate"}],
    )
    params = rds.describe_db_parameters(DBParameterGroupName=group, Source="user")["Parameters"]
    assert {"work_mem": "12345kB"} == {p["ParameterName"]: p["ParameterValue"] for p in params}
    subnets = f"subnets-{unique}"
    ids = [s["SubnetId"] for s in strata_server.client("ec2").describe_subnets()["Subnets"][:2]]
    rds.create_db_subnet_group(DBSubnetGroupName=subnets, DBSubnetGroupDescription="d", SubnetIds=ids)
    ident = f"params-{unique}"
    inst = create_pg(
        rds, ident, DBParameterGroupName=group, DBSubnetGroupName=subnets, BackupRetentionPeriod=0
    )
    assert inst["DBParameterGroups"][0]["DBParameterGroupName"] == group
    assert inst["DBSubnetGroup"]["DBSubnetGroupName"] == subnets
    with pg_connect(inst) as conn:
        assert conn.execute("SHOW work_mem").fetchone() == ("12345kB",)
    rds.modify_db_parameter_group(
        DBParameterGroupName=group,
        Parameters=[{"ParameterName": "work_mem", "ParameterValue": "2MB", "ApplyMethod": "immediate"}],
    )
    with pg_connect(inst) as conn:
        assert conn.execute("SHOW work_mem").fetchone() == ("2MB",)
    arn = inst["DBInstanceArn"]
    rds.add_tags_to_resource(ResourceName=arn, Tags=[{"Key": "env", "Value": "test"}])
    assert {"Key": "env", "Value": "test"} in rds.list_tags_for_resource(ResourceName=arn)["TagList"]
    rds.remove_tags_from_resource(ResourceName=arn, TagKeys=["env"])
    assert rds.list_tags_for_resource(ResourceName=arn)["TagList"] == []
    rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True)


def test_pgbench_runs_against_the_endpoint(strata_server, unique: str) -> None:
    import re
    import subprocess

    from strata.engines.postgres import pg_bin

    rds = strata_server.client("rds")
    ident = f"bench-{unique}"
    inst = create_pg(rds, ident, BackupRetentionPeriod=0)
    ep = inst["Endpoint"]
    base = [f"--host={ep['Address']}", f"--port={ep['Port']}", "--username=master"]
    env = {"PGPASSWORD": PASSWORD, "PATH": "/usr/bin:/bin"}
    subprocess.run(
        [pg_bin("pgbench"), *base, "-i", "-s", "1", "-q", "app"], env=env, check=True, capture_output=True
    )
    run = subprocess.run(
        [pg_bin("pgbench"), *base, "-c", "4", "-j", "2", "-t", "50", "-n", "app"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    assert re.search(r"number of transactions actually processed: 200/200", run.stdout), run.stdout
    with pg_connect(inst) as conn:
        assert conn.execute("SELECT count(*) FROM pgbench_history").fetchone() == (200,)
    rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True)
