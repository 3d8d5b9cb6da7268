"""What the ECPU proxy costs a serverless cache, and what a maximum does to throughput.

One Valkey serverless cache, redis-benchmark (TLS, SET/GET, 50 clients, pipeline 1 and 16) on its
endpoint in interleaved rounds:
- `direct`: no ECPUPerSecond maximum, the engine itself on the endpoint;
- `proxy`: Maximum 15,000,000 (AWS's largest: nothing is held), the same load through the proxy;
- `limited`: Maximum --limit (default 20,000): requests/s should settle near the limit (each
  small command is 1 ECPU), plus the one-second burst the bucket holds.
Medians per mode are printed with the load average; the machine is shared, compare runs taken
under similar load. Also printed: the Strata process's CPU time per request in each mode (the
proxy's cost, steadier than throughput on a busy machine; `direct` is the idle server's own).

Usage:  python bench/elasticache_serverless_ecpu.py [--rounds 3] [--requests 100000] [--limit 20000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.elasticache_bench import redis_benchmark  # noqa: E402
from bench.local_server import cpu_seconds  # noqa: E402
from tests.strata_process import StrataProcess  # noqa: E402

MAX_ECPU = 15_000_000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--limit", type=int, default=20_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = StrataProcess(Path(tmp) / "data").start()
        try:
            ec = server.client("elasticache")
            name = "bench-ecpu"
            ec.create_serverless_cache(ServerlessCacheName=name, Engine="valkey")
            ep = ec.describe_serverless_caches(ServerlessCacheName=name)["ServerlessCaches"][0]["Endpoint"]
            ca = str(Path(server.data_dir) / "tls" / "ca.pem")
            # Modify replaces the limits given; an empty CacheUsageLimits is not sent at all, so
            # the ECPU maximum is removed by giving a storage limit alone
            storage = {"DataStorage": {"Maximum": 5000, "Unit": "GB"}}
            modes = {"direct": storage, "proxy": {**storage, "ECPUPerSecond": {"Maximum": MAX_ECPU}}}
            modes["limited"] = {**storage, "ECPUPerSecond": {"Maximum": args.limit}}
            results: dict[tuple[str, int, str], list[float]] = {}
            cpu: dict[str, list[float]] = {}  # mode -> Strata CPU microseconds per request
            assert server.proc is not None
            pid = server.proc.pid
            print(f"load before: {os.getloadavg()[0]:.2f}")
            for _ in range(args.rounds):
                for mode, limits in modes.items():
                    ec.modify_serverless_cache(ServerlessCacheName=name, CacheUsageLimits=limits)
                    for pipeline in (1, 16):
                        requests = args.requests if mode != "limited" else min(args.requests, 5 * args.limit)
                        spent = cpu_seconds(pid)
                        rps = redis_benchmark(ep["Address"], ep["Port"], requests, pipeline, ca)
                        # redis-benchmark -t set,get: `requests` of each
                        per = (cpu_seconds(pid) - spent) * 1e6 / (2 * requests)
                        cpu.setdefault(f"{mode} P{pipeline}", []).append(per)
                        for command, value in rps.items():
                            results.setdefault((mode, pipeline, command), []).append(value)
            print(f"load after: {os.getloadavg()[0]:.2f}")
            for (mode, pipeline, command), values in sorted(results.items()):
                print(
                    f"{mode:8s} P{pipeline:<3d} {command}: median {statistics.median(values):>10.0f} req/s"
                    f"  (rounds: {', '.join(f'{v:.0f}' for v in values)})"
                )
            for key, values in sorted(cpu.items()):
                print(f"Strata CPU {key}: median {statistics.median(values):.1f} us/request")
            for pipeline in (1, 16):
                for command in ("SET", "GET"):
                    direct = statistics.median(results[("direct", pipeline, command)])
                    proxy = statistics.median(results[("proxy", pipeline, command)])
                    print(f"proxy/direct P{pipeline} {command}: {proxy / direct:.2f}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
