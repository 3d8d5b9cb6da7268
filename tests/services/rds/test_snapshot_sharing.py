"""Sharing a manual DB snapshot with another account: ModifyDBSnapshotAttribute / DescribeDBSnapshotAttributes,
the other account seeing it (IncludeShared), restoring and copying it by ARN, and nothing more."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError

from tests.services.iam.conftest import ACCOUNT, ALT_ACCOUNT, ALT_ROOT, ROOT, users_file
from tests.services.rds.helpers import create_pg, eventually, pg_connect, wait_status
from tests.services.rds.test_aurora import cluster_connect, pg_cluster
from tests.strata_process import StrataProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrataProcess]:
    base = tmp_path_factory.mktemp("rds-sharing")
    process = StrataProcess(base / "data", extra_env={"STRATA_USERS_FILE": str(users_file(base))}).start()
    yield process
    process.stop()


def gone(client, ident: str) -> bool:  # noqa: ANN001
    return not client.describe_db_instances(Filters=[{"Name": "db-instance-id", "Values": [ident]}])[
        "DBInstances"
    ]


def code(call, **kwargs) -> str:
    with pytest.raises(ClientError) as e:
        call(**kwargs)
    return e.value.response["Error"]["Code"]


def test_a_shared_snapshot_is_restored_and_copied_by_the_other_account(server, unique: str) -> None:
    mine, theirs = server.client("rds", **ROOT), server.client("rds", **ALT_ROOT)
    src, snap = f"src-{unique}"[:60], f"snap-{unique}"[:60]
    inst = create_pg(mine, src)
    with pg_connect(inst) as conn:
        conn.execute("CREATE TABLE t (v text)")
        conn.execute("INSERT INTO t VALUES ('shared')")
    mine.create_db_snapshot(DBInstanceIdentifier=src, DBSnapshotIdentifier=snap)
    eventually(
        lambda: (
            mine.describe_db_snapshots(DBSnapshotIdentifier=snap)["DBSnapshots"][0]["Status"] == "available"
        ),
        180,
    )
    arn = f"arn:aws:rds:us-east-1:{ACCOUNT}:snapshot:{snap}"

    # not shared yet: the other account cannot see or use it
    assert code(theirs.describe_db_snapshots, DBSnapshotIdentifier=arn) == "DBSnapshotNotFound"
    assert theirs.describe_db_snapshots(IncludeShared=True)["DBSnapshots"] == []
    attrs = mine.describe_db_snapshot_attributes(DBSnapshotIdentifier=snap)["DBSnapshotAttributesResult"]
    assert attrs["DBSnapshotAttributes"] == [{"AttributeName": "restore", "AttributeValues": []}]

    assert (
        code(
            mine.modify_db_snapshot_attribute,
            DBSnapshotIdentifier=snap,
            AttributeName="restore",
            ValuesToAdd=["12345"],
        )
        == "InvalidParameterValue"
    )
    assert (
        code(
            mine.modify_db_snapshot_attribute,
            DBSnapshotIdentifier=snap,
            AttributeName="restore",
            ValuesToAdd=[f"{n:012d}" for n in range(21)],
        )
        == "SharedSnapshotQuotaExceeded"
    )
    out = mine.modify_db_snapshot_attribute(
        DBSnapshotIdentifier=snap, AttributeName="restore", ValuesToAdd=[ALT_ACCOUNT]
    )["DBSnapshotAttributesResult"]
    assert out["DBSnapshotAttributes"][0]["AttributeValues"] == [ALT_ACCOUNT]

    listed = theirs.describe_db_snapshots(IncludeShared=True)["DBSnapshots"]
    assert [(s["DBSnapshotIdentifier"], s["DBSnapshotArn"]) for s in listed] == [(arn, arn)]
    assert theirs.describe_db_snapshots()["DBSnapshots"] == []  # shared ones only when asked for
    assert [
        s["DBSnapshotArn"] for s in theirs.describe_db_snapshots(SnapshotType="shared")["DBSnapshots"]
    ] == [arn]
    # the other account can neither change nor delete it
    assert code(theirs.delete_db_snapshot, DBSnapshotIdentifier=arn) == "DBSnapshotNotFound"
    assert (
        code(
            theirs.modify_db_snapshot_attribute,
            DBSnapshotIdentifier=arn,
            AttributeName="restore",
            ValuesToAdd=["all"],
        )
        == "DBSnapshotNotFound"
    )

    restored = f"rst-{unique}"[:60]
    theirs.restore_db_instance_from_db_snapshot(
        DBInstanceIdentifier=restored, DBSnapshotIdentifier=arn, DBInstanceClass="db.t3.micro"
    )
    inst = wait_status(theirs, restored, timeout=240)
    assert inst["DBInstanceArn"] == f"arn:aws:rds:us-east-1:{ALT_ACCOUNT}:db:{restored}"
    with pg_connect(inst) as conn:
        assert conn.execute("SELECT v FROM t").fetchall() == [("shared",)]

    copy = f"copy-{unique}"[:60]
    theirs.copy_db_snapshot(SourceDBSnapshotIdentifier=arn, TargetDBSnapshotIdentifier=copy)
    copied = eventually(
        lambda: [
            s
            for s in theirs.describe_db_snapshots(DBSnapshotIdentifier=copy)["DBSnapshots"]
            if s["Status"] == "available"
        ],
        180,
    )[0]
    assert copied["DBSnapshotArn"] == f"arn:aws:rds:us-east-1:{ALT_ACCOUNT}:snapshot:{copy}"
    assert copied["SourceDBSnapshotIdentifier"] == arn

    # unshared: gone from the other account's view; its own copy stays
    mine.modify_db_snapshot_attribute(
        DBSnapshotIdentifier=snap, AttributeName="restore", ValuesToRemove=[ALT_ACCOUNT]
    )
    assert theirs.describe_db_snapshots(IncludeShared=True)["DBSnapshots"][0]["DBSnapshotIdentifier"] == copy
    assert (
        code(
            theirs.restore_db_instance_from_db_snapshot,
            DBInstanceIdentifier=f"{restored}-2",
            DBSnapshotIdentifier=arn,
        )
        == "DBSnapshotNotFound"
    )
    # public: every account sees it with IncludePublic
    mine.modify_db_snapshot_attribute(DBSnapshotIdentifier=snap, AttributeName="restore", ValuesToAdd=["all"])
    public = theirs.describe_db_snapshots(SnapshotType="public")["DBSnapshots"]
    assert [s["DBSnapshotArn"] for s in public] == [arn]

    # the owner copies it to another region by its ARN (SourceRegion accepted)
    west = server.client("rds", region="us-west-2", **ROOT)
    assert code(west.describe_db_snapshots, DBSnapshotIdentifier=arn) == "DBSnapshotNotFound"
    west.copy_db_snapshot(
        SourceDBSnapshotIdentifier=arn, TargetDBSnapshotIdentifier=snap, SourceRegion="us-east-1"
    )
    far = eventually(
        lambda: [
            s
            for s in west.describe_db_snapshots(DBSnapshotIdentifier=snap)["DBSnapshots"]
            if s["Status"] == "available"
        ],
        180,
    )[0]
    assert far["DBSnapshotArn"] == f"arn:aws:rds:us-west-2:{ACCOUNT}:snapshot:{snap}"
    assert far["SourceDBSnapshotIdentifier"] == arn
    # another account's snapshot in another region is not reachable from here
    assert code(
        theirs.copy_db_snapshot,
        SourceDBSnapshotIdentifier=far["DBSnapshotArn"],
        TargetDBSnapshotIdentifier="x",
    ) == ("DBSnapshotNotFound")

    theirs.delete_db_instance(DBInstanceIdentifier=restored, SkipFinalSnapshot=True)
    mine.delete_db_instance(DBInstanceIdentifier=src, SkipFinalSnapshot=True)


def test_a_shared_cluster_snapshot_is_restored_by_the_other_account(server, unique: str) -> None:
    mine, theirs = server.client("rds", **ROOT), server.client("rds", **ALT_ROOT)
    cid, snap = f"ac-{unique}", f"acs-{unique}"
    cluster = pg_cluster(mine, cid, [f"{cid}-1"], "db.r6g.large")
    with cluster_connect(cluster) as conn:
        conn.execute("CREATE TABLE t (v text)")
        conn.execute("INSERT INTO t VALUES ('from the cluster')")
    mine.create_db_cluster_snapshot(DBClusterIdentifier=cid, DBClusterSnapshotIdentifier=snap)
    eventually(
        lambda: (
            mine.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=snap)["DBClusterSnapshots"][0][
                "Status"
            ]
            == "available"
        ),
        180,
    )
    arn = f"arn:aws:rds:us-east-1:{ACCOUNT}:cluster-snapshot:{snap}"
    assert code(theirs.describe_db_cluster_snapshots, DBClusterSnapshotIdentifier=arn) == (
        "DBClusterSnapshotNotFoundFault"
    )
    out = mine.modify_db_cluster_snapshot_attribute(
        DBClusterSnapshotIdentifier=snap, AttributeName="restore", ValuesToAdd=[ALT_ACCOUNT]
    )["DBClusterSnapshotAttributesResult"]
    assert out["DBClusterSnapshotAttributes"] == [
        {"AttributeName": "restore", "AttributeValues": [ALT_ACCOUNT]}
    ]
    listed = theirs.describe_db_cluster_snapshots(IncludeShared=True)["DBClusterSnapshots"]
    assert [s["DBClusterSnapshotArn"] for s in listed] == [arn]
    assert code(theirs.delete_db_cluster_snapshot, DBClusterSnapshotIdentifier=arn) == (
        "DBClusterSnapshotNotFoundFault"
    )

    restored = f"acr-{unique}"
    theirs.restore_db_cluster_from_snapshot(
        DBClusterIdentifier=restored, SnapshotIdentifier=arn, Engine="aurora-postgresql"
    )
    theirs.create_db_instance(
        DBInstanceIdentifier=f"{restored}-1",
        DBClusterIdentifier=restored,
        Engine="aurora-postgresql",
        DBInstanceClass="db.r6g.large",
    )
    wait_status(theirs, f"{restored}-1", timeout=240)
    described = theirs.describe_db_clusters(DBClusterIdentifier=restored)["DBClusters"][0]
    assert described["DBClusterArn"].split(":")[4] == ALT_ACCOUNT
    with cluster_connect(described) as conn:
        assert conn.execute("SELECT v FROM t").fetchall() == [("from the cluster",)]
    for client, ident, instance in ((theirs, restored, f"{restored}-1"), (mine, cid, f"{cid}-1")):
        client.delete_db_instance(DBInstanceIdentifier=instance, SkipFinalSnapshot=True)
        eventually(lambda c=client, i=instance: gone(c, i), 120)
        client.delete_db_cluster(DBClusterIdentifier=ident, SkipFinalSnapshot=True)
