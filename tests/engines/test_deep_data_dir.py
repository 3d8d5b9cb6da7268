"""Engines start whatever the depth of the data dir: their unix sockets must fit sun_path (107
bytes), and CI's xdist temp dirs are ~100 bytes deep before Strata adds its own directories."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
from pathlib import Path

import boto3
import pytest

from strata.engines.postgres import PgNode
from strata.engines.process import EngineError
from strata.engines.socket_paths import private_dir, short_tmp_path, socket_path
from tests.services.rds.helpers import create_pg, pg_connect
from tests.strata_process import StrataProcess

DEPTH = 150


def deep_dir(tmp_path: Path) -> Path:
    base = tmp_path / "d"
    return base / ("x" * (DEPTH - len(str(base)) - 1))


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="needs haproxy")
def test_rds_endpoint_through_haproxy_with_a_deep_data_dir(tmp_path: Path) -> None:
    """HAProxy's admin and keepalive sockets sat in the router's run dir: with a deep data dir
    HAProxy refused its configuration ('socket path ... too long (max 97)') and every RDS
    instance failed at creation on a machine without kernel redirection."""
    data = deep_dir(tmp_path)
    assert len(str(data)) == DEPTH
    data.parent.mkdir(parents=True)
    short = short_tmp_path(data / "rds" / "endpoints", "haproxy")
    server = StrataProcess(data, extra_env={"STRATA_ENDPOINT_MODE": "haproxy"}).start()
    try:
        rds = boto3.client("rds", endpoint_url=server.endpoint)
        inst = create_pg(rds, "deep-pg")
        with pg_connect(inst) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
        assert (short / "admin.sock").exists()
        assert stat.S_IMODE(short.stat().st_mode) == 0o700  # the admin socket stays private
    finally:
        server.stop()
    assert not short.exists()  # HAProxy's stop takes its short directory along


def test_socket_paths_stay_put_when_short_and_refuse_a_foreign_short_dir(tmp_path: Path) -> None:
    assert socket_path(tmp_path, "a.sock", "t") == tmp_path / "a.sock"
    deep = deep_dir(tmp_path)
    path = socket_path(deep, "a.sock", "t")
    assert len(str(path)) < 60 and path.parent == short_tmp_path(deep, "t")
    assert socket_path(deep, "a.sock", "t") == path  # the same owner finds it again
    try:
        private_dir(path.parent)
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        private_dir(path.parent)  # ours already: used again
        os.chmod(path.parent, 0o755)  # others may enter: not private any more
        with pytest.raises(EngineError):
            private_dir(path.parent)
    finally:
        path.parent.rmdir()


@pytest.mark.skipif(os.geteuid() != 0, reason="planting a directory as another user needs root")
def test_a_postgres_socket_dir_planted_by_another_user_is_refused(tmp_path: Path) -> None:
    """PostgreSQL's socket directory is in /tmp: one another local user made first (to read the
    admin socket, or swap it) is refused, not given to the engine's account and used."""
    node = PgNode(tmp_path / "node", 5432, "strata")
    planted = node.sockdir
    planted.mkdir(mode=0o700)
    try:
        nobody = pwd.getpwnam("nobody")
        os.chown(planted, nobody.pw_uid, nobody.pw_gid)
        with pytest.raises(EngineError, match="not a private directory"):
            node.start()
        assert planted.stat().st_uid == nobody.pw_uid  # left as it was
    finally:
        planted.rmdir()
