"""The engine's own parameter catalogue: names, defaults, types and whether a change needs a restart.

PostgreSQL describes every setting it has (`postgres --describe-config`, no server needed): a
`postmaster` one is static in RDS's terms (applied at the next reboot), an `internal` one cannot be
set at all, the rest are dynamic.

MariaDB (which runs Strata's mariadb, mysql and aurora-mysql families) has no offline description,
so its catalogue is `mariadb_params.json`, read from the server's own
`information_schema.SYSTEM_VARIABLES` by `scripts/mariadb_param_catalogue.py`: a READ_ONLY variable
is static (it can only be set in the configuration, so at the next reboot), one without a
command-line form cannot be set at all, the rest are dynamic (SET GLOBAL). Its values are checked
against the variable's type, range and allowed values, as RDS checks them before accepting them.
"""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path

from strata.engines.postgres import pg_bin, pg_installations

_TYPES = {"BOOLEAN": "boolean", "INTEGER": "integer", "REAL": "float", "STRING": "string", "ENUM": "string"}
_MY_TYPES = {
    "BOOLEAN": "boolean",
    "INT": "integer",
    "INT UNSIGNED": "integer",
    "BIGINT": "integer",
    "BIGINT UNSIGNED": "integer",
    "DOUBLE": "float",
}
MARIADB_CATALOGUE = Path(__file__).with_name("mariadb_params.json")
MARIADB_FAMILIES = ("mariadb", "mysql", "aurora-mysql")
# Strata owns these for the endpoint, replication, backups, RDS's log files and the server's own
# files and security (no user may point the server at other files or turn off its grants): not
# modifiable, as on RDS, where file locations and replication are the service's.
MARIADB_OWNED = {
    "basedir",
    "bind_address",
    "character_sets_dir",
    "datadir",
    "extra_port",
    "ft_stopword_file",
    "general_log_file",
    "gtid_domain_id",
    "init_file",
    "innodb_buffer_pool_filename",
    "innodb_data_home_dir",
    "innodb_log_group_home_dir",
    "innodb_read_only",
    "innodb_tmpdir",
    "innodb_undo_directory",
    "lc_messages_dir",
    "log_bin",
    "log_bin_basename",
    "log_bin_index",
    "log_error",
    "log_slave_updates",
    "log_slow_query_file",
    "pid_file",
    "plugin_dir",
    "plugin_maturity",
    "port",
    "read_only",
    "relay_log",
    "relay_log_info_file",
    "report_host",
    "report_password",
    "report_port",
    "report_user",
    "rpl_semi_sync_master_enabled",
    "rpl_semi_sync_master_timeout",
    "rpl_semi_sync_master_wait_point",
    "rpl_semi_sync_slave_enabled",
    "secure_file_priv",
    "server_id",
    "skip_grant_tables",
    "skip_networking",
    "slave_load_tmpdir",
    "slow_query_log_file",
    "socket",
    "ssl_ca",
    "ssl_capath",
    "ssl_cert",
    "ssl_crl",
    "ssl_crlpath",
    "ssl_key",
    "tmpdir",
}
# RDS's own parameters of PostgreSQL families (a dotted name is a custom setting to PostgreSQL, so
# it may sit in the engine's configuration harmlessly); Strata reads them itself.
RDS_PG_PARAMS = {
    "rds.log_retention_period": {
        "ParameterName": "rds.log_retention_period",
        "ParameterValue": "4320",
        "Description": "Amazon RDS for PostgreSQL will delete database logs that are older than N minutes.",
        "Source": "system",
        "ApplyType": "dynamic",
        "DataType": "integer",
        "AllowedValues": "1440-10080",
        "IsModifiable": True,
        "ApplyMethod": "pending-reboot",
    }
}
BOOLEAN_VALUES = {"0": "0", "1": "1", "off": "0", "on": "1", "false": "0", "true": "1"}


@functools.cache
def _pg_catalogue(major: str | None) -> dict[str, dict]:
    out = subprocess.run(
        [pg_bin("postgres", major), "--describe-config"], capture_output=True, text=True, check=True
    ).stdout
    params: dict[str, dict] = {}
    for line in out.splitlines():
        cols = line.split("\t")
        if len(cols) < 8:
            continue
        name, context, _group, kind, default, lo, hi, desc = cols[:8]
        entry = {
            "ParameterName": name,
            "Description": desc,
            "Source": "engine-default",
            "ApplyType": "static" if context == "postmaster" else "dynamic",
            "DataType": _TYPES.get(kind, "string"),
            "IsModifiable": context != "internal",
            "ApplyMethod": "pending-reboot",
        }
        if default:
            entry["ParameterValue"] = default
        if lo and hi:
            entry["AllowedValues"] = f"{lo}-{hi}"
        params[name] = entry
    params.update(RDS_PG_PARAMS)
    return params


@functools.cache
def _mariadb() -> tuple[dict[str, dict], dict[str, str]]:
    """The catalogue, and the variables whose value is a list (SET) or of flags (FLAGSET)."""
    data = json.loads(MARIADB_CATALOGUE.read_text())
    cols = data["columns"]
    params: dict[str, dict] = {}
    lists: dict[str, str] = {}
    for row in data["variables"]:
        v = dict(zip(cols, row, strict=True))
        name, kind = v["variable_name"], v["variable_type"]
        entry = {
            "ParameterName": name,
            "Description": v["variable_comment"] or name,
            "Source": "engine-default",
            "ApplyType": "static" if v["read_only"] == "YES" else "dynamic",
            "DataType": _MY_TYPES.get(kind, "string"),
            "IsModifiable": v["command_line_argument"] is not None and name not in MARIADB_OWNED,
            "ApplyMethod": "pending-reboot",
        }
        if v["default_value"] not in (None, ""):
            entry["ParameterValue"] = v["default_value"]
        if kind == "BOOLEAN":
            entry["AllowedValues"] = "0,1"
        elif v["numeric_min_value"] is not None and v["numeric_max_value"] is not None:
            lo, hi = v["numeric_min_value"], v["numeric_max_value"]
            if kind == "DOUBLE":
                lo, hi = (f"{float(x):f}".rstrip("0").rstrip(".") for x in (lo, hi))
            entry["AllowedValues"] = f"{lo}-{hi}"
        elif v["enum_value_list"]:
            entry["AllowedValues"] = v["enum_value_list"]
            if kind in ("SET", "FLAGSET"):
                lists[name] = kind
        params[name] = entry
    return params, lists


def _audit_param(name: str, kind: str, allowed: str | None, description: str) -> dict:
    entry = {
        "ParameterName": name,
        "Description": description,
        "Source": "engine-default",
        "ApplyType": "dynamic",
        "DataType": kind,
        "IsModifiable": True,
        "ApplyMethod": "pending-reboot",
    }
    if allowed:
        entry["AllowedValues"] = allowed
    return entry


# Aurora MySQL's Advanced Auditing: parameters of its (cluster) parameter groups, run by MariaDB's
# audit plugin (`server_audit`, loaded when a group sets one: parameter_groups.py).
AURORA_AUDIT_PARAMS = {
    "server_audit_logging": _audit_param("server_audit_logging", "boolean", "0,1", "Enables audit logging."),
    "server_audit_events": _audit_param(
        "server_audit_events",
        "string",
        "CONNECT,QUERY,QUERY_DCL,QUERY_DDL,QUERY_DML,TABLE",
        "The events to record in the audit log.",
    ),
    "server_audit_incl_users": _audit_param(
        "server_audit_incl_users", "string", None, "Only these users' activity is recorded."
    ),
    "server_audit_excl_users": _audit_param(
        "server_audit_excl_users", "string", None, "These users' activity is not recorded."
    ),
}
_LISTS = {"server_audit_events": "SET"}


@functools.cache
def _aurora_mysql() -> dict[str, dict]:
    return {**_mariadb()[0], **AURORA_AUDIT_PARAMS}


def catalogue(family: str) -> dict[str, dict] | None:
    """The engine's parameters of a parameter group family (postgres18, mariadb10.11, mysql8.0 ...)
    by name, as DescribeEngineDefaultParameters lists them; None when the engine has no catalogue."""
    if family.startswith("aurora-mysql"):
        return _aurora_mysql()
    if family.startswith(MARIADB_FAMILIES):
        return _mariadb()[0]
    if not family.startswith(("postgres", "aurora-postgresql")):
        return None
    major = "".join(ch for ch in family if ch.isdigit()) or None
    if major not in pg_installations():
        major = None  # a family of a version Strata does not run: the installed server's settings
    return _pg_catalogue(major)


def check_value(family: str, entry: dict, value: str) -> str:
    """The value to give the engine for `value` of a MariaDB-family parameter (booleans as 0/1), or
    ValueError with RDS's reason when the parameter's type, range or allowed values refuse it.
    PostgreSQL's values (with units: `work_mem=7MB`) are left to the engine, RDS's own checked."""
    if any(ch in value for ch in "\n\r\x00"):  # one line of the engine's configuration file
        raise ValueError(f"Value: {value!r} is not valid for parameter: {entry['ParameterName']}")
    if not family.startswith(MARIADB_FAMILIES) and entry["ParameterName"] not in RDS_PG_PARAMS:
        return value
    name, kind, allowed = entry["ParameterName"], entry["DataType"], entry.get("AllowedValues")
    if kind == "boolean":
        if value.lower() not in BOOLEAN_VALUES:
            raise ValueError(f"Value: {value} is not allowed for parameter: {name}. Allowed values: 0,1")
        return BOOLEAN_VALUES[value.lower()]
    if kind in ("integer", "float"):
        try:
            number = int(value) if kind == "integer" else float(value)
        except ValueError:
            raise ValueError(f"Value: {value} is not a valid {kind} for parameter: {name}") from None
        if allowed:
            lo, _, hi = allowed.rpartition("-") if allowed.startswith("-") else allowed.partition("-")
            if not float(lo) <= number <= float(hi):
                raise ValueError(f"Value: {value} is outside of range: {allowed} for parameter: {name}")
        return value
    if allowed:
        choices = {c.lower() for c in allowed.split(",")}
        multi = _mariadb()[1].get(name) or _LISTS.get(name)
        items = [i.strip() for i in value.split(",") if i.strip()] if multi else [value]
        for item in items:
            key = item.split("=")[0] if multi == "FLAGSET" else item
            ok = key.lower() in choices or (multi == "FLAGSET" and key.lower() == "default")
            if multi == "FLAGSET" and "=" in item:
                ok = ok and item.split("=", 1)[1].lower() in ("on", "off", "default")
            if not ok:
                raise ValueError(
                    f"Value: {value} is not allowed for parameter: {name}. Allowed values: {allowed}"
                )
    return value
