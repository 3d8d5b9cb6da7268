"""Resources recorded before their security groups were enforced (a data directory of an older
Strata: an attached volume without its export's guard, an RDS instance without VpcSecurityGroups)
are guarded from the next start, as if they had been made now, not left open until modified."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from strata.engines.nft import nft_usable
from tests.services.ec2.helpers import attach, dial
from tests.services.rds.helpers import create_pg, eventually, pg_connect, wait_status


def _edit(db_path: Path, kind: str, change) -> None:  # noqa: ANN001
    """Rewrite every stored document of `kind` with `change` (None: delete it)."""
    db = sqlite3.connect(db_path)
    with db:
        for doc_id, body in db.execute("SELECT id, body FROM documents WHERE kind = ?", (kind,)).fetchall():
            new = change(json.loads(body))
            if new is None:
                db.execute("DELETE FROM documents WHERE kind = ? AND id = ?", (kind, doc_id))
            else:
                db.execute(
                    "UPDATE documents SET body = ? WHERE kind = ? AND id = ?", (json.dumps(new), kind, doc_id)
                )
    db.close()


@pytest.mark.skipif(not nft_usable(), reason="security groups are enforced with nftables (root)")
def test_records_from_before_guards_are_guarded_at_start(strata_factory, unique) -> None:
    server = strata_factory()
    ec2, rds = server.client("ec2"), server.client("rds")
    az = "us-east-1a"
    vol = ec2.create_volume(AvailabilityZone=az, Size=1, VolumeType="gp3")["VolumeId"]
    attach(server, ec2, vol, az)
    inst = create_pg(rds, f"old-{unique}", BackupRetentionPeriod=0)
    ec = server.client("elasticache")
    ec.create_replication_group(
        ReplicationGroupId=f"old-{unique}",
        ReplicationGroupDescription="d",
        Engine="redis",
        CacheNodeType="cache.t3.micro",
        NumCacheClusters=1,
    )
    default = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"]
    server.stop()

    # as an older Strata left them: no guards, an instance and a replication group without groups
    _edit(server.data_dir / "ec2" / "ec2.db", "guard", lambda d: None)
    _edit(
        server.data_dir / "rds" / "rds.db",
        "instance",
        lambda d: {k: v for k, v in d.items() if k != "vpc_groups"},
    )
    for kind in ("group", "cluster"):
        _edit(
            server.data_dir / "elasticache" / "elasticache.db",
            kind,
            lambda d: {k: v for k, v in d.items() if k not in ("security_groups", "sg_scope")},
        )
    server.start()
    nbd_port = server.health()["services"]["ec2"]["nbd"][1]
    inst = wait_status(rds, inst["DBInstanceIdentifier"])
    assert [g["VpcSecurityGroupId"] for g in inst["VpcSecurityGroups"]] == [default]
    pg_port = inst["Endpoint"]["Port"]
    # the default group: this machine's unbound clients get in, 127.0.0.2 does not
    assert dial(nbd_port, "127.0.0.2") == "dropped"
    assert dial(pg_port, "127.0.0.2") == "dropped"
    eventually(lambda: pg_connect(inst).close() or True)
    assert dial(nbd_port) == "open"
    group = ec.describe_replication_groups(ReplicationGroupId=f"old-{unique}")["ReplicationGroups"][0]
    member = ec.describe_cache_clusters(CacheClusterId=group["MemberClusters"][0])["CacheClusters"][0]
    assert member["SecurityGroups"] == [{"SecurityGroupId": default, "Status": "active"}]
    assert dial(group["NodeGroups"][0]["PrimaryEndpoint"]["Port"], "127.0.0.2") == "dropped"
