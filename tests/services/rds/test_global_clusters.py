"""Aurora global databases: a secondary cluster in another region reads what the primary wrote,
a switchover loses nothing and moves writes, a failover with AllowDataLoss, detaching a secondary,
and AWS's errors for the global cluster's life."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from botocore.exceptions import ClientError

from tests.services.rds.helpers import PASSWORD, USER, eventually, wait_status

EAST, WEST = "us-east-1", "us-west-2"
ENGINE = "aurora-postgresql"


def connect(cluster: dict, reader: bool = False) -> psycopg.Connection:
    return psycopg.connect(
        host=cluster["ReaderEndpoint"] if reader else cluster["Endpoint"],
        port=cluster["Port"],
        user=USER,
        password=PASSWORD,
        dbname="app",
        connect_timeout=10,
        autocommit=True,
    )


def code(call: Any, **kw: Any) -> str:
    with pytest.raises(ClientError) as e:
        call(**kw)
    return e.value.response["Error"]["Code"]


def cluster_of(rds: Any, cid: str) -> dict:
    return rds.describe_db_clusters(DBClusterIdentifier=cid)["DBClusters"][0]


def global_of(rds: Any, gid: str) -> dict:
    return rds.describe_global_clusters(GlobalClusterIdentifier=gid)["GlobalClusters"][0]


def settled(rds: Any, gid: str, writer_arn: str) -> dict:
    """Wait until the global cluster is available again with `writer_arn` writing."""

    def done() -> dict | None:
        g = global_of(rds, gid)
        writers = [m["DBClusterArn"] for m in g["GlobalClusterMembers"] if m["IsWriter"]]
        return g if g["Status"] == "available" and writers == [writer_arn] else None

    return eventually(done, 300, 0.3)


def count(cluster: dict, reader: bool = True) -> int:
    with connect(cluster, reader) as c:
        return c.execute("SELECT count(*) FROM orders").fetchone()[0]


def test_a_secondary_region_reads_the_primary_and_takes_over(strata_server, unique: str) -> None:
    east, west = strata_server.client("rds", region=EAST), strata_server.client("rds", region=WEST)
    gid, p_id, s_id = f"glob-{unique}", f"gp-{unique}", f"gs-{unique}"
    p_writer, s_reader = f"gpw-{unique}", f"gsr-{unique}"
    assert code(west.describe_global_clusters, GlobalClusterIdentifier=gid) == "GlobalClusterNotFoundFault"

    p_arn = east.create_db_cluster(
        DBClusterIdentifier=p_id,
        Engine=ENGINE,
        MasterUsername=USER,
        MasterUserPassword=PASSWORD,
        DatabaseName="app",
    )["DBCluster"]["DBClusterArn"]
    east.create_db_instance(
        DBInstanceIdentifier=p_writer, DBClusterIdentifier=p_id, Engine=ENGINE, DBInstanceClass="db.r6g.large"
    )
    g = east.create_global_cluster(GlobalClusterIdentifier=gid, SourceDBClusterIdentifier=p_arn)[
        "GlobalCluster"
    ]
    assert g["GlobalClusterArn"] == f"arn:aws:rds::000000000000:global-cluster:{gid}"
    assert (g["Engine"], g["DatabaseName"]) == (ENGINE, "app")
    assert [(m["DBClusterArn"], m["IsWriter"]) for m in g["GlobalClusterMembers"]] == [(p_arn, True)]
    assert code(west.create_global_cluster, GlobalClusterIdentifier=gid, Engine=ENGINE) == (
        "GlobalClusterAlreadyExistsFault"
    )

    # the secondary joins from another region: no master user of its own, its instance a reader
    assert (
        code(
            west.create_db_cluster,
            DBClusterIdentifier=s_id,
            Engine=ENGINE,
            GlobalClusterIdentifier=gid,
            MasterUsername=USER,
            MasterUserPassword=PASSWORD,
        )
        == "InvalidParameterCombination"
    )
    s_arn = west.create_db_cluster(DBClusterIdentifier=s_id, Engine=ENGINE, GlobalClusterIdentifier=gid)[
        "DBCluster"
    ]["DBClusterArn"]
    west.create_db_instance(
        DBInstanceIdentifier=s_reader, DBClusterIdentifier=s_id, Engine=ENGINE, DBInstanceClass="db.r6g.large"
    )
    wait_status(east, p_writer)
    wait_status(west, s_reader, timeout=300)
    primary, secondary = cluster_of(east, p_id), cluster_of(west, s_id)
    assert secondary["GlobalClusterIdentifier"] == gid
    assert [m["IsClusterWriter"] for m in secondary["DBClusterMembers"]] == [False]
    g = global_of(west, gid)
    assert g["GlobalClusterMembers"][0] == {
        "DBClusterArn": p_arn,
        "Readers": [s_arn],
        "IsWriter": True,
        "GlobalWriteForwardingStatus": "disabled",
        "SynchronizationStatus": "connected",
    }
    assert [m["IsWriter"] for m in g["GlobalClusterMembers"][1:]] == [False]
    assert [
        x["GlobalClusterIdentifier"]
        for x in west.describe_global_clusters(Filters=[{"Name": "region", "Values": [WEST]}])[
            "GlobalClusters"
        ]
    ] == [gid]

    # written in us-east-1, read in us-west-2 after the lag
    with connect(primary) as c:
        c.execute("CREATE TABLE orders (id int primary key)")
        c.execute("INSERT INTO orders SELECT generate_series(1, 100)")
    assert eventually(lambda: count(secondary) == 100, 60)
    with connect(secondary, reader=True) as c, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        c.execute("INSERT INTO orders VALUES (0)")

    assert code(east.delete_db_cluster, DBClusterIdentifier=p_id, SkipFinalSnapshot=True) == (
        "InvalidGlobalClusterStateFault"
    )
    assert code(east.delete_global_cluster, GlobalClusterIdentifier=gid) == "InvalidGlobalClusterStateFault"
    assert (
        code(
            east.failover_global_cluster,
            GlobalClusterIdentifier=gid,
            TargetDbClusterIdentifier=s_arn,
            AllowDataLoss=True,
            Switchover=True,
        )
        == "InvalidParameterCombination"
    )
    assert (
        code(east.switchover_global_cluster, GlobalClusterIdentifier=gid, TargetDbClusterIdentifier=p_arn)
        == "InvalidGlobalClusterStateFault"
    )

    # switchover: rows written just before it are all in the new primary, which takes writes
    with connect(primary) as c:
        c.execute("INSERT INTO orders SELECT generate_series(101, 200)")
    g = east.switchover_global_cluster(GlobalClusterIdentifier=gid, TargetDbClusterIdentifier=s_arn)[
        "GlobalCluster"
    ]
    assert g["Status"] == "switching-over"
    assert g["FailoverState"]["ToDbClusterArn"] == s_arn
    assert g["FailoverState"]["IsDataLossAllowed"] is False
    settled(east, gid, s_arn)
    assert count(secondary, reader=False) == 200
    with connect(secondary) as c:
        c.execute("INSERT INTO orders VALUES (201)")
    wait_status(east, p_writer, timeout=300)  # the old writer, rebuilt as a reader of the new one
    assert eventually(lambda: count(primary) == 201, 60)
    assert [m["IsClusterWriter"] for m in cluster_of(east, p_id)["DBClusterMembers"]] == [False]
    assert [m["IsClusterWriter"] for m in cluster_of(west, s_id)["DBClusterMembers"]] == [True]

    # a failover that may lose data brings us-east-1 back at once
    west.failover_global_cluster(
        GlobalClusterIdentifier=gid, TargetDbClusterIdentifier=p_arn, AllowDataLoss=True
    )
    settled(west, gid, p_arn)
    with connect(primary) as c:
        c.execute("INSERT INTO orders VALUES (202)")
    wait_status(west, s_reader, timeout=300)
    assert eventually(lambda: count(secondary) >= 202 and count(secondary) == count(primary, False), 60)

    # detached, the secondary is a standalone cluster that takes writes; then the global cluster goes
    east.remove_from_global_cluster(GlobalClusterIdentifier=gid, DbClusterIdentifier=s_arn)
    eventually(
        lambda: (
            cluster_of(west, s_id)["Status"] == "available"
            and "GlobalClusterIdentifier" not in cluster_of(west, s_id)
        ),
        120,
    )
    with connect(cluster_of(west, s_id)) as c:
        c.execute("INSERT INTO orders VALUES (300)")
    east.remove_from_global_cluster(GlobalClusterIdentifier=gid, DbClusterIdentifier=p_arn)
    assert global_of(east, gid)["GlobalClusterMembers"] == []
    east.delete_global_cluster(GlobalClusterIdentifier=gid)
    assert code(east.describe_global_clusters, GlobalClusterIdentifier=gid) == "GlobalClusterNotFoundFault"
    east.delete_db_instance(DBInstanceIdentifier=p_writer, SkipFinalSnapshot=True)
    west.delete_db_instance(DBInstanceIdentifier=s_reader, SkipFinalSnapshot=True)


def test_an_empty_global_cluster_takes_its_primary_and_is_modified(strata_server, unique: str) -> None:
    east, west = strata_server.client("rds", region=EAST), strata_server.client("rds", region=WEST)
    gid, renamed = f"empty-{unique}", f"renamed-{unique}"
    assert code(east.create_global_cluster, GlobalClusterIdentifier=gid, Engine="postgres") == (
        "InvalidParameterValue"
    )
    assert code(east.create_global_cluster, GlobalClusterIdentifier="1bad") == "InvalidParameterValue"
    g = east.create_global_cluster(
        GlobalClusterIdentifier=gid, Engine=ENGINE, DatabaseName="app", DeletionProtection=True
    )["GlobalCluster"]
    assert (g["Status"], g["GlobalClusterMembers"], g["DeletionProtection"]) == ("available", [], True)
    assert code(east.delete_global_cluster, GlobalClusterIdentifier=gid) == "InvalidGlobalClusterStateFault"
    assert (
        code(
            east.create_db_cluster,
            DBClusterIdentifier=f"mysql-{unique}",
            Engine="aurora-mysql",
            GlobalClusterIdentifier=gid,
            MasterUsername=USER,
            MasterUserPassword=PASSWORD,
        )
        == "InvalidParameterCombination"
    )
    # the first cluster to join an empty global cluster is its primary (and needs a master user)
    primary = east.create_db_cluster(
        DBClusterIdentifier=f"ep-{unique}",
        Engine=ENGINE,
        GlobalClusterIdentifier=gid,
        MasterUsername=USER,
        MasterUserPassword=PASSWORD,
    )["DBCluster"]
    assert (primary["GlobalClusterIdentifier"], primary["DatabaseName"]) == (gid, "app")
    # one cluster per region
    assert (
        code(
            east.create_db_cluster,
            DBClusterIdentifier=f"es-{unique}",
            Engine=ENGINE,
            GlobalClusterIdentifier=gid,
        )
        == "InvalidGlobalClusterStateFault"
    )
    secondary = west.create_db_cluster(
        DBClusterIdentifier=f"es-{unique}", Engine=ENGINE, GlobalClusterIdentifier=gid
    )["DBCluster"]

    arn = f"arn:aws:rds::000000000000:global-cluster:{gid}"
    west.add_tags_to_resource(
        ResourceName=arn, Tags=[{"Key": "team", "Value": "db"}, {"Key": "x", "Value": "1"}]
    )
    east.remove_tags_from_resource(ResourceName=arn, TagKeys=["x"])
    assert east.list_tags_for_resource(ResourceName=arn)["TagList"] == [{"Key": "team", "Value": "db"}]

    g = west.modify_global_cluster(
        GlobalClusterIdentifier=gid, NewGlobalClusterIdentifier=renamed, DeletionProtection=False
    )["GlobalCluster"]
    assert (g["GlobalClusterIdentifier"], g["DeletionProtection"]) == (renamed, False)
    assert g["TagList"] == [{"Key": "team", "Value": "db"}]
    assert sorted(m["DBClusterArn"] for m in g["GlobalClusterMembers"]) == sorted(
        [primary["DBClusterArn"], secondary["DBClusterArn"]]
    )
    assert cluster_of(west, f"es-{unique}")["GlobalClusterIdentifier"] == renamed
    assert code(east.describe_global_clusters, GlobalClusterIdentifier=gid) == "GlobalClusterNotFoundFault"
    assert (
        code(east.modify_global_cluster, GlobalClusterIdentifier=renamed, EngineVersion="11.1")
        == "InvalidParameterCombination"
    )
    assert (
        code(
            east.remove_from_global_cluster,
            GlobalClusterIdentifier=renamed,
            DbClusterIdentifier=primary["DBClusterArn"],
        )
        == "InvalidGlobalClusterStateFault"
    )
    # a cluster of a global database with two clusters is not stopped (AWS: only its only cluster)
    for rds, cid in ((east, f"ep-{unique}"), (west, f"es-{unique}")):
        with pytest.raises(ClientError) as e:
            rds.stop_db_cluster(DBClusterIdentifier=cid)
        assert e.value.response["Error"]["Code"] == "InvalidDBClusterStateFault"
        assert "the only cluster in the global database" in e.value.response["Error"]["Message"]
    # a secondary without instances is deleted in its region and leaves the global cluster
    west.delete_db_cluster(DBClusterIdentifier=f"es-{unique}", SkipFinalSnapshot=True)
    east.delete_db_cluster(DBClusterIdentifier=f"ep-{unique}", SkipFinalSnapshot=True)
    assert global_of(east, renamed)["GlobalClusterMembers"] == []
    east.delete_global_cluster(GlobalClusterIdentifier=renamed)
