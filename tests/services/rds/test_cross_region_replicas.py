"""Cross-region read replicas: CreateDBInstanceReadReplica in another region with the source's ARN
(SourceRegion accepted), the replica reading what the source wrote after its lag, ARNs on both
sides, and promotion for disaster recovery."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.services.rds.helpers import create_pg, eventually, pg_connect, wait_status

EAST, WEST = "us-east-1", "us-west-2"
ACCOUNT = "000000000000"


def test_a_cross_region_replica_follows_its_source_and_is_promoted(strata_server, unique: str) -> None:
    east, west = strata_server.client("rds", region=EAST), strata_server.client("rds", region=WEST)
    src_id, rep_id = f"xr-src-{unique}", f"xr-rep-{unique}"
    src = create_pg(east, src_id, BackupRetentionPeriod=1)
    src_arn = src["DBInstanceArn"]
    with pg_connect(src) as conn:
        conn.execute("CREATE TABLE orders (id int primary key)")

    # regions are namespaces: the bare identifier names nothing in us-west-2
    with pytest.raises(ClientError) as e:
        west.create_db_instance_read_replica(DBInstanceIdentifier=rep_id, SourceDBInstanceIdentifier=src_id)
    assert e.value.response["Error"]["Code"] == "DBInstanceNotFound"

    west.create_db_instance_read_replica(
        DBInstanceIdentifier=rep_id, SourceDBInstanceIdentifier=src_arn, SourceRegion=EAST
    )
    rep = wait_status(west, rep_id, timeout=240)
    assert rep["ReadReplicaSourceDBInstanceIdentifier"] == src_arn
    assert rep["DBInstanceArn"] == f"arn:aws:rds:{WEST}:{ACCOUNT}:db:{rep_id}"
    assert rep["AvailabilityZone"].startswith(WEST)
    source = east.describe_db_instances(DBInstanceIdentifier=src_id)["DBInstances"][0]
    assert source["ReadReplicaDBInstanceIdentifiers"] == [rep["DBInstanceArn"]]
    assert (
        east.describe_db_instances(Filters=[{"Name": "db-instance-id", "Values": [rep_id]}])["DBInstances"]
        == []
    )
    assert rep["StatusInfos"][0]["Message"].startswith("ReplicaLag=")

    with pg_connect(src) as primary, pg_connect(rep) as replica:
        primary.execute("INSERT INTO orders SELECT generate_series(1, 100)")
        assert eventually(lambda: replica.execute("SELECT count(*) FROM orders").fetchone()[0] == 100, 60)

    # disaster recovery: promoted, the replica takes writes and leaves its source's list
    west.promote_read_replica(DBInstanceIdentifier=rep_id)
    eventually(
        lambda: (
            not west.describe_db_instances(DBInstanceIdentifier=rep_id)["DBInstances"][0].get(
                "ReadReplicaSourceDBInstanceIdentifier"
            )
        ),
        120,
    )
    rep = wait_status(west, rep_id)
    with pg_connect(rep) as promoted:
        promoted.execute("INSERT INTO orders VALUES (101)")
        assert promoted.execute("SELECT count(*) FROM orders").fetchone()[0] == 101
    assert (
        east.describe_db_instances(DBInstanceIdentifier=src_id)["DBInstances"][0][
            "ReadReplicaDBInstanceIdentifiers"
        ]
        == []
    )
    west.delete_db_instance(DBInstanceIdentifier=rep_id, SkipFinalSnapshot=True)
    east.delete_db_instance(DBInstanceIdentifier=src_id, SkipFinalSnapshot=True)
