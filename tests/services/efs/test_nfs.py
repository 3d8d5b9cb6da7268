"""EFS as a real NFS share: two mount targets on one file system, access points that enforce
their POSIX user and root directory, a Strata kill -9, and the IA lifecycle on the simulated clock."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.services.efs.helpers import (
    cat,
    file_system_with_targets,
    fs_files,
    ls,
    needs_nfs,
    nfs,
    nft_ruleset,
    put,
    url,
)
from tests.services.efs.libnfs import LibNfs
from tests.services.efs.raw_nfs4 import Nfs4Error, RawNfs4, forged, kernel_handle, putfh, read, write
from tests.storage.at_rest import in_sparse_file

pytestmark = needs_nfs


def nfs_bytes(target: str) -> bytes:
    return subprocess.run(["nfs-cat", target], capture_output=True, timeout=60, check=True).stdout


def test_two_mount_targets_see_each_others_closed_writes(strata_server, tmp_path: Path) -> None:  # noqa: ANN001
    efs, fs_id, (a, b) = file_system_with_targets(strata_server, zones=2)
    assert a["IpAddress"] != b["IpAddress"] and a["IpAddress"].startswith("127.")
    put(tmp_path, "written through A\n", url(a["IpAddress"], "from-a.txt"))
    assert cat(url(b["IpAddress"], "from-a.txt")) == "written through A\n"
    put(tmp_path, "written through B\n", url(b["IpAddress"], "from-b.txt"))
    assert cat(url(a["IpAddress"], "from-b.txt")) == "written through B\n"
    assert {"from-a.txt", "from-b.txt"} <= set(ls(url(a["IpAddress"], "")))
    # A file of many WRITEs, closed on A, read whole on B; then rewritten on B and read on A.
    big = os.urandom((1 << 20) + 12345)
    client_a, client_b = LibNfs(a["IpAddress"]), LibNfs(b["IpAddress"])
    try:
        client_a.write("/big.bin", big)
        assert nfs_bytes(url(b["IpAddress"], "big.bin")) == big
        client_b.write("/big.bin", big[:500_000][::-1])  # shorter: the file is truncated first
        assert nfs_bytes(url(a["IpAddress"], "big.bin")) == big[:500_000][::-1]
    finally:
        client_a.close()
        client_b.close()
    # Both mount targets answer DescribeMountTargets as available, one per zone.
    mts = efs.describe_mount_targets(FileSystemId=fs_id)["MountTargets"]
    assert sorted(m["LifeCycleState"] for m in mts) == ["available", "available"]
    assert len({m["AvailabilityZoneName"] for m in mts}) == 2
    # The file system's size follows its files.
    size = efs.describe_file_systems(FileSystemId=fs_id)["FileSystems"][0]["SizeInBytes"]
    assert size["Value"] == 6144 + 2 * 4096 + -(-500_000 // 4096) * 4096
    assert size["ValueInStandard"] == size["Value"]
    # A new client mounts after others wrote and removed files (the benchmark's small-files step
    # once met NFS4ERR_STALE there).
    writer = LibNfs(a["IpAddress"])
    writer.unlink("/big.bin")
    writer.close()
    _mount_and_write(a["IpAddress"])
    # That error is what a new mount gets from a server whose root directory was replaced behind
    # it (ganesha holds the old one): the servers are restarted on the new one.
    root = fs_files(strata_server, fs_id)
    shutil.rmtree(root)
    root.mkdir(mode=0o755)
    deadline = time.monotonic() + 30
    while True:
        try:
            _mount_and_write(b["IpAddress"])
            break
        except OSError as e:
            if time.monotonic() > deadline:
                raise AssertionError(f"no new mount after the root was replaced: {e}") from e
            time.sleep(0.2)
    _mount_and_write(a["IpAddress"])


def _mount_and_write(ip: str) -> None:
    client = LibNfs(ip)
    try:
        client.write("/after.txt", b"after")
        client.stat("/after.txt")
        client.unlink("/after.txt")
    finally:
        client.close()


def test_access_point_runs_as_its_user_inside_its_root(strata_server, tmp_path: Path) -> None:  # noqa: ANN001
    efs, fs_id, (mt,) = file_system_with_targets(strata_server, zones=1)
    ip = mt["IpAddress"]
    put(tmp_path, "top secret\n", url(ip, "outside.txt"))
    ap = efs.create_access_point(
        FileSystemId=fs_id,
        PosixUser={"Uid": 1001, "Gid": 1002},
        RootDirectory={
            "Path": "/app/data",
            "CreationInfo": {"OwnerUid": 1001, "OwnerGid": 1002, "Permissions": "750"},
        },
    )["AccessPointId"]
    put(tmp_path, "mine\n", url(ip, "note.txt", ap))
    # Created as the access point's user, in its root directory (seen from the file system's root).
    assert ls(url(ip, "app"))["data"] == (1001, 1002)
    assert ls(url(ip, "app/data"))["note.txt"] == (1001, 1002)
    assert cat(url(ip, "app/data/note.txt")) == "mine\n"
    # Nothing above the root directory is reachable through the access point.
    assert nfs("nfs-cat", url(ip, "outside.txt", ap), check=False).returncode != 0
    assert nfs("nfs-cat", url(ip, "../../outside.txt", ap), check=False).returncode != 0
    _forged_handles_stay_inside(strata_server, fs_id, ip, ap)
    # Port 2050's root cannot be listed: no client learns the other access points' ids there.
    listing = nfs("nfs-ls", f"nfs://{ip}/?version=4&nfsport=2050", check=False)
    assert listing.returncode != 0 and ap not in listing.stdout and "outside.txt" not in listing.stdout
    # Every request runs as uid 1001: the root directory of the file system (root's, 755) is
    # not writable through an access point rooted there, though root's own client could write.
    ap_root = efs.create_access_point(FileSystemId=fs_id, PosixUser={"Uid": 1001, "Gid": 1002})[
        "AccessPointId"
    ]
    assert put(tmp_path, "x", url(ip, "denied.txt", ap_root), check=False).returncode != 0
    assert "denied.txt" not in ls(url(ip, ""))
    # Deleting an access point a client used leaves the server running (ganesha 4.3 died when a
    # reread removed the export; the monitor restarted it and every client lost its state).
    pid_file = (
        strata_server.data_dir / "efs" / "nfs" / mt["MountTargetId"] / "access-points" / "ganesha.nfsd.pid"
    )
    pid = int(pid_file.read_text())
    efs.delete_access_point(AccessPointId=ap)
    assert nfs("nfs-cat", url(ip, "note.txt", ap), check=False).returncode != 0
    assert "denied.txt" not in ls(url(ip, "", ap_root))  # the other access point still serves
    assert int(pid_file.read_text()) == pid
    os.kill(pid, 0)


def _forged_handles_stay_inside(server, fs_id: str, ip: str, ap: str) -> None:  # noqa: ANN001
    """Nor by a filehandle made by hand (ganesha opens any handle on its export's file system and
    checks no subtree; the proxy on port 2050 does): the inode and generation of a file or
    directory above the access point's root in a handle of its export, or of a file of the data
    dir's disk in a handle of port 2050's pseudo root, are stale."""
    files = fs_files(server, fs_id)
    os.chmod(files / "outside.txt", 0o644)  # the access point's user could read it, if reachable
    secret = server.data_dir / "not-for-nfs-clients.txt"  # on the pseudo root's file system
    secret.write_text("host secret\n")
    os.chmod(secret, 0o644)
    client = RawNfs4(ip, 2050, uid=1001, gid=1002)
    try:
        inside = client.handle(ap, "note.txt")
        assert client.read(inside) == b"mine\n"
        pseudo_root = client.handle()
        for template, target in (
            (inside, files / "outside.txt"),
            (inside, files / "app"),
            (pseudo_root, secret),
        ):
            client.assert_stale(forged(template, *kernel_handle(target)), f"{target} through {ap}")
        assert client.read(inside) == b"mine\n"  # the connection goes on
        # A handle after a large WRITE's data (which the proxy moves without reading it) is
        # checked too: the WRITE is done, the READ of the file above the root is not.
        data = os.urandom(300_000)
        outside = forged(inside, *kernel_handle(files / "outside.txt"))
        with pytest.raises(Nfs4Error) as refused:
            client.compound(putfh(inside), write(0, data), putfh(outside), read(0, 100))
        assert (refused.value.op, refused.value.status) == (22, 70)  # PUTFH: NFS4ERR_STALE
        assert (files / "app" / "data" / "note.txt").read_bytes() == data
    finally:
        client.close()
        secret.unlink()
    # Handles a client kept from an earlier connection still work on a new one.
    again = RawNfs4(ip, 2050, uid=1001, gid=1002)
    try:
        assert again.read(inside, 1000) == data[:1000]
    finally:
        again.close()


def test_a_forged_filehandle_reaches_nothing_outside_the_file_system(strata_server, tmp_path: Path) -> None:  # noqa: ANN001
    """ganesha opens whatever a filehandle names on the file system its export is on: with the
    files in a plain directory of the data dir, a handle made by hand read any file of the host's
    disk (as root: the root export does not squash root). Each file system's own volume confines
    handles to it: one naming another file system's file is refused as stale."""
    efs, fs_id, (mt,) = file_system_with_targets(strata_server, zones=1)
    put(tmp_path, "mine\n", url(mt["IpAddress"], "mine.txt"))
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host secret\n")
    os.chmod(secret, 0o644)
    client = RawNfs4(mt["IpAddress"], 2049)
    try:
        template = client.handle("mine.txt")
        assert client.read(template) == b"mine\n"
        assert (
            len(template) > 14
            and kernel_handle(fs_files(strata_server, fs_id) / "mine.txt")[1] == template[-8:]
        )
        client.assert_stale(forged(template, *kernel_handle(secret)), "a host file")
    finally:
        client.close()


def test_files_and_exports_survive_kill_9(strata_factory, tmp_path: Path) -> None:  # noqa: ANN001
    server = strata_factory()
    efs, fs_id, (a, b) = file_system_with_targets(
        server, zones=2, ThroughputMode="provisioned", ProvisionedThroughputInMibps=512.0
    )
    ap = efs.create_access_point(  # with secondary groups: served through the credential proxy
        FileSystemId=fs_id, PosixUser={"Uid": 0, "Gid": 1001, "SecondaryGids": [1002]}
    )["AccessPointId"]
    put(tmp_path, "before the crash\n", url(a["IpAddress"], "kept.txt"))
    limit = f"limit {fs_id.replace('-', '_')} "
    rules = nft_ruleset()
    assert rules.count(limit) == 1
    old_table = rules[: rules.index(limit)].rsplit("table ip ", 1)[1].split()[0]  # strata_<pid>_...
    server.kill()
    server.restart()
    # The throughput limit is enforced again, by the new process alone (the old one's rules went
    # with it: its janitor deletes them).
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rules = nft_ruleset()
        if old_table not in rules and rules.count(limit) == 1:
            break
        time.sleep(0.2)
    assert old_table not in rules and rules.count(limit) == 1
    efs = server.client("efs")
    mts = {m["MountTargetId"]: m for m in efs.describe_mount_targets(FileSystemId=fs_id)["MountTargets"]}
    assert {m["IpAddress"] for m in mts.values()} == {a["IpAddress"], b["IpAddress"]}
    assert all(m["LifeCycleState"] == "available" for m in mts.values())
    assert cat(url(b["IpAddress"], "kept.txt")) == "before the crash\n"
    put(tmp_path, "after\n", url(b["IpAddress"], "after.txt"))
    assert cat(url(a["IpAddress"], "after.txt")) == "after\n"
    assert efs.describe_access_points(AccessPointId=ap)["AccessPoints"][0]["PosixUser"]["Gid"] == 1001
    # The lifecycle on the simulated clock: not read for 7 days -> IA; one read -> Standard again.
    efs.put_lifecycle_configuration(
        FileSystemId=fs_id,
        LifecyclePolicies=[
            {"TransitionToIA": "AFTER_7_DAYS"},
            {"TransitionToPrimaryStorageClass": "AFTER_1_ACCESS"},
        ],
    )
    # (libnfs 4.0 cannot send an NFSv4 WRITE of 4,000 bytes or more: "ZDR error: Failed to
    # encode COMPOUND4args", a client bug; the files here stay below it.)
    put(tmp_path, "x" * 3000, url(a["IpAddress"], "cold.bin"))
    # Read once now: under relatime the read after the move below (minutes later in real time)
    # would not update the atime again, yet it must bring the file back.
    assert cat(url(a["IpAddress"], "cold.bin")) == "x" * 3000
    size = efs.describe_file_systems(FileSystemId=fs_id)["FileSystems"][0]["SizeInBytes"]
    assert size["ValueInIA"] == 0
    server.advance_clock("8d")
    size = efs.describe_file_systems(FileSystemId=fs_id)["FileSystems"][0]["SizeInBytes"]
    assert size["ValueInIA"] == size["Value"] - 6144 == 3 * 4096
    assert size["ValueInStandard"] == 6144
    assert cat(url(a["IpAddress"], "cold.bin")) == "x" * 3000
    size = efs.describe_file_systems(FileSystemId=fs_id)["FileSystems"][0]["SizeInBytes"]
    assert size["ValueInIA"] == 2 * 4096  # the two files not read stay in IA
    with urllib.request.urlopen(f"{server.endpoint}/_strata/meter?service=efs", timeout=10) as r:
        events = json.loads(r.read())["events"]
    classes = {e["dims"].get("storage_class") for e in events if e["event"] == "TimedStorage-ByteHrs"}
    assert classes == {"Standard", "IA"}
    assert sum(e["quantity"] for e in events if e["event"] == "IADataAccess-Bytes") == 4096
    put(tmp_path, "through the access point\n", url(b["IpAddress"], "ap.txt", ap))  # its proxy is back
    assert ls(url(a["IpAddress"], ""))["ap.txt"] == (0, 1001)


def test_a_killed_nfs_server_is_restarted(strata_server, tmp_path: Path) -> None:  # noqa: ANN001
    import os
    import signal
    import time

    efs, fs_id, (mt,) = file_system_with_targets(strata_server, zones=1)
    put(tmp_path, "still here\n", url(mt["IpAddress"], "kept.txt"))
    run = strata_server.data_dir / "efs" / "nfs" / mt["MountTargetId"] / "root"
    pid = int((run / "nfs.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the supervisor starts a new server (a new pidfile)
        try:
            if int((run / "nfs.pid").read_text()) != pid:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    while time.monotonic() < deadline:
        done = nfs("nfs-cat", url(mt["IpAddress"], "kept.txt"), check=False)
        if done.returncode == 0:
            break
        time.sleep(0.2)
    assert done.stdout == "still here\n"
    while time.monotonic() < deadline:  # both of its servers (root, access points) running again
        state = efs.describe_mount_targets(MountTargetId=mt["MountTargetId"])["MountTargets"][0]
        if state["LifeCycleState"] == "available":
            break
        time.sleep(0.2)
    assert state["LifeCycleState"] == "available"


def policy(*actions: str) -> str:
    statement = {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": list(actions), "Resource": "*"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def test_file_system_policy_governs_nfs_clients(strata_server, tmp_path: Path) -> None:  # noqa: ANN001
    efs, fs_id, (mt,) = file_system_with_targets(strata_server, zones=1)
    ip = mt["IpAddress"]
    put(tmp_path, "readable\n", url(ip, "r.txt"))
    # Mount with root access but no write: reads work, writes are refused.
    read_only = policy("elasticfilesystem:ClientMount", "elasticfilesystem:ClientRootAccess")
    efs.put_file_system_policy(FileSystemId=fs_id, Policy=read_only)
    assert cat(url(ip, "r.txt")) == "readable\n"
    assert put(tmp_path, "no\n", url(ip, "w1.txt"), check=False).returncode != 0
    # Mount and write, but no root access: root is squashed to the anonymous user, who may not
    # write into the root-owned (755) root directory.
    both = policy("elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite")
    efs.put_file_system_policy(FileSystemId=fs_id, Policy=both)
    assert put(tmp_path, "no\n", url(ip, "w2.txt"), check=False).returncode != 0
    assert nfs("nfs-cat", url(ip, "r.txt"), check=False).returncode != 0  # root's 0660 file
    # Nothing granted to anonymous clients: no mount at all.
    efs.put_file_system_policy(FileSystemId=fs_id, Policy=policy("elasticfilesystem:DescribeMountTargets"))
    assert nfs("nfs-cat", url(ip, "r.txt"), check=False).returncode != 0
    # No policy: full access again, as on AWS.
    efs.delete_file_system_policy(FileSystemId=fs_id)
    put(tmp_path, "yes\n", url(ip, "w3.txt"))
    assert set(ls(url(ip, ""))) == {"r.txt", "w3.txt"}


def test_lifecycle_to_archive(strata_factory, tmp_path: Path) -> None:  # noqa: ANN001
    server = strata_factory()
    efs, fs_id, (mt,) = file_system_with_targets(server, zones=1, ThroughputMode="elastic")
    efs.put_lifecycle_configuration(
        FileSystemId=fs_id,
        LifecyclePolicies=[{"TransitionToIA": "AFTER_1_DAY"}, {"TransitionToArchive": "AFTER_7_DAYS"}],
    )
    put(tmp_path, "old\n", url(mt["IpAddress"], "old.txt"))

    def size() -> dict:
        return efs.describe_file_systems(FileSystemId=fs_id)["FileSystems"][0]["SizeInBytes"]

    assert (size()["ValueInIA"], size()["ValueInArchive"]) == (0, 0)
    server.advance_clock("2d")
    assert (size()["ValueInIA"], size()["ValueInArchive"]) == (4096, 0)
    server.advance_clock("6d")
    now = size()
    assert (now["ValueInIA"], now["ValueInArchive"], now["ValueInStandard"]) == (0, 4096, 6144)
    # Without AFTER_1_ACCESS a read leaves the file where it is.
    assert cat(url(mt["IpAddress"], "old.txt")) == "old\n"
    assert size()["ValueInArchive"] == 4096


def _kernel_nfs4() -> bool:
    try:
        return "nfs4" in Path("/proc/filesystems").read_text().split()
    except OSError:
        return False


def test_kernel_client_mount(strata_server, tmp_path: Path) -> None:  # noqa: ANN001
    """The README's `mount -t nfs4` line, where the machine has a kernel NFS client."""
    import os
    import subprocess

    import pytest

    if not (_kernel_nfs4() and shutil.which("mount.nfs4")):
        pytest.skip(
            "no kernel NFSv4 client on this machine (nfs4 not in /proc/filesystems): libnfs tests only"
        )
    efs, fs_id, (mt,) = file_system_with_targets(strata_server, zones=1)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(
        ["mount", "-t", "nfs4", "-o", "nfsvers=4.1", f"{mt['IpAddress']}:/", str(mnt)], check=True, timeout=60
    )
    try:
        data = os.urandom(3 << 20)
        (mnt / "kernel.bin").write_bytes(data)
        os.sync()
    finally:
        subprocess.run(["umount", str(mnt)], timeout=60)
    assert nfs("nfs-ls", url(mt["IpAddress"], "")).stdout.count("kernel.bin") == 1
    assert (fs_files(strata_server, fs_id) / "kernel.bin").read_bytes() == data


def test_encrypted_file_system(strata_factory, tmp_path: Path) -> None:  # noqa: ANN001
    import pytest

    if shutil.which("mkfs.ext4") is None:
        pytest.skip("mkfs.ext4 is not installed")
    from botocore.exceptions import ClientError

    server = strata_factory()
    try:
        efs, fs_id, (a, b) = file_system_with_targets(server, zones=2, Encrypted=True)
    except ClientError as e:
        if "cannot be served here" in str(e):  # no root, no loop devices, mount refused
            pytest.skip(str(e))
        raise
    fs = efs.describe_file_systems(FileSystemId=fs_id)["FileSystems"][0]
    kms = server.client("kms")
    assert (
        fs["Encrypted"]
        and fs["KmsKeyId"] == kms.describe_key(KeyId="alias/aws/elasticfilesystem")["KeyMetadata"]["Arn"]
    )
    secret = b"attack at dawn, " * 4096
    client = LibNfs(a["IpAddress"])
    try:
        client.write("/plans-with-a-distinct-name.txt", secret)
    finally:
        client.close()
    assert nfs_bytes(url(b["IpAddress"], "plans-with-a-distinct-name.txt")) == secret
    server.kill()  # the volume stays mounted; the restart unlocks it again
    server.restart()
    assert nfs_bytes(url(b["IpAddress"], "plans-with-a-distinct-name.txt")) == secret
    server.stop()  # unmounted: what is left on disk is the image
    image = server.data_dir / "efs" / "volumes" / f"{fs_id}.img"
    assert not in_sparse_file(image, b"attack at dawn")
    assert not in_sparse_file(image, b"plans-with-a-distinct-name")
    server.start()
    efs = server.client("efs")
    assert nfs_bytes(url(a["IpAddress"], "plans-with-a-distinct-name.txt")) == secret
    for mt in (a, b):
        efs.delete_mount_target(MountTargetId=mt["MountTargetId"])
    efs.delete_file_system(FileSystemId=fs_id)
    assert not image.exists()
