"""Read replicas on PostgreSQL streaming replication, with injectable lag, and promotion."""

from __future__ import annotations

import psycopg
import pytest
from botocore.exceptions import ClientError

from tests.services.rds.helpers import create_pg, eventually, pg_connect, wait_status


def test_read_replica_lag_read_only_and_promote(strata_server, unique: str) -> None:
    rds = strata_server.client("rds")
    src_id, rep_id = f"primary-{unique}", f"replica-{unique}"
    group = f"lag-{unique}"
    rds.create_db_parameter_group(
        DBParameterGroupName=group,
        DBParameterGroupFamily="postgres18",
        Description="replica with delayed apply",
    )
    rds.modify_db_parameter_group(
        DBParameterGroupName=group,
        Parameters=[
            {
                "ParameterName": "recovery_min_apply_delay",
                "ParameterValue": "3000",
                "ApplyMethod": "immediate",
            }
        ],
    )
    src = create_pg(rds, src_id, BackupRetentionPeriod=1)
    with pg_connect(src) as conn:
        conn.execute("CREATE TABLE users (id int primary key, name text)")
    rds.create_db_instance_read_replica(
        DBInstanceIdentifier=rep_id, SourceDBInstanceIdentifier=src_id, DBParameterGroupName=group
    )
    rep = wait_status(rds, rep_id)
    assert rep["ReadReplicaSourceDBInstanceIdentifier"] == src_id
    assert rep["Endpoint"]["Port"] != src["Endpoint"]["Port"]
    assert (
        rep_id
        in rds.describe_db_instances(DBInstanceIdentifier=src_id)["DBInstances"][0][
            "ReadReplicaDBInstanceIdentifiers"
        ]
    )
    assert rep["StatusInfos"][0]["StatusType"] == "read replication"
    assert rep["StatusInfos"][0]["Message"].startswith("ReplicaLag=")  # seconds behind the source

    with pg_connect(rep) as replica:
        eventually(lambda: replica.execute("SELECT to_regclass('users')").fetchone()[0] is not None, 60)
        with pg_connect(src) as primary:
            primary.execute("INSERT INTO users VALUES (1, 'ada')")
        # The seed's "most common read-replica bug": reading right after the write misses it.
        assert replica.execute("SELECT name FROM users WHERE id = 1").fetchone() is None
        assert eventually(lambda: replica.execute("SELECT name FROM users WHERE id = 1").fetchone(), 60) == (
            "ada",
        )
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            replica.execute("INSERT INTO users VALUES (2, 'bob')")

    # AWS takes no final snapshot of a replica: asking for one is refused, the replica stays
    with pytest.raises(ClientError) as refused:
        rds.delete_db_instance(DBInstanceIdentifier=rep_id, FinalDBSnapshotIdentifier=f"final-{unique}")
    assert refused.value.response["Error"] == {
        "Type": "Sender",
        "Code": "InvalidParameterCombination",
        "Message": "FinalDBSnapshotIdentifier can not be specified when deleting a replica instance",
    }
    assert wait_status(rds, rep_id)["DBInstanceStatus"] == "available"
    with pytest.raises(rds.exceptions.DBSnapshotNotFoundFault):
        rds.describe_db_snapshots(DBSnapshotIdentifier=f"final-{unique}")

    rds.promote_read_replica(DBInstanceIdentifier=rep_id)
    promoted = wait_status(rds, rep_id)
    assert "ReadReplicaSourceDBInstanceIdentifier" not in promoted
    with pg_connect(promoted) as conn:
        conn.execute("INSERT INTO users VALUES (2, 'bob')")
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (2,)
    assert (
        rds.describe_db_instances(DBInstanceIdentifier=src_id)["DBInstances"][0][
            "ReadReplicaDBInstanceIdentifiers"
        ]
        == []
    )
    for i in (src_id, rep_id):
        rds.delete_db_instance(DBInstanceIdentifier=i, SkipFinalSnapshot=True)
