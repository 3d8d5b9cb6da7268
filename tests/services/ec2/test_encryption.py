"""Encrypted volumes hold only ciphertext on disk, and the course's four-step path to encryption
(snapshot -> encrypted copy -> volume -> attach) carries the data across."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.services.ec2.helpers import FAST, attach, detach, qemu_io

pytestmark = pytest.mark.skipif(not shutil.which("qemu-io"), reason="needs Debian qemu-utils")
PATTERN = b"strata-plaintext-marker-" * 21846  # 512 KiB and a bit


def files_containing(server, needle: bytes) -> int:  # noqa: ANN001
    root = Path(server.data_dir) / "ec2" / "blocks"
    return sum(1 for p in root.glob("??/*") if needle in p.read_bytes())


def test_unencrypted_to_encrypted_in_four_steps(strata_factory, tmp_path: Path) -> None:  # noqa: ANN001
    server = strata_factory()
    ec2 = server.client("ec2")
    key = server.client("kms").create_key(Description="ebs")["KeyMetadata"]
    source = tmp_path / "pattern.bin"
    source.write_bytes(PATTERN[: 2 * 512 * 1024])

    plain = ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
    uri = attach(server, ec2, plain, "us-east-1a")
    qemu_io(uri, f"write -s {source} 0 1M", "flush")
    detach(ec2, plain)

    # 1. snapshot  2. encrypted copy (same region, a customer key)  3. volume  4. attach
    snap = ec2.create_snapshot(VolumeId=plain)["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[snap], WaiterConfig=FAST)
    assert files_containing(server, b"strata-plaintext-marker-") == 2  # the plain snapshot's blocks
    copy = ec2.copy_snapshot(
        SourceSnapshotId=snap, SourceRegion="us-east-1", Encrypted=True, KmsKeyId=key["Arn"]
    )
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[copy["SnapshotId"]], WaiterConfig=FAST)
    copied = ec2.describe_snapshots(SnapshotIds=[copy["SnapshotId"]])["Snapshots"][0]
    assert copied["Encrypted"] and copied["KmsKeyId"] == key["Arn"]
    secure = ec2.create_volume(AvailabilityZone="us-east-1b", SnapshotId=copy["SnapshotId"])
    assert secure["Encrypted"] and secure["KmsKeyId"] == key["Arn"]
    uri = attach(server, ec2, secure["VolumeId"], "us-east-1b")
    qemu_io(uri, f"read -P 0 {2 * 512 * 1024} 4096")
    out = qemu_io(uri, "read -v 0 32")
    assert "strata.plaintext" in out
    qemu_io(uri, f"write -s {source} 4M 1M", "flush")
    detach(ec2, secure["VolumeId"])

    # Deleting the plaintext leaves no plaintext anywhere on disk, though the data is all there.
    ec2.delete_snapshot(SnapshotId=snap)
    ec2.delete_volume(VolumeId=plain)
    assert files_containing(server, b"strata-plaintext-marker-") == 0
    uri = attach(server, ec2, secure["VolumeId"], "us-east-1b")
    assert "strata.plaintext" in qemu_io(uri, "read -v 4M 32")

    # The encrypted volume survives a restart (its data key comes back from KMS).
    server.kill()
    server.restart()
    uri = attach_uri(server, secure["VolumeId"])
    assert "strata.plaintext" in qemu_io(uri, "read -v 0 32")


def attach_uri(server, volume: str) -> str:  # noqa: ANN001
    import json
    import urllib.request

    with urllib.request.urlopen(f"{server.endpoint}/_strata/ebs/nbd?volume={volume}", timeout=10) as r:
        return json.loads(r.read())["uri"]
