"""ElastiCache benchmarks: endpoint throughput vs the engine itself, and create -> available time.

1. Throughput: redis-benchmark (SET/GET, 50 clients, pipeline 1 and 16) through a replication
   group's primary endpoint vs straight to the primary node's own address, interleaved rounds,
   medians compared. Bar: the endpoint keeps >= 80 % of direct throughput. Also over TLS.
   With --compare-router, the same load through the shared EndpointRouter (strata/engines/endpoint:
   nft or HAProxy) in front of the same node, for reference.
2. Create -> available: wall time from the Create call until Describe says available and the
   engine answers through its endpoint (AWS takes minutes; the bar is < 2 s). For cluster mode,
   right after that (untimed) one key is written into each of the 16384 slots straight to the
   owner the configuration endpoint names, with no retry: 'available' must mean usable.

Usage:  python bench/elasticache_bench.py [--rounds 3] [--requests 200000] [--compare-router]
                                          [--only create|throughput]
The machine is shared: the load average is printed before and after; compare medians of
several rounds taken under similar load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis  # noqa: E402
from pymemcache.client.base import Client as MemcacheClient  # noqa: E402

from tests.strata_process import StrataProcess  # noqa: E402


def redis_benchmark(
    host: str, port: int, requests: int, pipeline: int, tls_ca: str | None = None
) -> dict[str, float]:
    argv = [
        "redis-benchmark",
        "-h",
        host,
        "-p",
        str(port),
        "-t",
        "set,get",
        "-n",
        str(requests),
        "-c",
        "50",
        "-P",
        str(pipeline),
        "--csv",
    ]
    if tls_ca:
        argv += ["--tls", "--cacert", tls_ca]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=True).stdout
    rps = {}
    for line in out.splitlines():
        cells = [c.strip('"') for c in line.split(",")]
        if cells and cells[0] in ("SET", "GET"):
            rps[cells[0]] = float(cells[1])
    return rps


def throughput(
    ec, server: StrataProcess, rounds: int, requests: int, tls: bool, compare_router: bool
) -> None:
    gid = f"bench-{'tls' if tls else 'plain'}"
    ec.create_replication_group(
        ReplicationGroupId=gid,
        ReplicationGroupDescription="bench",
        Engine="redis",
        NumCacheClusters=2,
        TransitEncryptionEnabled=tls,
    )
    g = ec.describe_replication_groups(ReplicationGroupId=gid)["ReplicationGroups"][0]
    ng = g["NodeGroups"][0]
    endpoint = ng["PrimaryEndpoint"]
    primary = next(m for m in ng["NodeGroupMembers"] if m["CurrentRole"] == "primary")["ReadEndpoint"]
    ca = str(Path(server.data_dir) / "tls" / "ca.pem") if tls else None
    targets = {
        "endpoint": (endpoint["Address"], endpoint["Port"]),
        "direct": (primary["Address"], primary["Port"]),
    }
    router = None
    if compare_router and not tls:
        from strata.engines.endpoint import EndpointRouter

        for mode in (None, "haproxy"):  # nft first; HAProxy where kernel redirection cannot reach the node
            try:
                if mode:
                    os.environ["STRATA_ENDPOINT_MODE"] = mode
                router = EndpointRouter(Path(tempfile.mkdtemp()), name="bench")
                router.start()
                port = 47990
                router.set_route("bench", port, [(primary["Address"], primary["Port"])])
                targets[f"shared router ({type(router).__name__})"] = ("127.0.0.1", port)
                break
            except Exception as e:  # noqa: BLE001 - reference only
                print(f"  (shared EndpointRouter, mode {mode or 'auto'}: {e})")
                router = None
    try:
        for pipeline in (1, 16):
            results: dict[str, list[float]] = {name: [] for name in targets}
            for _ in range(rounds):
                for name, (host, port) in targets.items():
                    rps = redis_benchmark(host, port, requests, pipeline, ca)
                    results[name].append((rps["SET"] + rps["GET"]) / 2)
            med = {name: statistics.median(v) for name, v in results.items()}
            label = f"{'TLS' if tls else 'plain'} -P {pipeline}"
            for name, value in med.items():
                ratio = value / med["direct"] * 100
                print(
                    f"  {label:12s} {name:24s} {value:12,.0f} req/s  ({ratio:5.1f} % of direct)  rounds={results[name]}"
                )
    finally:
        if router is not None:
            router.stop()
        ec.delete_replication_group(ReplicationGroupId=gid)


def until_available(ec, check) -> None:
    while True:
        try:
            if check():
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.01)


_KEY_FOR_SLOT: dict[int, str] = {}


def every_slot_writable(ec, gid: str) -> None:
    """Write one key into every one of the 16384 hash slots, each straight to the node the
    configuration endpoint names as its owner (no retries, no redirections): raises otherwise."""
    from redis.crc import key_slot

    g = ec.describe_replication_groups(ReplicationGroupId=gid)["ReplicationGroups"][0]
    conf = g["ConfigurationEndpoint"]
    if not _KEY_FOR_SLOT:
        i = 0
        while len(_KEY_FOR_SLOT) < 16384:
            _KEY_FOR_SLOT.setdefault(key_slot(f"k{i}".encode()), f"k{i}")
            i += 1
    written = 0
    for low, high, owner, *_ in redis.Redis(conf["Address"], conf["Port"]).cluster("slots"):
        pipe = redis.Redis(owner[0], owner[1]).pipeline(transaction=False)
        for slot in range(low, high + 1):
            pipe.set(_KEY_FOR_SLOT[slot], slot)
        written += sum(1 for r in pipe.execute(raise_on_error=True) if r is True)
    if written != 16384:
        raise SystemExit(f"{gid}: only {written} of 16384 slots took a write right after 'available'")


def create_times(ec, rounds: int, ca: str) -> None:
    cases = {}

    def single(i: int) -> None:
        cid = f"t-single-{i}"
        ec.create_cache_cluster(CacheClusterId=cid, Engine="redis", NumCacheNodes=1)

        def ok() -> bool:
            c = ec.describe_cache_clusters(CacheClusterId=cid, ShowCacheNodeInfo=True)["CacheClusters"][0]
            ep = c["CacheNodes"][0]["Endpoint"]
            return c["CacheClusterStatus"] == "available" and redis.Redis(ep["Address"], ep["Port"]).ping()

        until_available(ec, ok)

    def memcached(i: int) -> None:
        cid = f"t-mc-{i}"
        ec.create_cache_cluster(CacheClusterId=cid, Engine="memcached", NumCacheNodes=3)

        def ok() -> bool:
            c = ec.describe_cache_clusters(CacheClusterId=cid)["CacheClusters"][0]
            ep = c["ConfigurationEndpoint"]
            return (
                c["CacheClusterStatus"] == "available"
                and MemcacheClient((ep["Address"], ep["Port"])).version()
            )

        until_available(ec, ok)

    def group(i: int, **kw) -> None:
        gid = f"t-group-{i}-{len(kw)}-{kw.get('NumNodeGroups', 1)}"
        ec.create_replication_group(ReplicationGroupId=gid, ReplicationGroupDescription="t", **kw)

        tls = (
            {"ssl": True, "ssl_ca_certs": ca, "password": kw.get("AuthToken")}
            if kw.get("TransitEncryptionEnabled")
            else {}
        )

        def ok() -> bool:
            g = ec.describe_replication_groups(ReplicationGroupId=gid)["ReplicationGroups"][0]
            ep = g.get("ConfigurationEndpoint") or g["NodeGroups"][0]["PrimaryEndpoint"]
            return g["Status"] == "available" and redis.Redis(ep["Address"], ep["Port"], **tls).ping()

        until_available(ec, ok)
        if kw.get("NumNodeGroups"):
            checks.append(gid)

    checks: list[str] = []

    cases["redis single node"] = single
    cases["memcached 3 nodes"] = memcached
    cases["group 1 primary + 2 replicas"] = lambda i: group(
        i, NumCacheClusters=3, AutomaticFailoverEnabled=True
    )
    cases["group 1 primary + 2 replicas TLS"] = lambda i: group(
        i, NumCacheClusters=3, TransitEncryptionEnabled=True, AuthToken="bench-token-0123456789"
    )
    cases["cluster mode 3 shards x (1 + 0 replicas)"] = lambda i: group(
        i, NumNodeGroups=3, ReplicasPerNodeGroup=0
    )
    cases["cluster mode 3 shards x (1 + 1 replica)"] = lambda i: group(
        i, NumNodeGroups=3, ReplicasPerNodeGroup=1
    )
    cases["cluster mode 3 shards x (1 + 2 replicas)"] = lambda i: group(
        i, NumNodeGroups=3, ReplicasPerNodeGroup=2
    )
    for name, run in cases.items():
        times = []
        for i in range(rounds):
            t0 = time.perf_counter()
            run(i)
            times.append(time.perf_counter() - t0)
            for gid in checks:  # untimed: "available" must mean every slot takes a write right away
                every_slot_writable(ec, gid)
                ec.delete_replication_group(ReplicationGroupId=gid)
            checks.clear()
        print(
            f"  {name:34s} median {statistics.median(times):.3f} s  max {max(times):.3f} s  ({rounds} runs)"
        )


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--compare-router", action="store_true")
    ap.add_argument("--only", choices=["create", "throughput"], help="run one part of the benchmark")
    args = ap.parse_args()
    if shutil.which("redis-benchmark") is None:
        sys.exit("redis-benchmark not found: install Debian's redis-tools (scripts/install.sh)")
    root = Path(tempfile.mkdtemp(prefix="strata-ec-bench-"))
    server = StrataProcess(root / "data").start()
    try:
        ec = server.client("elasticache")
        print(f"load average before: {os.getloadavg()}")
        if args.only != "throughput":
            print("create -> available (Create call until Describe says available and the engine answers):")
            create_times(ec, args.rounds, str(Path(server.data_dir) / "tls" / "ca.pem"))
        if args.only != "create":
            print("throughput, mean of SET and GET (redis-benchmark -c 50):")
            throughput(ec, server, args.rounds, args.requests, tls=False, compare_router=args.compare_router)
            throughput(ec, server, args.rounds, args.requests // 4, tls=True, compare_router=False)
        print(f"load average after: {os.getloadavg()}")
    except BaseException:
        print(server.log_tail(80))
        raise
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
