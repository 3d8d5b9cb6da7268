"""RDS names checked as RDS checks them (no engine starts: every call here is refused or makes a
record only): identifiers, DBName/DatabaseName, parameter group and subnet group names."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError


@pytest.fixture
def rds(strata_server):
    return strata_server.client("rds")


def refused(call, **kwargs) -> str:
    with pytest.raises(ClientError) as e:
        call(**kwargs)
    assert e.value.response["Error"]["Code"] == "InvalidParameterValue", e.value.response["Error"]
    return e.value.response["Error"]["Message"]


def instance(ident: str, engine: str = "postgres", **kw) -> dict:
    return {
        "DBInstanceIdentifier": ident,
        "Engine": engine,
        "MasterUsername": "master",
        "MasterUserPassword": "Secret-pass-123",
        "DBInstanceClass": "db.t3.micro",
        "AllocatedStorage": 20,
        **kw,
    }


def test_identifiers_follow_rds_rules(rds, unique: str) -> None:
    for bad in ("1db", "db--x", "db-", "db_x", "d" * 64):
        message = refused(rds.create_db_instance, **instance(bad))
        assert message.startswith("The parameter DBInstanceIdentifier is not a valid identifier.")
    refused(
        rds.create_db_cluster,
        DBClusterIdentifier="c" * 64,
        Engine="aurora-postgresql",
        MasterUsername="master",
        MasterUserPassword="Secret-pass-123",
    )
    # snapshot identifiers may be up to 255 characters long
    cid = f"names-{unique}"
    rds.create_db_cluster(
        DBClusterIdentifier=cid,
        Engine="aurora-postgresql",
        MasterUsername="master",
        MasterUserPassword="Secret-pass-123",
    )
    try:
        with pytest.raises(ClientError) as e:
            rds.create_db_cluster_snapshot(DBClusterIdentifier=cid, DBClusterSnapshotIdentifier="s" * 200)
        assert e.value.response["Error"]["Code"] == "InvalidDBClusterStateFault"  # the name passed
        refused(
            rds.create_db_cluster_snapshot, DBClusterIdentifier=cid, DBClusterSnapshotIdentifier="s" * 256
        )
        # a deletion says whether it wants a final snapshot, as RDS requires
        with pytest.raises(ClientError) as e:
            rds.delete_db_cluster(DBClusterIdentifier=cid)
        assert e.value.response["Error"] == {
            "Type": "Sender",
            "Code": "InvalidParameterCombination",
            "Message": "FinalDBSnapshotIdentifier is required unless SkipFinalSnapshot is specified.",
        }
        with pytest.raises(ClientError) as e:  # and not both ways at once
            rds.delete_db_cluster(
                DBClusterIdentifier=cid, SkipFinalSnapshot=True, FinalDBSnapshotIdentifier="fin"
            )
        assert e.value.response["Error"]["Message"] == (
            "You cannot specify both FinalDBSnapshotIdentifier and SkipFinalSnapshot"
        )
        assert rds.describe_db_clusters(DBClusterIdentifier=cid)["DBClusters"][0]["Status"] == "available"
    finally:
        rds.delete_db_cluster(DBClusterIdentifier=cid, SkipFinalSnapshot=True)


def test_database_names_follow_each_engine(rds, unique: str) -> None:
    for bad in ("my-db", "1db", "d" * 64, "db;drop"):
        message = refused(rds.create_db_instance, **instance(f"n-{unique}", DBName=bad))
        assert message == "DBName must begin with a letter and contain only alphanumeric characters."
    message = refused(rds.create_db_instance, **instance(f"n-{unique}", DBName="template1"))
    assert message == "DBName template1 cannot be used as it is a reserved word used by the engine"
    refused(rds.create_db_instance, **instance(f"n-{unique}", "mariadb", DBName="mysql"))
    refused(rds.create_db_instance, **instance(f"n-{unique}", "mariadb", DBName="a`b"))
    message = refused(
        rds.create_db_cluster,
        DBClusterIdentifier=f"n-{unique}",
        Engine="aurora-postgresql",
        MasterUsername="master",
        MasterUserPassword="Secret-pass-123",
        DatabaseName="my-app",
    )
    assert message == "DatabaseName must begin with a letter and contain only alphanumeric characters."
    assert (
        rds.describe_db_instances(Filters=[{"Name": "db-instance-id", "Values": [f"n-{unique}"]}])[
            "DBInstances"
        ]
        == []
    )


def test_group_names_follow_rds_rules(rds, strata_server, unique: str) -> None:
    for bad in ("Bad_Name", "a--b", "a-", "1a", "a" * 256):
        refused(
            rds.create_db_parameter_group,
            DBParameterGroupName=bad,
            DBParameterGroupFamily="postgres18",
            Description="d",
        )
    long_name = f"Params-{unique}-" + "x" * 100
    made = rds.create_db_parameter_group(
        DBParameterGroupName=long_name, DBParameterGroupFamily="postgres18", Description="d"
    )["DBParameterGroup"]
    assert made["DBParameterGroupName"] == long_name.lower()  # RDS keeps group names in lower case
    rds.delete_db_parameter_group(DBParameterGroupName=long_name)
    refused(
        rds.create_db_cluster_parameter_group,
        DBClusterParameterGroupName="bad.name",
        DBParameterGroupFamily="aurora-postgresql16",
        Description="d",
    )
    subnets = [s["SubnetId"] for s in strata_server.client("ec2").describe_subnets()["Subnets"][:2]]
    for bad in ("default", "bad/name", "n" * 256):
        refused(
            rds.create_db_subnet_group,
            DBSubnetGroupName=bad,
            DBSubnetGroupDescription="d",
            SubnetIds=subnets,
        )
    name = f"my group.{unique}_1"
    rds.create_db_subnet_group(DBSubnetGroupName=name, DBSubnetGroupDescription="d", SubnetIds=subnets)
    rds.delete_db_subnet_group(DBSubnetGroupName=name)
