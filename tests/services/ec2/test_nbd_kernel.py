"""The Linux kernel's NBD client (`nbd-client` hands the connection to the kernel's nbd driver,
which makes it /dev/nbdN): an ext4 file system made and written on the device, read back over
NBD by another client. Needs root, nbd-client and the kernel's nbd module; where /dev/nbd0 is
missing (no module: CI's kernel has none) it is skipped, and only nbd-client's own negotiation
(listing the exports) is tested."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.services.ec2.helpers import attach, detach, read_all

pytestmark = pytest.mark.skipif(
    not shutil.which("nbd-client"), reason="needs nbd-client (Debian nbd-client, scripts/apt-packages.txt)"
)
DEVICE = "/dev/nbd0"


def test_nbd_client_lists_the_attached_volumes(strata_server) -> None:  # noqa: ANN001
    ec2 = strata_server.client("ec2")
    volume = ec2.create_volume(Size=1, AvailabilityZone="us-east-1f")["VolumeId"]
    u = urlparse(attach(strata_server, ec2, volume, "us-east-1f", device="/dev/sdp"))
    listed = subprocess.run(
        ["nbd-client", "-l", u.hostname or "", str(u.port)], capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0, listed.stderr
    assert volume in listed.stdout.split()
    detach(ec2, volume)
    listed = subprocess.run(
        ["nbd-client", "-l", u.hostname or "", str(u.port)], capture_output=True, text=True, timeout=60
    )
    assert volume not in listed.stdout.split()
    ec2.delete_volume(VolumeId=volume)


@pytest.mark.skipif(
    not os.path.exists(DEVICE),
    reason=f"the kernel NBD client needs {DEVICE}: this kernel has no nbd module loaded (modprobe nbd)",
)
@pytest.mark.skipif(os.geteuid() != 0, reason="nbd-client, mkfs and mount need root")
def test_ext4_on_the_kernels_nbd_device(strata_server, tmp_path: Path) -> None:  # noqa: ANN001
    ec2 = strata_server.client("ec2")
    volume = ec2.create_volume(Size=1, AvailabilityZone="us-east-1f")["VolumeId"]
    uri = attach(strata_server, ec2, volume, "us-east-1f", device="/dev/sdo")
    u = urlparse(uri)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    payload = os.urandom(5 * 1024 * 1024 + 123)
    run = lambda *args: subprocess.run(args, capture_output=True, text=True, timeout=120, check=True)  # noqa: E731
    run("nbd-client", "-N", volume, u.hostname or "", str(u.port), DEVICE, "-b", "4096")
    try:
        run("mkfs.ext4", "-q", "-F", DEVICE)
        run("mount", DEVICE, str(mnt))
        try:
            (mnt / "payload.bin").write_bytes(payload)
        finally:
            run("umount", str(mnt))  # writes everything back and flushes the device
    finally:
        subprocess.run(["nbd-client", "-d", DEVICE], capture_output=True, timeout=60)
    image = tmp_path / "image.img"
    read_all(uri, image)
    dumped = tmp_path / "payload.out"
    run("debugfs", "-R", f"dump /payload.bin {dumped}", str(image))
    assert dumped.read_bytes() == payload
    detach(ec2, volume)
    ec2.delete_volume(VolumeId=volume)
