"""The course's three EBS functions, verbatim but for `endpoint_url`, against a real server."""

from __future__ import annotations

from datetime import datetime

import boto3
import pytest

from tests.services.ec2.helpers import FAST

ENDPOINT = ""
ec2 = None  # the seed's module-level client, bound to the test server by the fixture


# -- the seed (storage-and-databases.md, "EBS Snapshots and Backup"), endpoint_url added --------------
# fmt: off


def create_ebs_snapshot(volume_id: str, description: str = None):
    """Create EBS snapshot (incremental backup to S3)."""
    response = ec2.create_snapshot(
        VolumeId=volume_id,
        Description=description or f"Backup-{datetime.now().isoformat()}",
        TagSpecifications=[
            {
                'ResourceType': 'snapshot',
                'Tags': [
                    {'Key': 'Name', 'Value': 'AutomatedBackup'},
                    {'Key': 'CreatedBy', 'Value': 'Python Script'},
                ]
            }
        ]
    )
    return response['SnapshotId']

def copy_snapshot_cross_region(snapshot_id: str, 
                                source_region: str,
                                destination_region: str):
    """Copy snapshot to another region for DR."""
    dest_ec2 = boto3.client('ec2', region_name=destination_region, endpoint_url=ENDPOINT)
    
    response = dest_ec2.copy_snapshot(
        SourceSnapshotId=snapshot_id,
        SourceRegion=source_region,
        Description=f"DR copy from {source_region}",
        Encrypted=True  # Always encrypt DR copies
    )
    return response['SnapshotId']

def create_volume_from_snapshot(snapshot_id: str, 
                                 az: str,
                                 volume_type: str = 'gp3'):
    """Create new volume from snapshot (for restore or DR)."""
    response = ec2.create_volume(
        SnapshotId=snapshot_id,
        AvailabilityZone=az,
        VolumeType=volume_type,
        Encrypted=True,
        TagSpecifications=[
            {
                'ResourceType': 'volume',
                'Tags': [
                    {'Key': 'Name', 'Value': 'RestoredVolume'},
                ]
            }
        ]
    )
    return response['VolumeId']

# fmt: on


# -- tests ------------------------------------------------------------------------------------------


@pytest.fixture
def seed(strata_server):  # noqa: ANN001, ANN201
    global ec2, ENDPOINT
    ENDPOINT = strata_server.endpoint
    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=ENDPOINT)
    return ec2


def test_the_seeds_snapshot_copy_and_restore(seed) -> None:  # noqa: ANN001
    volume = seed.create_volume(Size=2, AvailabilityZone="us-east-1a", VolumeType="gp3")["VolumeId"]
    seed.get_waiter("volume_available").wait(VolumeIds=[volume], WaiterConfig=FAST)

    snapshot = create_ebs_snapshot(volume)
    seed.get_waiter("snapshot_completed").wait(SnapshotIds=[snapshot], WaiterConfig=FAST)
    snap = seed.describe_snapshots(SnapshotIds=[snapshot])["Snapshots"][0]
    assert snap["VolumeId"] == volume and snap["VolumeSize"] == 2 and not snap["Encrypted"]
    assert snap["Description"].startswith("Backup-")
    assert {t["Key"]: t["Value"] for t in snap["Tags"]} == {
        "Name": "AutomatedBackup",
        "CreatedBy": "Python Script",
    }

    copy = copy_snapshot_cross_region(snapshot, "us-east-1", "eu-west-1")
    west = boto3.client("ec2", region_name="eu-west-1", endpoint_url=ENDPOINT)
    west.get_waiter("snapshot_completed").wait(SnapshotIds=[copy], WaiterConfig=FAST)
    copied = west.describe_snapshots(SnapshotIds=[copy])["Snapshots"][0]
    assert copied["Encrypted"] and copied["Description"] == "DR copy from us-east-1"
    assert ":eu-west-1:" in copied["KmsKeyId"]
    # The copy lives in the destination region only.
    assert not seed.describe_snapshots(Filters=[{"Name": "snapshot-id", "Values": [copy]}])["Snapshots"]

    restored = create_volume_from_snapshot(snapshot, "us-east-1b")
    seed.get_waiter("volume_available").wait(VolumeIds=[restored], WaiterConfig=FAST)
    vol = seed.describe_volumes(VolumeIds=[restored])["Volumes"][0]
    assert vol["AvailabilityZone"] == "us-east-1b" and vol["SnapshotId"] == snapshot
    assert vol["Encrypted"] and vol["VolumeType"] == "gp3" and vol["Size"] == 2
    assert vol["Tags"] == [{"Key": "Name", "Value": "RestoredVolume"}]
    kms = boto3.client("kms", region_name="us-east-1", endpoint_url=ENDPOINT)
    assert kms.describe_key(KeyId="alias/aws/ebs")["KeyMetadata"]["Arn"] == vol["KmsKeyId"]
