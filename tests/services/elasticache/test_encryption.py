"""AtRestEncryptionEnabled: a group's RDB files and its snapshots are ciphertext on disk."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from botocore.exceptions import ClientError

from strata.storage.encrypted_volumes import unsupported
from tests.services.elasticache.conftest import group
from tests.storage.at_rest import files_holding, mounts_under, unmount_all

MARKER = "strata-cache-at-rest-marker-5c1e"


def _error(fn: Any, **kw: Any) -> dict:
    with pytest.raises(ClientError) as e:
        fn(**kw)
    return e.value.response["Error"]


def _primary(ec: Any, gid: str) -> redis.Redis:
    ep = group(ec, gid)["NodeGroups"][0]["PrimaryEndpoint"]
    return redis.Redis(ep["Address"], ep["Port"], decode_responses=True)


@pytest.mark.skipif(unsupported() is not None, reason=f"encrypted volumes: {unsupported()}")
def test_encrypted_group_snapshot_and_restore(strata_factory) -> None:  # noqa: ANN001
    server = strata_factory()
    try:
        ec, kms = server.client("elasticache"), server.client("kms")
        key = kms.create_key(Description="cache test")["KeyMetadata"]
        ec.create_replication_group(
            ReplicationGroupId="enc",
            ReplicationGroupDescription="encrypted",
            Engine="redis",
            NumCacheClusters=2,
            AtRestEncryptionEnabled=True,
            KmsKeyId=key["KeyId"],
        )
        g = group(ec, "enc")
        assert g["AtRestEncryptionEnabled"] is True and g["KmsKeyId"] == key["Arn"]
        primary = _primary(ec, "enc")
        primary.mset({f"{MARKER}-{i}": f"{MARKER}-value" for i in range(200)})
        assert primary.wait(1, 10000) == 1
        snap = ec.create_snapshot(ReplicationGroupId="enc", SnapshotName="enc-snap")["Snapshot"]
        assert snap["KmsKeyId"] == key["Arn"]
        ec.create_replication_group(
            ReplicationGroupId="enc-restored",
            ReplicationGroupDescription="from the snapshot",
            Engine="redis",
            SnapshotName="enc-snap",
        )
        restored = group(ec, "enc-restored")
        assert restored["AtRestEncryptionEnabled"] is True and restored["KmsKeyId"] == key["Arn"]
        assert _primary(ec, "enc-restored").get(f"{MARKER}-7") == f"{MARKER}-value"

        # kill -9 leaves the volumes mounted; the restart opens them again
        server.kill()
        server.start()
        ec = server.client("elasticache")
        assert _primary(ec, "enc").get(f"{MARKER}-3") == f"{MARKER}-value"
        server.client("kms").disable_key(KeyId=key["KeyId"])  # no effect until the volumes are shut
        server.stop()  # the engines save their RDB files; the volumes are unmounted
        data = server.data_dir / "elasticache"
        assert not mounts_under(server.data_dir)
        images = sorted(p.name for p in (data / "volumes").glob("*.img"))
        assert images == ["group-enc-restored.img", "group-enc.img", "snapshot-enc-snap.img"]
        assert files_holding(data, MARKER.encode()) == []

        # without its KMS key the data stays locked after a restart: no engine starts on it
        server.start()
        ec = server.client("elasticache")
        assert not mounts_under(server.data_dir)
        with pytest.raises(redis.ConnectionError):
            _primary(ec, "enc").ping()
        for gid in ("enc", "enc-restored"):
            ec.delete_replication_group(ReplicationGroupId=gid)
        ec.delete_snapshot(SnapshotName="enc-snap")
        assert not list((data / "volumes").glob("*.img"))
        assert not mounts_under(server.data_dir)
    finally:
        server.stop()
        unmount_all(server.data_dir)


def test_at_rest_encryption_errors(strata_server: Any, unique: str) -> None:
    ec, kms = strata_server.client("elasticache"), strata_server.client("kms")
    base = {"ReplicationGroupId": f"enc-{unique}", "ReplicationGroupDescription": "x", "Engine": "redis"}
    err = _error(ec.create_replication_group, **base, KmsKeyId="alias/aws/elasticache")
    assert err["Code"] == "InvalidParameterCombination" and "AtRestEncryptionEnabled" in err["Message"]
    key = kms.create_key()["KeyMetadata"]
    kms.disable_key(KeyId=key["KeyId"])
    if unsupported() is None:
        for ref in (key["KeyId"], "alias/no-such-key"):
            err = _error(ec.create_replication_group, **base, AtRestEncryptionEnabled=True, KmsKeyId=ref)
            assert err["Code"] == "InvalidParameterValue" and "KMS key" in err["Message"], err
    else:
        err = _error(ec.create_replication_group, **base, AtRestEncryptionEnabled=True)
        assert err["Code"] == "InvalidParameterValue" and "cannot be served here" in err["Message"]
    err = _error(ec.describe_replication_groups, ReplicationGroupId=base["ReplicationGroupId"])
    assert err["Code"] == "ReplicationGroupNotFoundFault"
