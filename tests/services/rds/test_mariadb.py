"""MySQL-family engines on MariaDB: mariadb, mysql (wire-compatible) and aurora-mysql, with pymysql."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pymysql
import pytest

from tests.services.ec2.helpers import no_egress_group
from tests.services.rds.helpers import PASSWORD, USER, eventually, wait_status


def my_connect(inst: dict, **kw) -> pymysql.Connection:  # noqa: ANN003
    ep = inst["Endpoint"]
    return pymysql.connect(
        host=ep["Address"],
        port=ep["Port"],
        user=USER,
        password=PASSWORD,
        database="app",
        autocommit=True,
        connect_timeout=10,
        **kw,
    )


def rows(conn: pymysql.Connection, sql: str) -> list:
    with conn.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())


def test_mysql_instance_replica_failover_snapshot_pitr(strata_server, unique: str) -> None:
    rds = strata_server.client("rds")
    versions = rds.describe_db_engine_versions(Engine="mysql")["DBEngineVersions"]
    assert "MySQL wire-compatible" in versions[0]["DBEngineDescription"]
    ident = f"my-{unique}"
    rds.create_db_instance(
        DBInstanceIdentifier=ident,
        Engine="mysql",
        MasterUsername=USER,
        MasterUserPassword=PASSWORD,
        DBInstanceClass="db.t3.micro",
        AllocatedStorage=20,
        DBName="app",
        MultiAZ=True,
        BackupRetentionPeriod=1,
    )
    inst = wait_status(rds, ident, timeout=300)
    with my_connect(inst) as conn:
        rows(conn, "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20)) ENGINE=InnoDB")
        rows(conn, "INSERT INTO items VALUES (1, 'one'), (2, 'two')")
    time.sleep(1.2)
    restore_time = datetime.now(UTC)
    time.sleep(1.2)
    with my_connect(inst) as conn:
        rows(conn, "INSERT INTO items VALUES (3, 'three')")

    rep_id = f"my-rep-{unique}"
    rds.create_db_instance_read_replica(
        DBInstanceIdentifier=rep_id,
        SourceDBInstanceIdentifier=ident,
        # where Strata filters engines' egress: replication (to the source's node, across its
        # failover) flows whatever the replica's group allows out
        **no_egress_group(strata_server, f"no-out-{unique}"),
    )
    rep = wait_status(rds, rep_id, timeout=300)
    assert rep["EngineVersion"] == inst["EngineVersion"] and inst["EngineVersion"].startswith("8.0.")
    assert rep["DBParameterGroups"][0]["DBParameterGroupName"] == "default.mysql8.0"
    with my_connect(rep) as conn:
        assert eventually(lambda: rows(conn, "SELECT count(*) FROM items") == [(3,)], 60)
        with pytest.raises(pymysql.err.OperationalError):
            rows(conn, "INSERT INTO items VALUES (9, 'nine')")

    rds.reboot_db_instance(DBInstanceIdentifier=ident, ForceFailover=True)
    after = wait_status(rds, ident, timeout=300)
    assert after["Endpoint"] == inst["Endpoint"]
    with my_connect(after) as conn:
        assert rows(conn, "SELECT count(*) FROM items") == [(3,)]
        rows(conn, "INSERT INTO items VALUES (4, 'four')")
    with my_connect(rep) as conn:  # the replica follows the new primary
        assert eventually(lambda: rows(conn, "SELECT count(*) FROM items") == [(4,)], 60)

    pitr = f"my-pitr-{unique}"
    rds.restore_db_instance_to_point_in_time(
        SourceDBInstanceIdentifier=ident, TargetDBInstanceIdentifier=pitr, RestoreTime=restore_time
    )
    with my_connect(wait_status(rds, pitr, timeout=300)) as conn:
        assert rows(conn, "SELECT id FROM items ORDER BY id") == [(1,), (2,)]

    for i in (rep_id, ident, pitr):
        rds.delete_db_instance(DBInstanceIdentifier=i, SkipFinalSnapshot=True)


def test_mariadb_snapshot_restore(strata_server, unique: str) -> None:
    rds = strata_server.client("rds")
    ident = f"maria-{unique}"
    group = f"maria-params-{unique}"
    rds.create_db_parameter_group(
        DBParameterGroupName=group, DBParameterGroupFamily="mariadb10.11", Description="d"
    )
    max_conn = [{"ParameterName": "max_connections", "ParameterValue": "77", "ApplyMethod": "immediate"}]
    rds.modify_db_parameter_group(DBParameterGroupName=group, Parameters=max_conn)
    rds.create_db_instance(
        DBInstanceIdentifier=ident,
        Engine="mariadb",
        MasterUsername=USER,
        MasterUserPassword=PASSWORD,
        DBInstanceClass="db.t3.micro",
        AllocatedStorage=20,
        DBName="app",
        BackupRetentionPeriod=0,
        DBParameterGroupName=group,
    )
    inst = wait_status(rds, ident, timeout=300)
    with my_connect(inst) as conn:
        assert "MariaDB" in rows(conn, "SELECT VERSION()")[0][0]
        assert rows(conn, "SELECT @@max_connections") == [(77,)]
    # the server's own log, under RDS's name for it
    files = rds.describe_db_log_files(DBInstanceIdentifier=ident)["DescribeDBLogFiles"]
    assert [f["LogFileName"] for f in files] == ["error/mysql-error.log"] and files[0]["Size"] > 0
    log = rds.download_db_log_file_portion(
        DBInstanceIdentifier=ident, LogFileName="error/mysql-error.log", Marker="0"
    )["LogFileData"]
    assert "ready for connections" in log
    max_conn[0]["ParameterValue"] = "88"
    rds.modify_db_parameter_group(DBParameterGroupName=group, Parameters=max_conn)
    with my_connect(inst) as conn:
        assert rows(conn, "SELECT @@max_connections") == [(88,)]
        rows(conn, "CREATE TABLE t (x INT)")
        rows(conn, "INSERT INTO t VALUES (7)")
    rds.create_db_snapshot(DBInstanceIdentifier=ident, DBSnapshotIdentifier=f"ms-{unique}")
    rds.get_waiter("db_snapshot_available").wait(
        DBSnapshotIdentifier=f"ms-{unique}", WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    rds.restore_db_instance_from_db_snapshot(
        DBInstanceIdentifier=f"maria-copy-{unique}", DBSnapshotIdentifier=f"ms-{unique}"
    )
    with my_connect(wait_status(rds, f"maria-copy-{unique}", timeout=300)) as conn:
        assert rows(conn, "SELECT x FROM t") == [(7,)]
    for i in (ident, f"maria-copy-{unique}"):
        rds.delete_db_instance(DBInstanceIdentifier=i, SkipFinalSnapshot=True)
    rds.get_waiter("db_instance_deleted").wait(
        DBInstanceIdentifier=ident, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    rds.delete_db_parameter_group(DBParameterGroupName=group)
