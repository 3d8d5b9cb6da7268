"""FIS aws:ebs:pause-volume-io on the NBD data path: while the action runs, a read and a write on
the volume (qemu-io) do not complete; when the experiment stops, both complete with the right
bytes. A target's availabilityZoneIdentifier keeps only the volumes in that zone."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from tests.services.ec2.helpers import FAST, attach, detach, qemu_io
from tests.services.fis.test_experiments import DONE, wait_for
from tests.services.fis.test_templates import NONE, ROLE

pytestmark = pytest.mark.skipif(not shutil.which("qemu-io"), reason="needs Debian qemu-utils")


def pause_template(tag: str, zone: str, duration: str) -> dict:
    return {
        "description": "volumes stall",
        "roleArn": ROLE,
        "stopConditions": NONE,
        "targets": {
            "disks": {
                "resourceType": "aws:ec2:ebs-volume",
                "resourceTags": {"chaos": tag},
                "selectionMode": "ALL",
                "parameters": {"availabilityZoneIdentifier": zone},
            }
        },
        "actions": {
            "pause": {
                "actionId": "aws:ebs:pause-volume-io",
                "parameters": {"duration": duration},
                "targets": {"Volumes": "disks"},
            }
        },
    }


def _volume(ec2, zone: str, tag: str) -> str:
    volume = ec2.create_volume(
        Size=1,
        AvailabilityZone=zone,
        VolumeType="gp3",
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "chaos", "Value": tag}]}],
    )["VolumeId"]
    ec2.get_waiter("volume_available").wait(VolumeIds=[volume], WaiterConfig=FAST)
    return volume


def _qemu_io(uri: str, command: str) -> subprocess.Popen:
    return subprocess.Popen(
        ["qemu-io", "-f", "raw", "-c", command, uri],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_paused_volume_io_waits_until_the_action_ends(strata_server, unique):
    ec2 = strata_server.client("ec2")
    fis = strata_server.client("fis")
    volume = _volume(ec2, "us-east-1a", unique)
    elsewhere = _volume(ec2, "us-east-1b", unique)  # tagged alike, in another zone: not a target
    uri = attach(strata_server, ec2, volume, "us-east-1a")
    try:
        qemu_io(uri, "write -P 0xab 0 64k", "flush")
        tid = fis.create_experiment_template(**pause_template(unique, "us-east-1a", "PT10M"))[
            "experimentTemplate"
        ]["id"]
        exp_id = fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"]
        wait_for(fis, exp_id, ("running",) + DONE)
        resolved = fis.list_experiment_resolved_targets(experimentId=exp_id)["resolvedTargets"]
        assert [r["targetInformation"]["arn"].rsplit("/", 1)[-1] for r in resolved] == [volume]
        deadline = time.monotonic() + 60
        while fis.get_experiment(id=exp_id)["experiment"]["actions"]["pause"]["state"]["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.1)

        read = _qemu_io(uri, "read -P 0xab 0 64k")
        write = _qemu_io(uri, "write -P 0xcd 1M 64k")
        time.sleep(2)  # long enough for an unpaused volume to answer many times over
        assert read.poll() is None and write.poll() is None, (read.poll(), write.poll())
        assert fis.get_experiment(id=exp_id)["experiment"]["state"]["status"] == "running"

        fis.stop_experiment(id=exp_id)
        assert wait_for(fis, exp_id, DONE)["state"]["status"] == "stopped"
        out, _ = read.communicate(timeout=60)
        assert read.returncode == 0 and "read 65536/65536" in out, out
        out, _ = write.communicate(timeout=60)
        assert write.returncode == 0 and "wrote 65536/65536" in out, out
        qemu_io(uri, "read -P 0xcd 1M 64k")

        # A short pause runs to its end and the volume serves again.
        tid = fis.create_experiment_template(**pause_template(unique, "us-east-1a", "PT1S"))[
            "experimentTemplate"
        ]["id"]
        exp = wait_for(fis, fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"], DONE)
        assert exp["state"]["status"] == "completed", exp["state"]
        qemu_io(uri, "read -P 0xab 0 64k")
    finally:
        detach(ec2, volume)
        ec2.delete_volume(VolumeId=volume)
        ec2.delete_volume(VolumeId=elsewhere)
