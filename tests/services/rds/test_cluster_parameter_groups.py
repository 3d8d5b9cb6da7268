"""DB cluster parameter groups (and CopyDBParameterGroup): AWS's errors, and a cluster's group on
its members' real engines (dynamic parameters at once, static ones at the next reboot)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.services.rds.helpers import eventually, wait_status
from tests.services.rds.test_aurora import cluster_connect, describe, pg_cluster


def _family(rds) -> str:  # noqa: ANN001
    return rds.describe_db_engine_versions(Engine="aurora-postgresql")["DBEngineVersions"][0][
        "DBParameterGroupFamily"
    ]


def _error(call, **kw) -> tuple[str, int]:  # noqa: ANN001, ANN003
    with pytest.raises(ClientError) as info:
        call(**kw)
    err = info.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def test_cluster_parameter_group_api_and_errors(strata_server, unique: str) -> None:
    rds = strata_server.client("rds")
    family = _family(rds)
    name = f"cpg-{unique}"
    made = rds.create_db_cluster_parameter_group(
        DBClusterParameterGroupName=name, DBParameterGroupFamily=family, Description="d"
    )["DBClusterParameterGroup"]
    assert made["DBClusterParameterGroupArn"].endswith(f":cluster-pg:{name}")
    assert _error(
        rds.create_db_cluster_parameter_group,
        DBClusterParameterGroupName=name,
        DBParameterGroupFamily=family,
        Description="d",
    ) == ("DBParameterGroupAlreadyExists", 400)
    assert _error(rds.describe_db_cluster_parameter_groups, DBClusterParameterGroupName=f"nope-{unique}") == (
        "DBParameterGroupNotFound",
        404,
    )
    # a DB parameter group of the same name is another resource
    assert (
        _error(rds.describe_db_parameter_groups, DBParameterGroupName=name)[0] == "DBParameterGroupNotFound"
    )

    def modify(**p: str) -> None:
        rds.modify_db_cluster_parameter_group(DBClusterParameterGroupName=name, Parameters=[p])

    assert _error(modify, ParameterName="no_such_thing", ParameterValue="1", ApplyMethod="immediate") == (
        "InvalidParameterValue",
        400,
    )
    assert _error(modify, ParameterName="max_connections", ParameterValue="50", ApplyMethod="immediate") == (
        "InvalidParameterCombination",
        400,
    )
    modify(ParameterName="work_mem", ParameterValue="7MB", ApplyMethod="immediate")
    modify(ParameterName="max_connections", ParameterValue="50", ApplyMethod="pending-reboot")
    user = rds.describe_db_cluster_parameters(DBClusterParameterGroupName=name, Source="user")["Parameters"]
    assert {p["ParameterName"]: (p["ParameterValue"], p["ApplyType"]) for p in user} == {
        "max_connections": ("50", "static"),
        "work_mem": ("7MB", "dynamic"),
    }
    defaults = rds.describe_engine_default_cluster_parameters(DBParameterGroupFamily=family)["EngineDefaults"]
    assert defaults["DBParameterGroupFamily"] == family
    paginator = rds.get_paginator("describe_engine_default_cluster_parameters")
    everything = [
        p
        for pg in paginator.paginate(DBParameterGroupFamily=family)
        for p in pg["EngineDefaults"]["Parameters"]
    ]
    by_name = {p["ParameterName"]: p for p in everything}
    assert (
        by_name["shared_buffers"]["ApplyType"] == "static" and by_name["work_mem"]["ApplyType"] == "dynamic"
    )

    copy = f"cpg-copy-{unique}"
    rds.copy_db_cluster_parameter_group(
        SourceDBClusterParameterGroupIdentifier=made["DBClusterParameterGroupArn"],
        TargetDBClusterParameterGroupIdentifier=copy,
        TargetDBClusterParameterGroupDescription="copied",
    )
    copied = rds.describe_db_cluster_parameters(DBClusterParameterGroupName=copy, Source="user")["Parameters"]
    assert {p["ParameterName"] for p in copied} == {"max_connections", "work_mem"}
    assert (
        _error(
            rds.copy_db_cluster_parameter_group,
            SourceDBClusterParameterGroupIdentifier=name,
            TargetDBClusterParameterGroupIdentifier=copy,
            TargetDBClusterParameterGroupDescription="again",
        )[0]
        == "DBParameterGroupAlreadyExists"
    )
    rds.reset_db_cluster_parameter_group(DBClusterParameterGroupName=copy, ResetAllParameters=True)
    assert (
        rds.describe_db_cluster_parameters(DBClusterParameterGroupName=copy, Source="user")["Parameters"]
        == []
    )
    rds.delete_db_cluster_parameter_group(DBClusterParameterGroupName=copy)
    assert (
        _error(rds.delete_db_cluster_parameter_group, DBClusterParameterGroupName=f"default.{family}")[0]
        == "InvalidDBParameterGroupState"
    )

    # a cluster names an existing group of its own family
    assert _error(
        rds.create_db_cluster,
        DBClusterIdentifier=f"c-{unique}",
        Engine="aurora-postgresql",
        MasterUsername="master",
        MasterUserPassword="Secret-pass-123",
        DBClusterParameterGroupName=f"nope-{unique}",
    ) == ("DBParameterGroupNotFound", 404)
    mysql = f"cpg-mysql-{unique}"
    rds.create_db_cluster_parameter_group(
        DBClusterParameterGroupName=mysql, DBParameterGroupFamily="aurora-mysql8.0", Description="d"
    )
    assert (
        _error(
            rds.create_db_cluster,
            DBClusterIdentifier=f"c-{unique}",
            Engine="aurora-postgresql",
            MasterUsername="master",
            MasterUserPassword="Secret-pass-123",
            DBClusterParameterGroupName=mysql,
        )[0]
        == "InvalidParameterCombination"
    )

    # CopyDBParameterGroup: the DB parameter group counterpart
    src = f"pg-{unique}"
    rds.create_db_parameter_group(
        DBParameterGroupName=src, DBParameterGroupFamily="postgres18", Description="d"
    )
    rds.modify_db_parameter_group(
        DBParameterGroupName=src,
        Parameters=[{"ParameterName": "work_mem", "ParameterValue": "3MB", "ApplyMethod": "immediate"}],
    )
    out = rds.copy_db_parameter_group(
        SourceDBParameterGroupIdentifier=src,
        TargetDBParameterGroupIdentifier=f"pg-copy-{unique}",
        TargetDBParameterGroupDescription="copied",
    )["DBParameterGroup"]
    assert out["DBParameterGroupFamily"] == "postgres18"
    params = rds.describe_db_parameters(DBParameterGroupName=f"pg-copy-{unique}", Source="user")["Parameters"]
    assert [(p["ParameterName"], p["ParameterValue"]) for p in params] == [("work_mem", "3MB")]
    assert _error(
        rds.copy_db_parameter_group,
        SourceDBParameterGroupIdentifier=f"nope-{unique}",
        TargetDBParameterGroupIdentifier=f"pg-x-{unique}",
        TargetDBParameterGroupDescription="d",
    ) == ("DBParameterGroupNotFound", 404)
    for g in (src, f"pg-copy-{unique}"):
        rds.delete_db_parameter_group(DBParameterGroupName=g)
    for g in (name, mysql):
        rds.delete_db_cluster_parameter_group(DBClusterParameterGroupName=g)


def test_cluster_parameter_group_reaches_every_member(strata_server, unique: str) -> None:
    rds = strata_server.client("rds")
    name = f"cpg-live-{unique}"
    rds.create_db_cluster_parameter_group(
        DBClusterParameterGroupName=name, DBParameterGroupFamily=_family(rds), Description="d"
    )
    rds.modify_db_cluster_parameter_group(
        DBClusterParameterGroupName=name,
        Parameters=[
            {"ParameterName": "work_mem", "ParameterValue": "5MB", "ApplyMethod": "immediate"},
            {"ParameterName": "lock_timeout", "ParameterValue": "3s", "ApplyMethod": "immediate"},
        ],
    )
    # an instance's own DB parameter group wins over its cluster's for the parameters it sets
    own = f"own-{unique}"
    rds.create_db_parameter_group(
        DBParameterGroupName=own, DBParameterGroupFamily=_family(rds), Description="d"
    )
    rds.modify_db_parameter_group(
        DBParameterGroupName=own,
        Parameters=[{"ParameterName": "lock_timeout", "ParameterValue": "4s", "ApplyMethod": "immediate"}],
    )
    cid = f"cpg-cluster-{unique}"
    writer, reader = f"w-{unique}", f"r-{unique}"
    cluster = pg_cluster(rds, cid, [writer], "db.t3.medium", DBClusterParameterGroupName=name)
    assert cluster["DBClusterParameterGroup"] == name
    rds.create_db_instance(
        DBInstanceIdentifier=reader,
        DBClusterIdentifier=cid,
        Engine="aurora-postgresql",
        DBInstanceClass="db.t3.medium",
        DBParameterGroupName=own,
    )
    wait_status(rds, reader)

    def show(setting: str, use_reader: bool = False) -> str:
        with cluster_connect(cluster, reader=use_reader) as conn:
            return conn.execute(f"SHOW {setting}").fetchone()[0]

    assert show("work_mem") == "5MB" and show("work_mem", use_reader=True) == "5MB"
    assert show("lock_timeout") == "3s" and show("lock_timeout", use_reader=True) == "4s"
    assert _error(rds.delete_db_cluster_parameter_group, DBClusterParameterGroupName=name) == (
        "InvalidDBParameterGroupState",
        400,
    )
    default_connections = show("max_connections")
    rds.modify_db_cluster_parameter_group(
        DBClusterParameterGroupName=name,
        Parameters=[
            {"ParameterName": "work_mem", "ParameterValue": "9MB", "ApplyMethod": "immediate"},
            {"ParameterName": "max_connections", "ParameterValue": "61", "ApplyMethod": "pending-reboot"},
        ],
    )
    assert eventually(lambda: show("work_mem") == "9MB" and show("work_mem", use_reader=True) == "9MB", 30)
    assert show("max_connections") == default_connections  # static: waits for the reboot
    statuses = {
        m["DBInstanceIdentifier"]: m["DBClusterParameterGroupStatus"]
        for m in describe(rds, cid)["DBClusterMembers"]
    }
    assert statuses == {writer: "pending-reboot", reader: "pending-reboot"}

    rds.reboot_db_instance(DBInstanceIdentifier=writer)
    assert eventually(lambda: show("max_connections") == "61", 120)
    wait_status(rds, writer)
    statuses = {
        m["DBInstanceIdentifier"]: m["DBClusterParameterGroupStatus"]
        for m in describe(rds, cid)["DBClusterMembers"]
    }
    assert statuses == {writer: "in-sync", reader: "pending-reboot"}

    for ident in (reader, writer):
        rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True)
    for ident in (reader, writer):
        rds.get_waiter("db_instance_deleted").wait(
            DBInstanceIdentifier=ident, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
    rds.delete_db_cluster(DBClusterIdentifier=cid, SkipFinalSnapshot=True)
    rds.delete_db_cluster_parameter_group(DBClusterParameterGroupName=name)
    rds.delete_db_parameter_group(DBParameterGroupName=own)
