"""Reads of the PostgreSQL metadata store on the event loop: throughput, p99, and the health
endpoint while PostgreSQL is stopped (issue 22, "nothing slow on the hot path").

With `--metadata postgresql://...` every read a request made (the bucket row, the object row,
DynamoDB's table version and item, IAM's change counter) ran on the gateway's event loop: each
stalled every other request for a round trip, and while PostgreSQL did not answer (a failover, a
stopped server) the whole gateway, /_strata/health included, stalled with it. This runs each
source tree given (`--target NAME=SRC`: a checkout, e.g. `git archive` of the base commit beside
the worktree) as a gateway on one throwaway PostgreSQL (or on its embedded SQLite with
`--backend sqlite`, to see that path did not get slower), then, per round and target in turn:

- wrk with 16 connections (the shared harness, ../shared/bench): ops/s, p99 and the server's CPU
  per request for each workload;
- (`--pause S`, PostgreSQL only) GETs under the same load while every process of the PostgreSQL
  server is SIGSTOPped for S seconds (always SIGCONT after): the slowest /_strata/health answer
  while it was stopped (polled every 50 ms, a 10 s client timeout), and the load's errors.

    python bench/pg_loop.py --target base=/tmp/base --target new=. --rounds 3 --seconds 5 --pause 3

Machines are shared: compare the ratios of one run, not numbers across runs. Measured (issue 22,
reads moved off the loop; base = the commit before, medians of 3 rounds, load ~8-9 on 2 cores):
GetObject 1.26x the ops/s, GetItem 1.63x, Query 1.41x, PutObject 1.24x, PutItem 1.01x; but p99
of the reads 2-3x base's (60 -> 185 ms GET at 16 connections: the hand-off between the loop and
the read threads, not yet understood); with PostgreSQL stopped 3 s the base answered no health
check (10 s client timeout), the new one each within 2.0 s (HEALTH_WAIT: S3's own probe waits).

The p99 (issue 22, loop22b; base = the commit above, medians of 5 rounds): it is load-dependent.
At load ~22-29 the reads-inline tree before issue 22 had p99 2.5x (GetObject) and 1.8x (GetItem)
the threaded base's, at a ninth and a sixth of its ops/s: a blocked loop serves nobody while its read waits
for a CPU. Each hand-off loop -> read thread -> loop is up to three thread wake-ups and two GIL
acquisitions against a busy loop (5 ms each at most, Python's switch interval). Two changes, at
load ~9-16: GetObject's object row read with its bucket row (one hand-off, not two) and the GIL
switch interval at 0.5 ms (postgres.GIL_SWITCH): GetObject p99 297 -> 181 ms (0.61x), GetItem
61 -> 35 ms (0.57x), ops/s 0.86x and 0.99x; the switch interval alone: p99 0.86x and 0.70x.
Identical code differed by ~20% between targets of one run: read these as directions.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_per_request import cpu_seconds, harness  # noqa: E402  (the shared wrk harness)

WORKLOADS = "s3_get_4k,s3_put_4k,ddb_get,ddb_put,ddb_query10"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_postgres(root: Path) -> tuple[object, str]:
    """A throwaway PostgreSQL (the engine programs RDS uses, C locale) and its admin DSN."""
    from strata.engines.postgres import PgNode

    password = secrets.token_hex(12)
    node = PgNode(root / "pg", _free_port(), "strata")
    node.initdb(password)
    return node, f"postgresql://strata:{password}@127.0.0.1:{node.port}/postgres"


def fresh_database(admin: str, name: str) -> str:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name} TEMPLATE template0 LOCALE 'C'")
    return admin.rsplit("/", 1)[0] + f"/{name}"


def start_gateway(src: Path, root: Path, metadata: str | None) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    args = [sys.executable, "-m", "strata.cli", "serve", "--port", str(port), "--tls-port", "off"]
    args += ["--data-dir", str(root / "data"), "--cpu-affinity", "0"]
    env = {**os.environ, "PYTHONPATH": str(src)}
    if metadata:
        env["STRATA_METADATA"] = metadata
        args += ["--blob-dir", str(root / "blobs")]
    log = open(root / "server.log", "ab")  # noqa: SIM115 - the server's, for its life
    proc = subprocess.Popen(args, cwd=src, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"{src}: the gateway exited; see {root / 'server.log'}")
        try:
            urllib.request.urlopen(url + "/_strata/health", timeout=2).read()
            return proc, url
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{src}: the gateway did not start")


def postgres_pids(postmaster: int) -> list[int]:
    """The postmaster and its children (backends, checkpointer, WAL writer ...)."""
    pids = [postmaster]
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (d / "stat").read_text()
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == postmaster:
                    pids.append(int(d.name))
    return pids


def postmaster(work: Path) -> int:
    """The PostgreSQL server's pid, from its pidfile (it may run as another user than ours)."""
    return int(next(work.glob("pg/**/postmaster.pid")).read_text().split()[0])


def health_during_pause(url: str, postmaster: int, pause: float) -> tuple[float, int, int]:
    """(slowest health answer in ms, health answers, health failures) while PostgreSQL is stopped."""
    slowest, answered, failed = 0.0, 0, 0
    pids = postgres_pids(postmaster)
    for p in pids:
        os.kill(p, signal.SIGSTOP)
    try:
        end = time.monotonic() + pause
        while time.monotonic() < end:
            t0 = time.monotonic()
            try:
                urllib.request.urlopen(url + "/_strata/health", timeout=10).read()
                answered += 1
            except OSError:
                failed += 1
            slowest = max(slowest, (time.monotonic() - t0) * 1000)
            time.sleep(0.05)
    finally:
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGCONT)
    return slowest, answered, failed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", action="append", required=True, metavar="NAME=SRC")
    ap.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    ap.add_argument("--workloads", default=WORKLOADS)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--pause", type=float, default=3.0, help="seconds PostgreSQL is stopped (0: none)")
    a = ap.parse_args()
    a.threads, a.keys, a.get_keys, a.conns_big = 1, 2000, 500, 16  # what harness.setup reads
    work = Path(tempfile.mkdtemp(prefix="pg_loop-"))
    node, admin = (None, "") if a.backend == "sqlite" else start_postgres(work)
    procs: list[subprocess.Popen] = []
    targets = []
    try:
        for spec in a.target:
            name, src = spec.split("=", 1)
            root = work / name
            root.mkdir()
            metadata = fresh_database(admin, f"bench_{name}") if node is not None else None
            proc, url = start_gateway(Path(src).resolve(), root, metadata)
            procs.append(proc)
            t = harness.Target(name, url, "test", "test")
            harness.detect(t, ["s3", "ddb"])
            t.pid = proc.pid
            targets.append(t)
        print(
            f"# pg_loop {time.strftime('%H:%M')} backend={a.backend} load={os.getloadavg()[0]:.2f} "
            f"wrk -c{a.conns} -d{a.seconds}s rounds={a.rounds}"
        )
        chosen = [w for w in harness.WORKLOADS if w.name in a.workloads.split(",")]
        results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
        for w in chosen:
            scripts = {t.name: harness.setup(w, t, a)[1] for t in targets}
            for _ in range(a.rounds):
                for t in targets:
                    harness.run_wrk(t, scripts[t.name], 1, a.conns, 1)  # warm-up
                    before = sum(cpu_seconds(t.pid))
                    r = harness.run_wrk(t, scripts[t.name], a.seconds, a.conns, 1)
                    us = (sum(cpu_seconds(t.pid)) - before) / max(1, r["requests"]) * 1e6
                    results.setdefault((w.name, t.name), []).append((r["ops"], r["p99_us"] / 1000, us))
                    print(
                        f"  {w.name:<11} {t.name:<6} {r['ops']:8,.0f} ops/s  p99 {r['p99_us'] / 1000:7.1f} ms"
                        f"  {us:6.0f} µs CPU/req  errors={r['errors']} load={os.getloadavg()[0]:.2f}",
                        flush=True,
                    )
        print(
            f"\n{'workload':<12}"
            + "".join(f"{t.name + ' ops/s':>22}{'p99 ms':>16}{'µs/req':>9}" for t in targets)
        )
        for w in chosen:
            row, base = f"{w.name:<12}", None
            for t in targets:
                ops, p99, us = (statistics.median(x[i] for x in results[(w.name, t.name)]) for i in range(3))
                base = base or (ops, p99, us)
                row += f"{ops:>12,.0f} ({ops / base[0]:.2f}x){p99:>8.1f} ({p99 / base[1]:.2f}x){us:>7.0f}"
            print(row)
        if node is not None and a.pause:
            print(f"\nPostgreSQL stopped {a.pause:g} s under GET load (wrk -c{a.conns}):")
            get = next(w for w in harness.WORKLOADS if w.name == "s3_get_4k")
            for t in targets:
                script = harness.setup(get, t, a)[1]
                out: dict = {}
                load = threading.Thread(
                    target=lambda t=t, s=script, out=out: out.update(
                        harness.run_wrk(t, s, int(a.pause) + 4, a.conns, 1)
                    )
                )
                load.start()
                time.sleep(1.5)
                slowest, answered, failed = health_during_pause(t.url, postmaster(work), a.pause)
                load.join()
                print(
                    f"  {t.name:<6} health: slowest {slowest:7.0f} ms, {answered} answered, {failed} failed;"
                    f"  GET load: {out.get('requests', 0)} requests, p99 {out.get('p99_us', 0) / 1000:.0f} ms,"
                    f" errors={out.get('errors')} (status {out.get('status')})"
                )
    finally:
        for p in procs:
            p.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(30)
        if node is not None:
            node.stop()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
