"""MySQL-family engines on MariaDB: mariadb, mysql (wire-compatible) and aurora-mysql, with pymysql."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

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


def mariadbd_uid(datadir: Path) -> int:
    """The uid of the mariadbd serving `datadir` (from /proc)."""
    option = f"--defaults-file={datadir.parent / 'my.cnf'}".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if option in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"):
                return os.stat(f"/proc/{pid}").st_uid
        except OSError:
            continue
    raise AssertionError(f"no mariadbd serves {datadir}")


def check_escalated_master_writes_only_its_own_node(a: dict, b: dict) -> None:
    """Instance A's master user gets past its privileges (stock MariaDB lets CREATE USER rename
    Strata's root account: the known gap of MASTER_PRIVILEGES) and points the general log, which
    the server opens for appending, at existing files: one of its own node's takes the log, B's
    datadir's are refused (errno 13), since every node runs as an account of its own."""
    dirs = {}
    for name, inst in (("a", a), ("b", b)):
        with my_connect(inst) as conn:
            dirs[name] = Path(rows(conn, "SELECT @@datadir")[0][0])
    a_dir, b_dir = dirs["a"], dirs["b"]
    a_uid, b_uid = mariadbd_uid(a_dir), mariadbd_uid(b_dir)
    assert len({a_uid, b_uid, 0}) == 3, (a_uid, b_uid)
    assert b_dir.stat().st_uid == b_uid and b_dir.parent.stat().st_mode & 0o777 == 0o700
    targets = [b_dir / "ibdata1", b_dir / "aria_log_control"]
    before_b = [t.read_bytes() for t in targets]
    with my_connect(a) as conn:
        rows(conn, "RENAME USER 'root'@'localhost' TO 'escalated'@'%'")
        rows(conn, "ALTER USER 'escalated'@'%' IDENTIFIED BY 'Escalated-pass-1'")
    ep = a["Endpoint"]
    conn = pymysql.connect(
        host=ep["Address"], port=ep["Port"], user="escalated", password="Escalated-pass-1", autocommit=True
    )
    try:
        assert "ALL PRIVILEGES" in " ".join(r[0] for r in rows(conn, "SHOW GRANTS"))
        own = Path(rows(conn, "SELECT @@secure_file_priv")[0][0]) / "escalated.log"
        rows(conn, f"SELECT 'start' INTO OUTFILE '{own}'")  # a file of A's own node
        rows(conn, f"SET GLOBAL general_log_file = '{own}'")
        rows(conn, "SET GLOBAL general_log = 1")
        rows(conn, "SELECT 'escalated-marker'")
        rows(conn, "SET GLOBAL general_log = 0")
        assert b"escalated-marker" in own.read_bytes()  # the way in works where A may write
        for target in targets:  # refused when the server opens it (taken, as a writable regular file)
            with pytest.raises(pymysql.MySQLError) as refused:
                rows(conn, f"SET GLOBAL general_log_file = '{target}'")
                rows(conn, "SET GLOBAL general_log = 1")
            assert refused.value.args[0] == 29 and "Errcode: 13" in refused.value.args[1], refused.value.args
            rows(conn, "SET GLOBAL general_log = 0")
        with pytest.raises(pymysql.MySQLError) as refused:  # nor a file of its own in B's datadir
            rows(conn, f"SET GLOBAL general_log_file = '{b_dir / 'escalated.log'}'")
        assert refused.value.args[0] == 1231, refused.value.args  # ER_WRONG_VALUE_FOR_VAR
        rows(conn, f"SET GLOBAL general_log_file = '{own}'")
    finally:
        rows(conn, "RENAME USER 'escalated'@'%' TO 'root'@'localhost'")
        rows(conn, "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket")
        conn.close()
    assert [t.read_bytes() for t in targets] == before_b and not (b_dir / "escalated.log").exists()


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
    copy = wait_status(rds, f"maria-copy-{unique}", timeout=300)
    with my_connect(copy) as conn:
        assert rows(conn, "SELECT x FROM t") == [(7,)]
    if os.geteuid() == 0:  # (not root: every engine runs as the invoking user)
        check_escalated_master_writes_only_its_own_node(copy, inst)
    for i in (ident, f"maria-copy-{unique}"):
        rds.delete_db_instance(DBInstanceIdentifier=i, SkipFinalSnapshot=True)
    rds.get_waiter("db_instance_deleted").wait(
        DBInstanceIdentifier=ident, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    rds.delete_db_parameter_group(DBParameterGroupName=group)
