"""What the ECPU proxy costs a serverless cache, and what a maximum does to throughput.

One Valkey serverless cache, redis-benchmark (TLS, SET/GET, 50 clients, pipeline 1 and 16) on its
endpoint in interleaved rounds (`--engine memcached`: one memcached serverless cache, SET/GET of
3-byte values from --clients processes with one TLS connection each, as no memcached load tool
with TLS is installed; the client is Python, so compare modes, not absolute figures):
- `direct`: no ECPUPerSecond maximum, the engine itself on the endpoint;
- `proxy`: Maximum 15,000,000 (AWS's largest: nothing is held), the same load through the proxy;
- `limited`: Maximum --limit (default 20,000): requests/s should settle near the limit (each
  small command is 1 ECPU), plus the one-second burst the bucket holds.
Medians per mode are printed with the load average; the machine is shared, compare runs taken
under similar load. Also printed: the Strata process's CPU time per request in each mode (the
proxy's cost, steadier than throughput on a busy machine; `direct` is the idle server's own).

`--checkout PATH` runs the server from another checkout (e.g. `git worktree add /tmp/old
<commit>`): the same modes on older code, to compare with a run on this one.

Usage:  python bench/elasticache_serverless_ecpu.py [--engine valkey|memcached] [--rounds 3]
            [--requests 100000] [--limit 20000] [--clients 8] [--checkout PATH]
"""

from __future__ import annotations

import argparse
import multiprocessing
import multiprocessing.pool
import os
import socket
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.elasticache_bench import redis_benchmark  # noqa: E402
from bench.local_server import cpu_seconds  # noqa: E402
from tests.strata_process import StrataProcess  # noqa: E402

MAX_ECPU = 15_000_000


def _memcached_client(job: tuple[str, int, str, str, int, int]) -> int:
    """One connection sending `count` commands `pipeline` at a time; how many were answered."""
    host, port, ca, command, count, pipeline = job
    tls = ssl.create_default_context(cafile=ca)
    request, answer = (
        (b"set bench 0 0 3\r\nabc\r\n", b"STORED\r\n") if command == "SET" else (b"get bench\r\n", b"END\r\n")
    )
    batch = request * pipeline
    with socket.create_connection((host, port), timeout=60) as raw:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with tls.wrap_socket(raw, server_hostname=host) as conn:
            for _ in range(count // pipeline):
                conn.sendall(batch)
                data = b""
                while data.count(answer) < pipeline:
                    chunk = conn.recv(65536)
                    if not chunk:
                        raise ConnectionError("the cache closed the connection")
                    data += chunk
    return count // pipeline * pipeline


def memcached_benchmark(
    pool: multiprocessing.pool.Pool, clients: int, host: str, port: int, requests: int, pipeline: int, ca: str
) -> dict[str, float]:
    """Requests/s of SET then GET, `requests` of each spread over `clients` connections."""
    out = {}
    for command in ("SET", "GET"):
        jobs = [(host, port, ca, command, requests // clients, pipeline)] * clients
        start = time.perf_counter()
        done = sum(pool.map(_memcached_client, jobs))
        out[command] = done / (time.perf_counter() - start)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--limit", type=int, default=20_000)
    ap.add_argument("--engine", choices=("valkey", "memcached"), default="valkey")
    ap.add_argument("--clients", type=int, default=8, help="memcached: client processes")
    ap.add_argument("--checkout", type=Path, help="run the server from this checkout")
    args = ap.parse_args()
    pool = multiprocessing.Pool(args.clients) if args.engine == "memcached" else None
    with tempfile.TemporaryDirectory() as tmp:
        server = StrataProcess(Path(tmp) / "data", cwd=args.checkout).start()
        try:
            ec = server.client("elasticache")
            name = "bench-ecpu"
            ec.create_serverless_cache(ServerlessCacheName=name, Engine=args.engine)
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
                        if pool is not None:
                            rps = memcached_benchmark(
                                pool, args.clients, ep["Address"], ep["Port"], requests, pipeline, ca
                            )
                        else:
                            rps = redis_benchmark(ep["Address"], ep["Port"], requests, pipeline, ca)
                        # SET and GET: `requests` of each
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
            if pool is not None:
                pool.close()


if __name__ == "__main__":
    main()
