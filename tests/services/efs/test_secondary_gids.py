"""Access points' SecondaryGids, honoured through the credential proxy in front of port 2050
(strata.engines.nfs_cred_proxy), with nfs-rs (NFSv4.1) and libnfs (NFSv4.0) as clients."""

from __future__ import annotations

from pathlib import Path

import pytest

from strata.engines.ganesha import ACCESS_POINT_UPSTREAM_PORT
from tests.services.efs.helpers import cat, file_system_with_targets, needs_nfs, nfs, put, url

nfs_rs = pytest.importorskip("nfs_rs", reason="needs nfs-rs (pip install nfs-rs; in the test extras)")
pytestmark = needs_nfs


def connect(ip: str, path: str = "", port: int | None = None, **kw: object) -> nfs_rs.Client:
    extra = f"&nfsport={port}" if port else ""
    return nfs_rs.Client.connect(
        f"nfs://{ip}/{path}?version=4.1{extra}", connect_timeout=30, operation_timeout=60, **kw
    )


def readable(ip: str, ap: str, name: str, **kw: object) -> bool:
    try:
        with connect(ip, ap, 2050, **kw) as client, client.open(name, "rb") as f:
            return f.read(10) == b"team only\n"
    except nfs_rs.NfsError:
        return False


def test_secondary_gids_are_honoured_and_cannot_be_forged(strata_server, tmp_path: Path) -> None:  # noqa: ANN001
    efs, fs_id, (mt,) = file_system_with_targets(strata_server, zones=1)
    ip = mt["IpAddress"]
    with connect(ip) as root:  # a file only group 3000 may read and write, in a directory anyone may use
        root.mkdir("shared")
        root.chmod("shared", 0o777)
        with root.open("shared/team.txt", "wb") as f:
            f.write(b"team only\n")
        root.chown("shared/team.txt", 0, 3000)
        root.chmod("shared/team.txt", 0o060)

    def access_point(**posix: object) -> str:
        return efs.create_access_point(
            FileSystemId=fs_id,
            PosixUser={"Uid": 1001, "Gid": 1001, **posix},
            RootDirectory={"Path": "/shared"},
        )["AccessPointId"]

    team, other, plain = (
        access_point(SecondaryGids=[2000, 3000]),
        access_point(SecondaryGids=list(range(100, 116))),
        access_point(),
    )
    # Up to 16 secondary groups (AWS's limit, and AUTH_SYS's), described as given.
    described = efs.describe_access_points(AccessPointId=other)["AccessPoints"][0]["PosixUser"]
    assert described == {"Uid": 1001, "Gid": 1001, "SecondaryGids": list(range(100, 116))}
    # Group 3000 among the access point's groups: read and write through it.
    assert readable(ip, team, "team.txt")
    with connect(ip, team, 2050) as client:
        with client.open("team.txt", "r+b") as f:
            f.write_at(b"TEAM", 0)
        with client.open("made.txt", "wb") as f:
            f.write(b"x")
        assert (client.stat("made.txt").uid, client.stat("made.txt").gid) == (1001, 1001)
    # Without it (other groups, or none), and whatever identity the client claims: refused.
    assert not readable(ip, other, "team.txt")
    assert not readable(ip, plain, "team.txt")
    assert not readable(ip, other, "team.txt", uid=0, gid=3000)
    assert not readable(ip, other, "team.txt", uid=1001, gid=3000)
    # NFSv4.0 (libnfs) through the proxy too: same identity, group 3000 granted.
    assert cat(url(ip, "team.txt", team)) == "TEAM only\n"
    assert nfs("nfs-cat", url(ip, "team.txt", other), check=False).returncode != 0
    put(tmp_path, "from v4.0\n", url(ip, "v40.txt", team))
    with connect(ip) as root:
        assert (root.stat("shared/v40.txt").uid, root.stat("shared/v40.txt").gid) == (1001, 1001)
    # The unsquashed server behind the proxy takes no client from an unreserved port.
    with pytest.raises(nfs_rs.NfsError):
        with connect(ip, team, ACCESS_POINT_UPSTREAM_PORT, uid=0, gid=3000, noresvport=True) as direct:
            direct.stat("team.txt")
    # Access points without secondary groups behind the same proxy: squashed as before.
    with connect(ip, plain, 2050, uid=0, gid=0) as client:
        with client.open("plain.txt", "wb") as f:
            f.write(b"y")
        assert (client.stat("plain.txt").uid, client.stat("plain.txt").gid) == (1001, 1001)
