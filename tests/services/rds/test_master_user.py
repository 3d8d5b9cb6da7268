"""The master user has RDS's rights, not a superuser's: no shell commands or server files through SQL."""

from __future__ import annotations

import psycopg
import pymysql
import pytest

from tests.services.rds.helpers import PASSWORD, USER, create_pg, pg_connect, wait_status


def test_postgres_master_user_is_rds_superuser_not_superuser(strata_server, unique: str, tmp_path) -> None:
    rds = strata_server.client("rds")
    inst = create_pg(rds, f"pg-master-{unique}")
    marker = tmp_path / "pwned"
    with pg_connect(inst) as conn:
        assert conn.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication FROM pg_roles WHERE rolname = current_user"
        ).fetchone() == (False, True, True, False)
        assert conn.execute("SELECT pg_has_role(current_user, 'rds_superuser', 'MEMBER')").fetchone() == (
            True,
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"COPY (SELECT 1) TO PROGRAM 'touch {marker}'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT pg_read_file('/etc/passwd')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("COPY (SELECT 1) TO '/tmp/strata-copy-test'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("ALTER ROLE CURRENT_USER SUPERUSER")
        # What it can do: databases, roles, tables, grants, seeing every session.
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("CREATE ROLE app_user LOGIN PASSWORD 'App-pass-123'")
        conn.execute("GRANT SELECT ON t TO app_user")
        conn.execute("CREATE DATABASE other")
        assert conn.execute(
            "SELECT count(*) > 0 FROM pg_stat_activity WHERE usename IS NOT NULL"
        ).fetchone() == (True,)
        assert conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'app'"
        ).fetchone() == (USER,)
    assert not marker.exists()
    for db in ("other", "postgres"):
        with pg_connect(inst, dbname=db) as conn:
            conn.execute("CREATE TABLE owned (x int)")
    ep = inst["Endpoint"]
    with psycopg.connect(
        host=ep["Address"], port=ep["Port"], user="app_user", password="App-pass-123", dbname="app"
    ) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
    # Strata's own superuser cannot log in over TCP, whatever the password.
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(
            host=ep["Address"],
            port=ep["Port"],
            user="rdsadmin",
            password=PASSWORD,
            dbname="postgres",
            connect_timeout=10,
        )
    rds.delete_db_instance(DBInstanceIdentifier=inst["DBInstanceIdentifier"], SkipFinalSnapshot=True)


def test_mariadb_master_user_has_rds_privileges_without_super_or_file(strata_server, unique: str) -> None:
    rds = strata_server.client("rds")
    ident = f"my-master-{unique}"
    rds.create_db_instance(
        DBInstanceIdentifier=ident,
        Engine="mariadb",
        MasterUsername=USER,
        MasterUserPassword=PASSWORD,
        DBInstanceClass="db.t3.micro",
        AllocatedStorage=20,
        DBName="app",
    )
    ep = wait_status(rds, ident, timeout=300)["Endpoint"]
    conn = pymysql.connect(
        host=ep["Address"], port=ep["Port"], user=USER, password=PASSWORD, database="app", autocommit=True
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW GRANTS")
            grants = " ".join(row[0] for row in cur.fetchall())
            for absent in ("SUPER", "FILE", "SHUTDOWN", "ALL PRIVILEGES", "READ_ONLY ADMIN"):
                assert absent not in grants, grants
            for present in ("CREATE USER", "RELOAD", "PROCESS", "REPLICATION SLAVE", "WITH GRANT OPTION"):
                assert present in grants, grants
            with pytest.raises(pymysql.err.OperationalError):  # FILE privilege: access denied
                cur.execute("SELECT 1 INTO OUTFILE '/tmp/strata-outfile-test'")
            cur.execute("SELECT LOAD_FILE('/etc/passwd')")
            assert cur.fetchone() == (None,)  # without FILE, server files read as NULL
            with pytest.raises(pymysql.err.OperationalError):
                cur.execute("SET GLOBAL read_only = ON")
            # INSERT on mysql.plugin (RDS grants it) must not load a library of the package:
            # FederatedX would reach other engines' ports from the engine's own account.
            for library in ("ha_federatedx", "file_key_management", "auth_pam"):
                with pytest.raises(pymysql.err.MySQLError) as refused:
                    cur.execute(f"INSTALL SONAME '{library}'")
                assert refused.value.args[0] == 1126, refused.value.args  # ER_CANT_OPEN_LIBRARY
            cur.execute("SHOW ENGINES")
            assert "FEDERATED" not in {row[0] for row in cur.fetchall()}
            cur.execute("CREATE TABLE t (x INT)")
            cur.execute("CREATE DATABASE other")
            cur.execute("CREATE USER 'app_user'@'%' IDENTIFIED BY 'App-pass-123'")
            cur.execute("GRANT SELECT ON app.* TO 'app_user'@'%'")
    finally:
        conn.close()
    rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True)
