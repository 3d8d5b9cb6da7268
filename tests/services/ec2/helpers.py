"""Shared by the EC2/EBS tests: attach a volume to the zone's Strata instance and reach it over NBD."""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from tests.strata_process import StrataProcess


def instance_in(ec2: Any, az: str) -> str:
    res = ec2.describe_instances(Filters=[{"Name": "availability-zone", "Values": [az]}])
    return res["Reservations"][0]["Instances"][0]["InstanceId"]


# Strata's transitions take fractions of a second: poll often so tests barely wait.
FAST = {"Delay": 0.2, "MaxAttempts": 300}


def attach(server: StrataProcess, ec2: Any, volume_id: str, az: str, device: str = "/dev/sdf") -> str:
    """Attach `volume_id` (once it is available) to the Strata instance of `az`; returns its NBD
    URI (admin API)."""
    ec2.get_waiter("volume_available").wait(VolumeIds=[volume_id], WaiterConfig=FAST)
    ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_in(ec2, az), Device=device)
    ec2.get_waiter("volume_in_use").wait(VolumeIds=[volume_id], WaiterConfig=FAST)
    with urllib.request.urlopen(f"{server.endpoint}/_strata/ebs/nbd?volume={volume_id}", timeout=10) as r:
        return json.loads(r.read())["uri"]


def detach(ec2: Any, volume_id: str) -> None:
    ec2.detach_volume(VolumeId=volume_id)
    ec2.get_waiter("volume_available").wait(VolumeIds=[volume_id], WaiterConfig=FAST)


def qemu_io(uri: str, *commands: str) -> str:
    args = ["qemu-io", "-f", "raw"]
    for c in commands:
        args += ["-c", c]
    out = subprocess.run([*args, uri], capture_output=True, text=True, timeout=120, check=True)
    assert "error" not in out.stdout.lower() and "failed" not in out.stdout.lower(), out.stdout
    return out.stdout


def read_all(uri: str, dest: Path) -> bytes:
    """The whole device, copied by nbdcopy (libnbd)."""
    subprocess.run(["nbdcopy", uri, str(dest)], check=True, timeout=120, capture_output=True)
    return dest.read_bytes()


def write_file(uri: str, source: Path) -> None:
    """Copy `source` onto the device from offset 0 with nbdcopy, flushed before it exits."""
    subprocess.run(["nbdcopy", "--flush", str(source), uri], check=True, timeout=120, capture_output=True)


def dial(port: int, source: str | None = None, address: str = "127.0.0.1") -> str:
    """What a TCP connect to address:port from `source` meets: open, dropped (timed out) or refused."""
    s = socket.socket()
    s.settimeout(1.5)
    try:
        if source:
            s.bind((source, 0))
        s.connect((address, port))
        return "open"
    except TimeoutError:
        return "dropped"
    except ConnectionRefusedError:  # the engine is not serving (yet)
        return "refused"
    finally:
        s.close()


def no_egress_group(server: StrataProcess, name: str, member: str = "VpcSecurityGroupIds") -> dict:
    """Where Strata filters engines' egress, the request member `member` naming a new security
    group that lets local clients in and no traffic out; elsewhere none (the default group), as
    restricting egress is refused there."""
    if server.health()["services"]["ec2"].get("security_group_egress") != "enforced":
        return {}
    ec2 = server.client("ec2")
    sg = ec2.create_security_group(GroupName=name, Description="no egress")["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=sg, IpProtocol="-1", CidrIp="127.0.0.0/8")
    ec2.revoke_security_group_egress(
        GroupId=sg, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    )
    return {member: [sg]}
