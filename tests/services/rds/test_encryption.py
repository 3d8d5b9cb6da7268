"""StorageEncrypted: an encrypted instance's data, WAL, backups and snapshots are ciphertext on disk."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from strata.storage.encrypted_volumes import unsupported
from tests.services.rds.helpers import create_pg, eventually, pg_connect, wait_status
from tests.storage.at_rest import files_holding, mounts_under, unmount_all

MARKER = "strata-at-rest-marker-7f3a"


def _error(fn: Any, **kw: Any) -> dict:
    with pytest.raises(ClientError) as e:
        fn(**kw)
    return e.value.response["Error"]


def _wait_snapshot(rds: Any, snap_id: str) -> dict:
    return eventually(
        lambda: next(
            (
                s
                for s in rds.describe_db_snapshots(DBSnapshotIdentifier=snap_id)["DBSnapshots"]
                if s["Status"] == "available"
            ),
            None,
        ),
        180,
        0.3,
    )


@pytest.mark.skipif(unsupported() is not None, reason=f"encrypted volumes: {unsupported()}")
def test_encrypted_instance_snapshot_and_restore(strata_factory) -> None:  # noqa: ANN001
    server = strata_factory()
    try:
        rds, kms = server.client("rds"), server.client("kms")
        key = kms.create_key(Description="rds test")["KeyMetadata"]
        kms.create_alias(AliasName="alias/rds-test", TargetKeyId=key["KeyId"])
        inst = create_pg(
            rds, "enc", StorageEncrypted=True, KmsKeyId="alias/rds-test", BackupRetentionPeriod=1
        )
        assert inst["StorageEncrypted"] is True and inst["KmsKeyId"] == key["Arn"]
        with pg_connect(inst) as conn:
            conn.execute("CREATE TABLE secrets (s text)")
            conn.execute("INSERT INTO secrets SELECT %s || g FROM generate_series(1, 2000) g", (MARKER,))
        rds.create_db_snapshot(DBInstanceIdentifier="enc", DBSnapshotIdentifier="enc-snap")
        snap = _wait_snapshot(rds, "enc-snap")
        assert snap["Encrypted"] is True and snap["KmsKeyId"] == key["Arn"]
        rds.restore_db_instance_from_db_snapshot(
            DBInstanceIdentifier="enc-restored", DBSnapshotIdentifier="enc-snap"
        )
        restored = wait_status(rds, "enc-restored")
        assert restored["StorageEncrypted"] is True and restored["KmsKeyId"] == key["Arn"]
        with pg_connect(restored) as conn:
            assert conn.execute("SELECT count(*) FROM secrets").fetchone() == (2000,)

        # kill -9 leaves the volumes mounted; the restart opens them again
        server.kill()
        server.start()
        rds = server.client("rds")
        with pg_connect(wait_status(rds, "enc")) as conn:
            assert conn.execute("SELECT count(*) FROM secrets").fetchone() == (2000,)
            conn.execute("INSERT INTO secrets VALUES (%s)", (MARKER + "-after-kill",))
        server.client("kms").disable_key(KeyId=key["KeyId"])  # no effect until the volumes are shut
        server.stop()  # the volumes are unmounted: what is on disk is all there is
        data = server.data_dir / "rds"
        assert not mounts_under(server.data_dir)
        images = sorted(p.name for p in (data / "volumes").glob("*.img"))
        assert images == ["instance-enc-restored.img", "instance-enc.img", "snapshot-enc-snap.img"]
        assert files_holding(data, MARKER.encode()) == []

        # without its KMS key the data stays locked after a restart: the engine does not start
        server.start()
        rds = server.client("rds")
        eventually(
            lambda: (
                rds.describe_db_instances(DBInstanceIdentifier="enc")["DBInstances"][0]["DBInstanceStatus"]
                == "failed"
            ),
            120,
            0.3,
        )
        assert not mounts_under(server.data_dir)
        assert not (data / "volumes" / "instance-enc" / "files").exists()
        for ident in ("enc", "enc-restored"):
            rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True)
        rds.delete_db_snapshot(DBSnapshotIdentifier="enc-snap")
        eventually(lambda: not rds.describe_db_instances()["DBInstances"], 120, 0.3)
        assert not list((data / "volumes").glob("*.img"))
        assert not mounts_under(server.data_dir)
    finally:
        server.stop()
        unmount_all(server.data_dir)


def test_storage_encryption_errors(strata_server: Any, unique: str) -> None:
    rds, kms = strata_server.client("rds"), strata_server.client("kms")
    base = {
        "DBInstanceIdentifier": f"enc-{unique}",
        "Engine": "postgres",
        "DBInstanceClass": "db.t3.micro",
        "MasterUsername": "master",
        "MasterUserPassword": "secret-password",
        "AllocatedStorage": 20,
    }
    err = _error(rds.create_db_instance, **base, KmsKeyId="alias/aws/rds")
    assert err["Code"] == "InvalidParameterCombination" and "StorageEncrypted" in err["Message"]
    key = kms.create_key()["KeyMetadata"]
    kms.disable_key(KeyId=key["KeyId"])
    if unsupported() is None:
        for ref in (key["KeyId"], "alias/no-such-key"):
            err = _error(rds.create_db_instance, **base, StorageEncrypted=True, KmsKeyId=ref)
            assert err["Code"] == "KMSKeyNotAccessibleFault", err
    else:
        err = _error(rds.create_db_instance, **base, StorageEncrypted=True)
        assert err["Code"] == "InvalidParameterCombination" and "cannot be served here" in err["Message"]
    assert _error(rds.describe_db_instances, DBInstanceIdentifier=base["DBInstanceIdentifier"])["Code"] == (
        "DBInstanceNotFound"
    )


@pytest.mark.skipif(unsupported() is not None, reason=f"encrypted volumes: {unsupported()}")
def test_encrypted_aurora_cluster(strata_factory) -> None:  # noqa: ANN001
    """The cluster's shared WAL archive and backups, each member's data and a cluster snapshot are
    ciphertext on disk; the members are encrypted with the cluster's key."""
    from tests.services.rds.test_aurora import cluster_connect, pg_cluster

    server = strata_factory()
    try:
        rds, kms = server.client("rds"), server.client("kms")
        cluster = pg_cluster(rds, "aur", ["aur-w"], "db.r6g.large", StorageEncrypted=True)
        managed = kms.describe_key(KeyId="alias/aws/rds")["KeyMetadata"]["Arn"]
        assert cluster["StorageEncrypted"] is True and cluster["KmsKeyId"] == managed
        writer = rds.describe_db_instances(DBInstanceIdentifier="aur-w")["DBInstances"][0]
        assert writer["StorageEncrypted"] is True and writer["KmsKeyId"] == managed
        with cluster_connect(cluster) as conn:
            conn.execute("CREATE TABLE secrets (s text)")
            conn.execute("INSERT INTO secrets SELECT %s || g FROM generate_series(1, 2000) g", (MARKER,))
        rds.create_db_cluster_snapshot(DBClusterIdentifier="aur", DBClusterSnapshotIdentifier="aur-snap")
        snap = eventually(
            lambda: next(
                s
                for s in rds.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier="aur-snap")[
                    "DBClusterSnapshots"
                ]
                if s["Status"] == "available"
            ),
            180,
            0.3,
        )
        assert snap["StorageEncrypted"] is True and snap["KmsKeyId"] == managed
        err = _error(
            rds.create_db_instance,
            DBInstanceIdentifier="aur-r",
            DBClusterIdentifier="aur",
            Engine="aurora-postgresql",
            DBInstanceClass="db.r6g.large",
            StorageEncrypted=True,
        )
        assert err["Code"] == "InvalidParameterCombination"

        server.stop()
        data = server.data_dir / "rds"
        images = sorted(p.name for p in (data / "volumes").glob("*.img"))
        assert images == ["cluster-aur.img", "cluster-snapshot-aur-snap.img", "instance-aur-w.img"]
        assert files_holding(data, MARKER.encode()) == []

        server.start()
        rds = server.client("rds")
        wait_status(rds, "aur-w")
        with cluster_connect(cluster) as conn:
            assert conn.execute("SELECT count(*) FROM secrets").fetchone() == (2000,)
        rds.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier="aur-snap")
        rds.delete_db_instance(DBInstanceIdentifier="aur-w", SkipFinalSnapshot=True)
        eventually(lambda: not rds.describe_db_instances()["DBInstances"], 120, 0.3)
        rds.delete_db_cluster(DBClusterIdentifier="aur", SkipFinalSnapshot=True)
        assert not list((data / "volumes").glob("*.img"))
        assert not mounts_under(server.data_dir)
    finally:
        server.stop()
        unmount_all(server.data_dir)
