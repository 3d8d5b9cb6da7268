"""The credential proxy coming and going on a mount target (its first access point with
SecondaryGids, and the deletion of the last), seen by clients connected meanwhile."""

from __future__ import annotations

from pathlib import Path

from tests.services.efs.helpers import file_system_with_targets, ls, needs_nfs, put, url
from tests.services.efs.raw_nfs4 import RawNfs4, getfh, putrootfh

pytestmark = needs_nfs


def _pid(run: Path, name: str) -> int:
    return int((run / f"{name}.pid").read_text())


def _answers(client: RawNfs4) -> bool:
    """Does the server still answer on this connection (not closed by a restart)?"""
    try:
        return len(client.compound(putrootfh(), getfh())[-1][1]) > 0
    except (ConnectionError, OSError):
        return False


def test_secondary_gids_coming_and_going_keep_clients_connected(strata_server, tmp_path: Path) -> None:  # noqa: ANN001
    efs, fs_id, (mt,) = file_system_with_targets(strata_server, zones=1)
    ip, run = mt["IpAddress"], strata_server.data_dir / "efs" / "nfs" / mt["MountTargetId"]
    shared = {"Path": "/shared", "CreationInfo": {"OwnerUid": 1001, "OwnerGid": 1001, "Permissions": "777"}}
    plain = efs.create_access_point(
        FileSystemId=fs_id, PosixUser={"Uid": 1001, "Gid": 1001}, RootDirectory=shared
    )["AccessPointId"]
    put(tmp_path, "plain\n", url(ip, "a.txt", plain))
    root_pid = _pid(run / "root", "nfs")
    on_2049 = RawNfs4(ip, 2049)
    try:
        assert _answers(on_2049)
        # The first access point with secondary groups: the proxy takes port 2050 and the access
        # points' server starts again behind it (its port is read at start only); port 2049's
        # server and its clients are not touched.
        team = efs.create_access_point(
            FileSystemId=fs_id,
            PosixUser={"Uid": 1002, "Gid": 1002, "SecondaryGids": [3000]},
            RootDirectory=shared,
        )["AccessPointId"]
        assert _pid(run / "root", "nfs") == root_pid
        assert _answers(on_2049)
        put(tmp_path, "team\n", url(ip, "t.txt", team))
        ap_pid, proxy_pid = _pid(run / "access-points", "nfs"), _pid(run / "access-points", "cred-proxy")
        on_2050 = RawNfs4(ip, 2050)
        try:
            assert _answers(on_2050)
            # The last one deleted: nothing restarts, connections stay.
            efs.delete_access_point(AccessPointId=team)
            assert _pid(run / "access-points", "nfs") == ap_pid
            assert _pid(run / "access-points", "cred-proxy") == proxy_pid
            assert _answers(on_2050) and _answers(on_2049)
        finally:
            on_2050.close()
    finally:
        on_2049.close()
    # The remaining access point still runs as its user; the deleted one serves nothing.
    put(tmp_path, "still squashed\n", url(ip, "b.txt", plain))
    assert ls(url(ip, "shared"))["b.txt"] == (1001, 1001)
    assert put(tmp_path, "gone\n", url(ip, "c.txt", team), check=False).returncode != 0
