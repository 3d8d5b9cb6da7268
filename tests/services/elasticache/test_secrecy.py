"""An AuthToken never sits in a file other local users can read; engines run as their own user."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from tests.services.elasticache.conftest import eventually

TOKEN = "local-secret-token-0123456789"


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")


def test_auth_token_config_is_private_and_engine_runs_as_its_own_user(strata_server, ec, cleanup, unique):
    cid = f"sec-{unique}"
    ec.create_cache_cluster(
        CacheClusterId=cid, Engine="redis", NumCacheNodes=1, TransitEncryptionEnabled=True, AuthToken=TOKEN
    )
    cleanup.append(("cluster", cid))
    eventually(
        lambda: (
            ec.describe_cache_clusters(CacheClusterId=cid)["CacheClusters"][0]["CacheClusterStatus"]
            == "available"
        ),
        180,
        "the cluster to be available",
    )
    data_dir = Path(strata_server.data_dir)
    assert data_dir.stat().st_mode & 0o777 == 0o700
    confs = [p for p in data_dir.rglob("redis.conf") if TOKEN in p.read_text()]
    assert confs, "no redis.conf holds the token"
    engine = pwd.getpwnam("strata-engine").pw_uid if os.geteuid() == 0 else os.geteuid()
    for conf in confs:
        st = conf.stat()
        assert st.st_mode & 0o077 == 0, oct(st.st_mode)
        assert st.st_uid == engine
        pid = int((conf.parent / "redis.pid").read_text())
        assert _uid_of(pid) == engine
