"""NFS through libnfs's command-line client (nfs-cp, nfs-cat, nfs-ls): no kernel NFS client needed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

needs_nfs = pytest.mark.skipif(
    not (shutil.which("nfs-cp") and shutil.which("ganesha.nfsd")) or os.geteuid() != 0,
    reason="needs root and Debian nfs-ganesha, nfs-ganesha-vfs and libnfs-utils (scripts/apt-packages.txt)",
)


def url(ip: str, path: str, access_point: str | None = None) -> str:
    """An NFSv4 URL of `path` on a mount target (or on an access point of it)."""
    if access_point:
        return f"nfs://{ip}/{access_point}/{path.lstrip('/')}?version=4&nfsport=2050"
    return f"nfs://{ip}//{path.lstrip('/')}?version=4"


def nft_ruleset() -> str:
    """The kernel's nftables rules (where provisioned throughput is enforced)."""
    return subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, timeout=30).stdout


def nfs(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=60)
    if check and done.returncode != 0:
        raise AssertionError(f"{argv}: {done.returncode} {done.stdout} {done.stderr}")
    return done


def put(tmp: Path, data: str, target: str, check: bool = True) -> subprocess.CompletedProcess:
    src = tmp / f"src-{abs(hash((data, target)))}"
    src.write_text(data)
    return nfs("nfs-cp", str(src), target, check=check)


def cat(target: str) -> str:
    return nfs("nfs-cat", target).stdout


def ls(target: str) -> dict[str, tuple[int, int]]:
    """name -> (uid, gid) of a directory's entries."""
    out = {}
    for line in nfs("nfs-ls", target).stdout.splitlines():
        parts = line.split()
        if len(parts) >= 6:
            out[parts[-1]] = (int(parts[2]), int(parts[3]))
    return out


def file_system_with_targets(server: Any, zones: int = 2, **kw: Any) -> tuple[Any, str, list[dict]]:
    """A new file system with a mount target in each of the first `zones` default subnets."""
    efs, ec2 = server.client("efs"), server.client("ec2")
    subnets = sorted(ec2.describe_subnets()["Subnets"], key=lambda s: s["AvailabilityZone"])
    fs_id = efs.create_file_system(CreationToken=os.urandom(8).hex(), **kw)["FileSystemId"]
    targets = [efs.create_mount_target(FileSystemId=fs_id, SubnetId=s["SubnetId"]) for s in subnets[:zones]]
    return efs, fs_id, targets


def fs_files(server: Any, fs_id: str) -> Path:
    """Where a file system's files are on the server's disk: its own volume's `files/`, or the
    plain directory of a host without loop devices."""
    volume = server.data_dir / "efs" / "volumes" / fs_id / "files"
    return volume if volume.is_dir() else server.data_dir / "efs" / "fs" / fs_id
