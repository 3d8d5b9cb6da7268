"""MariaDB-family parameter groups against the engine's own catalogue: what RDS lists and refuses,
and what a running MariaDB instance shows after ModifyDBParameterGroup / reboot / reset; the
MARIADB_AUDIT_PLUGIN option on the same instance, its log read through DownloadDBLogFilePortion;
the hourly error log files as the simulated clock moves (the module's own server, so its clock
may move)."""

from __future__ import annotations

import datetime as dt
import re

import pymysql
import pytest
from botocore.exceptions import ClientError

from tests.services.rds.helpers import PASSWORD, USER, applied_after, create_pg, maintenance, wait_status
from tests.strata_process import StrataProcess

FAMILY = "mariadb10.11"


def run(inst: dict, *statements: str) -> list:
    ep = inst["Endpoint"]
    conn = pymysql.connect(
        host=ep["Address"], port=ep["Port"], user=USER, password=PASSWORD, connect_timeout=10, autocommit=True
    )
    with conn, conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)
        return list(cur.fetchall())


def variable(inst: dict, name: str) -> str:
    return run(inst, f"SHOW GLOBAL VARIABLES LIKE '{name}'")[0][1]


def error(call, **kwargs) -> tuple[str, str]:
    with pytest.raises(ClientError) as e:
        call(**kwargs)
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    proc = StrataProcess(tmp_path_factory.mktemp("strata-maria") / "data").start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def maria(server):
    """One MariaDB instance in a parameter group of its own, for every test of the module."""
    rds = server.client("rds")
    ident, group = "maria-params", "maria-params-group"
    rds.create_db_parameter_group(DBParameterGroupName=group, DBParameterGroupFamily=FAMILY, Description="d")
    rds.create_db_instance(
        DBInstanceIdentifier=ident,
        Engine="mariadb",
        MasterUsername=USER,
        MasterUserPassword=PASSWORD,
        DBInstanceClass="db.t3.micro",
        AllocatedStorage=20,
        BackupRetentionPeriod=0,
        DBParameterGroupName=group,
    )
    yield rds, ident, group, wait_status(rds, ident, timeout=300)
    rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True)


def test_engine_default_parameters_are_mariadbs_catalogue(server) -> None:
    rds = server.client("rds")
    for family in (FAMILY, "mysql8.0"):
        pages = rds.get_paginator("describe_engine_default_parameters").paginate(
            DBParameterGroupFamily=family
        )
        params = {p["ParameterName"]: p for page in pages for p in page["EngineDefaults"]["Parameters"]}
        assert len(params) > 400
        assert params["max_connections"] | {"Description": ""} == {
            "ParameterName": "max_connections",
            "ParameterValue": "151",
            "Description": "",
            "Source": "engine-default",
            "ApplyType": "dynamic",
            "DataType": "integer",
            "AllowedValues": "10-100000",
            "IsModifiable": True,
            "ApplyMethod": "pending-reboot",
        }
        assert (params["back_log"]["ApplyType"], params["back_log"]["IsModifiable"]) == ("static", True)
        assert params["slow_query_log"]["AllowedValues"] == "0,1"
        assert params["long_query_time"]["DataType"] == "float"
        assert params["version"]["IsModifiable"] is False and params["datadir"]["IsModifiable"] is False


def test_modify_refuses_what_the_catalogue_refuses(maria) -> None:
    rds, _, group, _ = maria

    def modify(name: str, value: str, method: str = "immediate") -> tuple[str, str]:
        p = {"ParameterName": name, "ParameterValue": value, "ApplyMethod": method}
        return error(rds.modify_db_parameter_group, DBParameterGroupName=group, Parameters=[p])

    assert modify("no_such_variable", "1") == (
        "InvalidParameterValue",
        "Could not find parameter with name: no_such_variable",
    )
    assert modify("max_connections", "5") == (
        "InvalidParameterValue",
        "Value: 5 is outside of range: 10-100000 for parameter: max_connections",
    )
    assert modify("max_connections", "lots")[0] == "InvalidParameterValue"
    assert modify("slow_query_log", "maybe")[0] == "InvalidParameterValue"
    assert modify("binlog_format", "SOMETIMES")[0] == "InvalidParameterValue"
    assert modify("sql_mode", "ANSI,NOT_A_MODE")[0] == "InvalidParameterValue"
    assert modify("datadir", "/tmp")[0] == "InvalidParameterValue"
    assert modify("skip_grant_tables", "1", "pending-reboot")[0] == "InvalidParameterValue"
    assert modify("init_connect", "SET @a = 1\nskip-grant-tables")[0] == "InvalidParameterValue"
    assert modify("server_audit_logging", "1") == (  # Aurora MySQL's; MariaDB's is an option
        "InvalidParameterValue",
        "Could not find parameter with name: server_audit_logging",
    )
    assert modify("back_log", "100") == (
        "InvalidParameterCombination",
        "cannot use immediate apply method for static parameter",
    )
    user = rds.describe_db_parameters(DBParameterGroupName=group, Source="user")["Parameters"]
    assert user == []  # nothing refused was recorded


def test_dynamic_at_once_static_at_reboot_reset_puts_back(maria) -> None:
    rds, ident, group, inst = maria
    assert variable(inst, "max_connections") == "150"  # Strata's setting under the default group
    rds.modify_db_parameter_group(
        DBParameterGroupName=group,
        Parameters=[
            {"ParameterName": "max_connections", "ParameterValue": "123", "ApplyMethod": "immediate"},
            {"ParameterName": "long_query_time", "ParameterValue": "2.5", "ApplyMethod": "immediate"},
            {"ParameterName": "slow_query_log", "ParameterValue": "1", "ApplyMethod": "immediate"},
            {
                "ParameterName": "sql_mode",
                "ParameterValue": "ANSI_QUOTES,STRICT_ALL_TABLES",
                "ApplyMethod": "immediate",
            },
            {"ParameterName": "back_log", "ParameterValue": "77", "ApplyMethod": "pending-reboot"},
        ],
    )
    assert variable(inst, "max_connections") == "123"
    assert variable(inst, "long_query_time") == "2.500000"
    assert variable(inst, "slow_query_log") == "ON"
    assert variable(inst, "sql_mode") == "ANSI_QUOTES,STRICT_ALL_TABLES"
    assert variable(inst, "back_log") != "77"
    described = rds.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]
    assert described["DBParameterGroups"][0]["ParameterApplyStatus"] == "pending-reboot"

    rds.reboot_db_instance(DBInstanceIdentifier=ident)
    inst = wait_status(rds, ident, timeout=300)
    assert inst["DBParameterGroups"][0]["ParameterApplyStatus"] == "in-sync"
    assert variable(inst, "back_log") == "77"
    assert variable(inst, "max_connections") == "123"

    rds.reset_db_parameter_group(
        DBParameterGroupName=group,
        Parameters=[
            {"ParameterName": "max_connections", "ApplyMethod": "immediate"},
            {"ParameterName": "long_query_time", "ApplyMethod": "immediate"},
        ],
    )
    assert variable(inst, "max_connections") == "150"
    assert variable(inst, "long_query_time") == "10.000000"
    user = rds.describe_db_parameters(DBParameterGroupName=group, Source="user")["Parameters"]
    assert {p["ParameterName"]: p["ParameterValue"] for p in user} == {
        "back_log": "77",
        "slow_query_log": "1",
        "sql_mode": "ANSI_QUOTES,STRICT_ALL_TABLES",
    }


def test_mariadb_audit_plugin_option(maria) -> None:
    rds, ident, _, inst = maria
    major = ".".join(inst["EngineVersion"].split(".")[:2])
    offered = rds.describe_option_group_options(EngineName="mariadb", MajorEngineVersion=major)
    [audit] = offered["OptionGroupOptions"]
    assert audit["Name"] == "MARIADB_AUDIT_PLUGIN" and audit["PortRequired"] is False
    defaults = {s["SettingName"]: s["DefaultValue"] for s in audit["OptionGroupOptionSettings"]}
    assert (
        defaults["SERVER_AUDIT_EVENTS"] == "CONNECT,QUERY" and defaults["SERVER_AUDIT_FILE_ROTATIONS"] == "9"
    )

    group = "maria-audit"
    rds.create_option_group(
        OptionGroupName=group, EngineName="mariadb", MajorEngineVersion=major, OptionGroupDescription="d"
    )

    def include(*settings: tuple[str, str], name: str = "MARIADB_AUDIT_PLUGIN", **kw) -> dict:  # noqa: ANN003
        option = {"OptionName": name, "OptionSettings": [{"Name": n, "Value": v} for n, v in settings], **kw}
        return rds.modify_option_group(
            OptionGroupName=group, OptionsToInclude=[option], ApplyImmediately=True
        )

    def refused(*settings: tuple[str, str], **kw) -> str:  # noqa: ANN003
        with pytest.raises(ClientError) as e:
            include(*settings, **kw)
        return e.value.response["Error"]["Code"]

    assert refused(name="MEMCACHED") == "InvalidParameterCombination"
    assert refused(("SERVER_AUDIT_EVENTS", "CONNECT,NOPE")) == "InvalidParameterValue"
    assert refused(("SERVER_AUDIT_FILE_ROTATIONS", "101")) == "InvalidParameterValue"
    assert refused(("SERVER_AUDIT_FILE_PATH", "/tmp/")) == "InvalidParameterValue"
    assert refused(("NO_SUCH_SETTING", "1")) == "InvalidParameterValue"
    assert refused(("SERVER_AUDIT_INCL_USERS", "a"), ("SERVER_AUDIT_EXCL_USERS", "b")) == (
        "InvalidParameterCombination"
    )
    assert refused(Port=3306) == "InvalidParameterCombination"
    listed = rds.describe_option_groups(OptionGroupName=group)["OptionGroupsList"][0]["Options"]
    assert listed == []  # nothing refused was recorded

    made = include(("SERVER_AUDIT_EVENTS", "CONNECT,QUERY_DDL"))["OptionGroup"]["Options"]
    settings = {s["Name"]: s["Value"] for s in made[0]["OptionSettings"]}
    assert settings["SERVER_AUDIT_EVENTS"] == "CONNECT,QUERY_DDL" and settings["SERVER_AUDIT_LOGGING"] == "ON"
    rds.modify_db_instance(DBInstanceIdentifier=ident, OptionGroupName=group, ApplyImmediately=True)
    inst = wait_status(rds, ident, timeout=300)
    assert inst["OptionGroupMemberships"] == [{"OptionGroupName": group, "Status": "in-sync"}]
    assert variable(inst, "server_audit_events") == "CONNECT,QUERY_DDL"
    assert variable(inst, "server_audit_logging") == "ON"
    run(inst, "CREATE DATABASE IF NOT EXISTS audited", "CREATE TABLE audited.needle_ddl (x INT)")
    run(inst, "SELECT 'needle_select'")

    def audit_log() -> str:
        names = [
            f["LogFileName"]
            for f in rds.describe_db_log_files(DBInstanceIdentifier=ident)["DescribeDBLogFiles"]
        ]
        assert {"error/mysql-error.log", "audit/server_audit.log"} <= set(names)
        return rds.download_db_log_file_portion(
            DBInstanceIdentifier=ident, LogFileName="audit/server_audit.log", Marker="0"
        )["LogFileData"]

    log = audit_log()
    assert "needle_ddl" in log and f",{USER}," in log and "CONNECT" in log
    assert "needle_select" not in log  # QUERY_DDL only

    # a settings change reaches the running engine; the plugin survives a reboot
    include(("SERVER_AUDIT_EVENTS", "QUERY"))
    assert variable(inst, "server_audit_events") == "QUERY"
    rds.reboot_db_instance(DBInstanceIdentifier=ident)
    inst = wait_status(rds, ident, timeout=300)
    run(inst, "SELECT 'needle_after_reboot'")
    assert "needle_after_reboot" in audit_log()

    # removed: logging stops at once
    rds.modify_option_group(
        OptionGroupName=group, OptionsToRemove=["MARIADB_AUDIT_PLUGIN"], ApplyImmediately=True
    )
    assert run(inst, "SHOW GLOBAL VARIABLES LIKE 'server_audit_logging'") in (
        [],
        [("server_audit_logging", "OFF")],
    )
    run(inst, "SELECT 'needle_after_removal'")
    assert "needle_after_removal" not in audit_log()
    rds.modify_db_instance(
        DBInstanceIdentifier=ident,
        OptionGroupName=f"default:mariadb-{major.replace('.', '-')}",
        ApplyImmediately=True,
    )
    wait_status(rds, ident, timeout=300)
    rds.delete_option_group(OptionGroupName=group)


def test_slow_query_and_general_logs(maria) -> None:
    rds, ident, group, inst = maria
    rds.modify_db_parameter_group(
        DBParameterGroupName=group,
        Parameters=[
            {"ParameterName": "slow_query_log", "ParameterValue": "1", "ApplyMethod": "immediate"},
            {"ParameterName": "long_query_time", "ParameterValue": "0", "ApplyMethod": "immediate"},
            {"ParameterName": "general_log", "ParameterValue": "1", "ApplyMethod": "immediate"},
        ],
    )
    run(inst, "SELECT 'needle_logged_query'")
    for name in ("slowquery/mysql-slowquery.log", "general/mysql-general.log"):
        listed = rds.describe_db_log_files(DBInstanceIdentifier=ident, FilenameContains=name)[
            "DescribeDBLogFiles"
        ]
        assert [f["LogFileName"] for f in listed] == [name] and listed[0]["Size"] > 0
        data = rds.download_db_log_file_portion(DBInstanceIdentifier=ident, LogFileName=name)["LogFileData"]
        assert "needle_logged_query" in data, name


def test_aurora_mysql_advanced_auditing_parameters(server) -> None:
    """Also: groups of AWS's family (what CDK and Terraform send) on a cluster of AWS's version."""
    rds = server.client("rds")
    cid, group, own = "amy-audit", "amy-audit-params", "amy-instance-params"
    family = "aurora-mysql8.0"
    rds.create_db_cluster_parameter_group(
        DBClusterParameterGroupName=group, DBParameterGroupFamily=family, Description="d"
    )
    rds.create_db_parameter_group(DBParameterGroupName=own, DBParameterGroupFamily=family, Description="d")
    rds.modify_db_parameter_group(
        DBParameterGroupName=own,
        Parameters=[{"ParameterName": "max_connections", "ParameterValue": "66", "ApplyMethod": "immediate"}],
    )
    rds.create_db_parameter_group(
        DBParameterGroupName="my80", DBParameterGroupFamily="mysql8.0", Description="d"
    )
    with pytest.raises(ClientError) as e:
        rds.modify_db_cluster_parameter_group(
            DBClusterParameterGroupName=group,
            Parameters=[
                {"ParameterName": "server_audit_events", "ParameterValue": "NOPE", "ApplyMethod": "immediate"}
            ],
        )
    assert e.value.response["Error"]["Code"] == "InvalidParameterValue"
    rds.modify_db_cluster_parameter_group(
        DBClusterParameterGroupName=group,
        Parameters=[
            {"ParameterName": "server_audit_logging", "ParameterValue": "1", "ApplyMethod": "immediate"},
            {
                "ParameterName": "server_audit_events",
                "ParameterValue": "CONNECT,QUERY",
                "ApplyMethod": "immediate",
            },
        ],
    )
    cluster = rds.create_db_cluster(
        DBClusterIdentifier=cid,
        Engine="aurora-mysql",
        EngineVersion="8.0.mysql_aurora.3.05.2",
        MasterUsername=USER,
        MasterUserPassword=PASSWORD,
        DBClusterParameterGroupName=group,
    )["DBCluster"]
    assert cluster["EngineVersion"] == "8.0.mysql_aurora.3.05.2"
    assert cluster["DBClusterParameterGroup"] == group
    ident = f"w-{cid}"
    member = {"DBInstanceIdentifier": ident, "DBClusterIdentifier": cid, "Engine": "aurora-mysql"}
    # a group of another family: AWS's error
    assert error(
        rds.create_db_instance, **member, DBInstanceClass="db.r6g.large", DBParameterGroupName="my80"
    ) == (
        "InvalidParameterCombination",
        "The parameter group my80 with DBParameterGroupFamily mysql8.0 can't be used for this instance. "
        "Use a parameter group with DBParameterGroupFamily aurora-mysql8.0.",
    )
    rds.create_db_instance(**member, DBInstanceClass="db.r6g.large", DBParameterGroupName=own)
    inst = wait_status(rds, ident, timeout=300)
    assert inst["EngineVersion"] == "8.0.mysql_aurora.3.05.2"
    assert [g["DBParameterGroupName"] for g in inst["DBParameterGroups"]] == [own]
    assert variable(inst, "max_connections") == "66"  # the instance's group, over the cluster's
    run(inst, "SELECT 'needle_aurora_audit'")
    log = rds.download_db_log_file_portion(DBInstanceIdentifier=ident, LogFileName="audit/server_audit.log")
    assert "needle_aurora_audit" in log["LogFileData"]
    rds.delete_db_instance(
        DBInstanceIdentifier=ident, SkipFinalSnapshot=True
    )  # (the cluster goes with the server)


def test_error_log_hourly_files_follow_the_simulated_clock(server, maria) -> None:
    rds, ident, _, inst = maria
    # PostgreSQL beside it, keeping its logs one day (rds.log_retention_period; 3 days by default)
    rds.create_db_parameter_group(
        DBParameterGroupName="pg-logs", DBParameterGroupFamily="postgres18", Description="d"
    )
    rds.modify_db_parameter_group(
        DBParameterGroupName="pg-logs",
        Parameters=[
            {
                "ParameterName": "rds.log_retention_period",
                "ParameterValue": "1440",
                "ApplyMethod": "immediate",
            }
        ],
    )
    create_pg(rds, "pg-logs", BackupRetentionPeriod=0, DBParameterGroupName="pg-logs")

    def pg_files() -> list[str]:
        return [
            f["LogFileName"]
            for f in rds.describe_db_log_files(DBInstanceIdentifier="pg-logs")["DescribeDBLogFiles"]
        ]

    [pg_first] = pg_files()

    def files() -> dict[str, dict]:
        listed = rds.describe_db_log_files(DBInstanceIdentifier=ident, FilenameContains="error/")
        return {f["LogFileName"]: f for f in listed["DescribeDBLogFiles"]}

    def content(name: str) -> str:
        return rds.download_db_log_file_portion(DBInstanceIdentifier=ident, LogFileName=name, Marker="0")[
            "LogFileData"
        ]

    before = files()
    assert "error/mysql-error.log" in before
    server.advance_clock("1h")
    # an error the engine logs in the new hour (a denied login) goes to the new current file
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(
            host=inst["Endpoint"]["Address"], port=inst["Endpoint"]["Port"], user="nobody_here", password="x"
        )
    after = files()
    # in listing order, oldest first (two if a real hour also began meanwhile: the clock runs on)
    past = [n for n in after if n not in before and n != "error/mysql-error.log"]
    assert 1 <= len(past) <= 2 and all(n.startswith("error/mysql-error-running.log.") for n in past)
    assert "ready for connections" in content(past[0])
    assert "ready for connections" not in content("error/mysql-error.log")
    assert after[past[0]]["LastWritten"] < after["error/mysql-error.log"]["LastWritten"]
    # PostgreSQL's hour is a file of its own now, named for it; what the server wrote starting is in it
    assert pg_files()[0] == pg_first and re.fullmatch(
        r"error/postgresql\.log\.\d{4}-\d\d-\d\d-\d\d", pg_first
    )
    started = rds.download_db_log_file_portion(
        DBInstanceIdentifier="pg-logs", LogFileName=pg_first, Marker="0"
    )
    assert "ready to accept connections" in started["LogFileData"]
    # MariaDB's hourly files are kept 24 hours, PostgreSQL's here too (its parameter group)
    server.advance_clock("25h")
    assert past[0] not in files() and "error/mysql-error.log" in files()
    assert pg_first not in pg_files()


def test_mysql_instance_of_aws_version_in_mysql80_group(server, maria) -> None:
    """CDK/Terraform's mysql: EngineVersion 8.0.35 and a group of family mysql8.0, run by MariaDB;
    a group of another family is refused with AWS's error, at creation and modification."""
    rds, maria_ident, _, _ = maria
    group, ident = "my80-params", "my80"
    rds.create_db_parameter_group(
        DBParameterGroupName=group, DBParameterGroupFamily="mysql8.0", Description="d"
    )
    rds.modify_db_parameter_group(
        DBParameterGroupName=group,
        Parameters=[{"ParameterName": "max_connections", "ParameterValue": "55", "ApplyMethod": "immediate"}],
    )
    code, message = error(
        rds.modify_db_instance, DBInstanceIdentifier=maria_ident, DBParameterGroupName=group
    )
    assert (code, message) == (
        "InvalidParameterCombination",
        f"The parameter group {group} with DBParameterGroupFamily mysql8.0 can't be used for this instance. "
        f"Use a parameter group with DBParameterGroupFamily {FAMILY}.",
    )
    args = {
        "DBInstanceIdentifier": ident,
        "Engine": "mysql",
        "MasterUsername": USER,
        "MasterUserPassword": PASSWORD,
        "DBInstanceClass": "db.t3.micro",
        "AllocatedStorage": 20,
        "BackupRetentionPeriod": 0,
    }
    assert error(rds.create_db_instance, **args, EngineVersion="8.4.6", DBParameterGroupName=group)[
        1
    ].endswith("Use a parameter group with DBParameterGroupFamily mysql8.4.")
    assert error(rds.create_db_instance, **args, EngineVersion="10.11")[0] == "InvalidParameterCombination"
    rds.create_db_instance(**args, EngineVersion="8.0.35", DBParameterGroupName=group)
    inst = wait_status(rds, ident, timeout=300)
    assert inst["EngineVersion"] == "8.0.35"
    assert inst["DBParameterGroups"] == [{"DBParameterGroupName": group, "ParameterApplyStatus": "in-sync"}]
    assert variable(inst, "max_connections") == "55"
    rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True)


def audit_logging(inst: dict) -> bool:
    """Does the running engine audit (the MARIADB_AUDIT_PLUGIN option's plugin loaded, logging)?"""
    return run(inst, "SHOW GLOBAL VARIABLES LIKE 'server_audit_logging'") == [("server_audit_logging", "ON")]


def test_option_group_change_waits_for_the_maintenance_window(server, maria) -> None:
    """ModifyOptionGroup without ApplyImmediately: the group shows its new options at once, its
    instance runs the ones before (through a restart) until its maintenance window opens on the
    simulated clock, or a ModifyDBInstance with ApplyImmediately; with it, the engine changes at
    once. Last in the module: it restarts the server and moves the clock."""
    rds, ident, _, inst = maria
    major = ".".join(inst["EngineVersion"].split(".")[:2])
    group = "maria-held-options"
    rds.create_option_group(
        OptionGroupName=group, EngineName="mariadb", MajorEngineVersion=major, OptionGroupDescription="d"
    )
    rds.modify_db_instance(DBInstanceIdentifier=ident, OptionGroupName=group, ApplyImmediately=True)
    wait_status(rds, ident, timeout=300)
    # a window opening between one and two hours from now
    now = dt.datetime.fromisoformat(server.admin("/_strata/clock")["now"])
    opens = now + dt.timedelta(hours=2)
    day, hour = opens.strftime("%a").lower(), opens.hour
    rds.modify_db_instance(
        DBInstanceIdentifier=ident,
        PreferredMaintenanceWindow=f"{day}:{hour:02d}:00-{day}:{hour:02d}:30",
        PreferredBackupWindow=f"{(hour + 12) % 24:02d}:00-{(hour + 12) % 24:02d}:30",
    )
    inst = wait_status(rds, ident, timeout=300)
    assert not audit_logging(inst)

    # Without ApplyImmediately: the group changed, the engine not; the membership is pending.
    audit = {
        "OptionName": "MARIADB_AUDIT_PLUGIN",
        "OptionSettings": [{"Name": "SERVER_AUDIT_EVENTS", "Value": "CONNECT"}],
    }
    out = rds.modify_option_group(OptionGroupName=group, OptionsToInclude=[audit], ApplyImmediately=False)
    listed = rds.describe_option_groups(OptionGroupName=group)["OptionGroupsList"][0]
    for shown in (out["OptionGroup"], listed):
        assert [o["OptionName"] for o in shown["Options"]] == ["MARIADB_AUDIT_PLUGIN"]
    inst = wait_status(rds, ident)
    assert inst["OptionGroupMemberships"] == [
        {"OptionGroupName": group, "Status": "pending-maintenance-apply"}
    ]
    assert inst["PendingModifiedValues"] == {}
    assert not audit_logging(inst)
    assert not maintenance(server.advance_clock("30m")).get("applied")  # the window has not opened

    # A restart starts the engine with what it ran before; the change stays held.
    server.restart()
    rds = server.client("rds")
    inst = wait_status(rds, ident, timeout=300)
    assert not audit_logging(inst)
    assert inst["OptionGroupMemberships"][0]["Status"] == "pending-maintenance-apply"

    # Past the window's opening: the plugin is loaded, the membership in sync.
    assert applied_after(server, "2h") == 1
    inst = wait_status(rds, ident, timeout=300)
    assert audit_logging(inst) and variable(inst, "server_audit_events") == "CONNECT"
    assert inst["OptionGroupMemberships"] == [{"OptionGroupName": group, "Status": "in-sync"}]

    # With ApplyImmediately: at once.
    audit["OptionSettings"] = [{"Name": "SERVER_AUDIT_EVENTS", "Value": "QUERY"}]
    rds.modify_option_group(OptionGroupName=group, OptionsToInclude=[audit], ApplyImmediately=True)
    assert variable(inst, "server_audit_events") == "QUERY"
    assert wait_status(rds, ident)["OptionGroupMemberships"][0]["Status"] == "in-sync"

    # A held removal is applied by a ModifyDBInstance with ApplyImmediately, as other held changes.
    rds.modify_option_group(OptionGroupName=group, OptionsToRemove=["MARIADB_AUDIT_PLUGIN"])
    assert audit_logging(inst)
    assert wait_status(rds, ident)["OptionGroupMemberships"][0]["Status"] == "pending-maintenance-apply"
    # (putting back what the engine runs cancels the held change)
    rds.modify_option_group(OptionGroupName=group, OptionsToInclude=[audit])
    assert wait_status(rds, ident)["OptionGroupMemberships"][0]["Status"] == "in-sync"
    rds.modify_option_group(OptionGroupName=group, OptionsToRemove=["MARIADB_AUDIT_PLUGIN"])
    rds.modify_db_instance(DBInstanceIdentifier=ident, ApplyImmediately=True)
    inst = wait_status(rds, ident, timeout=300)
    assert not audit_logging(inst)
    assert inst["OptionGroupMemberships"] == [{"OptionGroupName": group, "Status": "in-sync"}]

    rds.modify_db_instance(
        DBInstanceIdentifier=ident,
        OptionGroupName=f"default:mariadb-{major.replace('.', '-')}",
        ApplyImmediately=True,
    )
    wait_status(rds, ident, timeout=300)
    rds.delete_option_group(OptionGroupName=group)
