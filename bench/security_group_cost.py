"""What enforced security groups cost a permitted connection (issue 23's bar: within 5%).

Two servers of this checkout side by side: one enforcing security groups (nftables, the default
as root), one with `STRATA_SECURITY_GROUPS=unenforced` (no filtering at all). On each, a PostgreSQL
instance and a Redis cache cluster; on the enforcing one they carry a security group of 20 ingress
rules (19 for other networks, one allowing 127.0.0.1), so every benchmark connection is checked
against the rules and permitted. Then alternating rounds of

    pgbench -S (select-only, 8 clients) through the instance's endpoint, and
    redis-benchmark GET/SET (50 clients) through the node's endpoint,

each ratio the median of the per-round ratios enforced / unenforced.

Usage: python bench/security_group_cost.py [--rounds 5] [--seconds 8] [--requests 200000]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from elasticache_bench import redis_benchmark  # noqa: E402
from rds_bench import PASSWORD, USER, pgbench  # noqa: E402

from strata.engines.postgres import pg_bin  # noqa: E402
from tests.strata_process import StrataProcess  # noqa: E402


def rules() -> list[dict]:
    other = [
        {"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535, "IpRanges": [{"CidrIp": f"10.{i}.0.0/16"}]}
        for i in range(19)
    ]
    return [
        *other,
        {"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535, "IpRanges": [{"CidrIp": "127.0.0.1/32"}]},
    ]


def resources(server: StrataProcess, guarded: bool) -> tuple[int, int]:
    """(PostgreSQL endpoint port, Redis endpoint port) of a new instance and cache cluster."""
    groups: dict = {}
    if guarded:
        ec2 = server.client("ec2")
        gid = ec2.create_security_group(GroupName="bench", Description="bench")["GroupId"]
        ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=rules())
        groups = {"rds": {"VpcSecurityGroupIds": [gid]}, "cache": {"SecurityGroupIds": [gid]}}
    rds, cache = server.client("rds"), server.client("elasticache")
    rds.create_db_instance(
        DBInstanceIdentifier="bench",
        Engine="postgres",
        MasterUsername=USER,
        MasterUserPassword=PASSWORD,
        DBInstanceClass="db.t3.micro",
        AllocatedStorage=20,
        DBName="app",
        **groups.get("rds", {}),
    )
    cache.create_cache_cluster(
        CacheClusterId="bench", Engine="redis", CacheNodeType="cache.t3.micro", NumCacheNodes=1,
        **groups.get("cache", {}),
    )  # fmt: skip
    rds.get_waiter("db_instance_available").wait(DBInstanceIdentifier="bench", WaiterConfig={"Delay": 1})
    cache.get_waiter("cache_cluster_available").wait(CacheClusterId="bench", WaiterConfig={"Delay": 1})
    pg_port = rds.describe_db_instances(DBInstanceIdentifier="bench")["DBInstances"][0]["Endpoint"]["Port"]
    node = cache.describe_cache_clusters(CacheClusterId="bench", ShowCacheNodeInfo=True)["CacheClusters"][0]
    redis_port = node["CacheNodes"][0]["Endpoint"]["Port"]
    subprocess.run(
        [pg_bin("pgbench"), "-h", "127.0.0.1", "-p", str(pg_port), "-U", USER, "-i", "-s", "2", "-q", "app"],
        env={"PGPASSWORD": PASSWORD, "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
    )
    return pg_port, redis_port


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--requests", type=int, default=200000)
    a = ap.parse_args()
    if shutil.which("redis-benchmark") is None:
        sys.exit("redis-benchmark not found: install Debian's redis-tools (scripts/install.sh)")
    tmp = Path(tempfile.mkdtemp(prefix="sg-cost-"))
    enforced = StrataProcess(tmp / "enforced").start()
    open_ = StrataProcess(tmp / "open", extra_env={"STRATA_SECURITY_GROUPS": "unenforced"}).start()
    try:
        ports = {"enforced": resources(enforced, True), "open": resources(open_, False)}
        pg: dict[str, list[float]] = {"enforced": [], "open": []}
        rd: dict[str, list[float]] = {"enforced": [], "open": []}
        for r in range(a.rounds):
            order = ["enforced", "open"] if r % 2 == 0 else ["open", "enforced"]
            for name in order:
                pg[name].append(pgbench(ports[name][0], a.seconds, 8))
                got = redis_benchmark("127.0.0.1", ports[name][1], a.requests, 1)
                rd[name].append((got["GET"] + got["SET"]) / 2)
        pg_ratio = statistics.median(e / o for e, o in zip(pg["enforced"], pg["open"], strict=True))
        rd_ratio = statistics.median(e / o for e, o in zip(rd["enforced"], rd["open"], strict=True))
        print(f"# security_group_cost: {a.rounds} alternating rounds, 20 ingress rules vs no filtering")
        print(
            f"  pgbench -S -c 8 TPS: enforced {statistics.median(pg['enforced']):,.0f}  "
            f"open {statistics.median(pg['open']):,.0f}  ratio {pg_ratio:.3f}"
        )
        print(
            f"  redis-benchmark GET/SET req/s: enforced {statistics.median(rd['enforced']):,.0f}  "
            f"open {statistics.median(rd['open']):,.0f}  ratio {rd_ratio:.3f}"
        )
        print(
            "  rounds pgbench:",
            [(round(e), round(o)) for e, o in zip(pg["enforced"], pg["open"], strict=True)],
        )
        print(
            "  rounds redis:", [(round(e), round(o)) for e, o in zip(rd["enforced"], rd["open"], strict=True)]
        )
        worst = min(pg_ratio, rd_ratio)
        print(f"  bar (within 5%): {'met' if worst >= 0.95 else 'NOT met'}")
    finally:
        enforced.stop()
        open_.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
