"""S3 PUT and GET cost per request with S3's metadata in SQLite and in PostgreSQL, side by side.

    python bench/s3_metadata_cpu.py [--requests 2000] [--base PATH] [--rounds 2]

Starts a throwaway PostgreSQL (bench/metadata_backends.py) and, one after the other, Strata with
the embedded SQLite, Strata with `--metadata postgresql://...`, and with --base a Strata run from
another checkout on each (PATH: e.g. a `git worktree` of main, for both paths before a change).
Each server gets N sequential 4 KiB PUTs of distinct keys then N GETs of them, presigned, over one
keep-alive connection (no client signing in the loop), SSE off (STRATA_S3_DEFAULT_ENCRYPTION=off:
the metadata path is what differs). Reported per request: the gateway process's CPU (all its
threads), PostgreSQL's CPU (every backend of the cluster), and the client's wall time.
Rounds alternate the servers so machine noise falls on all of them.

Measured (issue 22 step 2, loaded 2-core machine, 2,000 requests x 3 rounds, median of rounds;
CPU from /proc at 10 ms ticks, so +-5 us; "before" is main at 5a4c796):

                          SQLite   SQLite before   PostgreSQL (gateway + PostgreSQL)
    PUT CPU us/request       790             780        1315 + 735
    GET CPU us/request       355             355         595 + 160
    PUT wall us (1 client)  4175            3923        8277 (the commit's WAL flush, fsync on)

Several gateways (each request reads its bucket's row once on PostgreSQL, so a change made on
another gateway binds it; same run, 2,000 x 4 rounds, machine at load 13 on 2 cores, so +-15%;
"base" is c3f1154, the cached row used without a check):

                          SQLite   SQLite base   PostgreSQL (gw + PG)   PostgreSQL base (gw + PG)
    GET CPU us/request       145           152             348 + 107                   293 + 85
    PUT CPU us/request       482           443            1332 + 815                  873 + 475 (*)

(*) PUTs on PostgreSQL swung by 1.5x between runs (an earlier run: 1225 + 725 against 1205 +
735); the change adds one bucket read to a PUT's request path, as to a GET's. In-process (no
HTTP), the SQLite provider's CPU per request was the same before and after: PUT 115-134 us,
GET 18-20 us in both trees, three alternating runs.

From the code (not measured): a lone PUT of a new key to an unversioned bucket on PostgreSQL is
6 round trips from the gateway's writer thread: BEGIN + the store's lock, the bucket row, the
`null` version, unset latest, INSERT ... RETURNING id, and the COMMIT's WAL flush.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.metadata_backends import _throwaway_server  # noqa: E402
from tests.strata_process import StrataProcess  # noqa: E402

BODY = b"b" * 4096


def _cpu(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def _pg_procs(pgdata: Path) -> list[psutil.Process]:
    pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    master = psutil.Process(pid)
    return [master, *master.children(recursive=True)]


def _run(server: StrataProcess, n: int, pgdata: Path | None, tag: str) -> dict[str, float]:
    s3 = server.client("s3")
    bucket = f"bench-{tag}"
    s3.create_bucket(Bucket=bucket)
    keys = [f"k/{tag}/{i:06d}" for i in range(n)]
    puts = [
        s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": k}, ExpiresIn=3600)
        for k in keys
    ]
    gets = [
        s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": k}, ExpiresIn=3600)
        for k in keys
    ]
    assert server.proc is not None
    gw = [psutil.Process(server.proc.pid)]
    conn = http.client.HTTPConnection("127.0.0.1", server.port)
    out: dict[str, float] = {}
    for op, urls in (("PUT", puts), ("GET", gets)):
        pg = _pg_procs(pgdata) if pgdata else []  # (backends of new connections come and go)
        g0, p0, w0 = _cpu(gw), _cpu(pg), time.perf_counter()
        for url in urls:
            u = urlsplit(url)
            conn.request(op, f"{u.path}?{u.query}", body=BODY if op == "PUT" else None)
            r = conn.getresponse()
            r.read()
            assert r.status == 200, (op, r.status)
        w = time.perf_counter() - w0
        out[f"{op} gateway CPU us"] = (_cpu(gw) - g0) / n * 1e6
        out[f"{op} PostgreSQL CPU us"] = (_cpu(pg) - p0) / n * 1e6 if pgdata else 0.0
        out[f"{op} wall us"] = w / n * 1e6
    conn.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--base", type=Path, default=None, help="another checkout to run on both too")
    args = ap.parse_args()
    env = {"STRATA_S3_DEFAULT_ENCRYPTION": "off"}
    with tempfile.TemporaryDirectory(prefix="strata-s3meta-") as tmp:
        root = Path(tmp)
        node, dsn = _throwaway_server(root)
        try:
            configs: dict[str, StrataProcess] = {
                "sqlite": StrataProcess(root / "sqlite", extra_env=env, extra_args=["--quiet"]),
                "postgresql": StrataProcess(
                    root / "pg",
                    extra_env={**env, "STRATA_METADATA": dsn},
                    extra_args=["--quiet", "--blob-dir", str(root / "pgblobs")],
                ),
            }
            if args.base:
                configs["sqlite (base)"] = StrataProcess(
                    root / "base", extra_env=env, extra_args=["--quiet"], cwd=args.base.resolve()
                )
                import psycopg

                with psycopg.connect(dsn, autocommit=True) as c:  # a database of its own
                    c.execute("CREATE DATABASE base TEMPLATE template0 LOCALE 'C'")
                configs["postgresql (base)"] = StrataProcess(
                    root / "pgbase",
                    extra_env={**env, "STRATA_METADATA": dsn.rsplit("/", 1)[0] + "/base"},
                    extra_args=["--quiet", "--blob-dir", str(root / "pgbaseblobs")],
                    cwd=args.base.resolve(),
                )
            results: dict[str, list[dict[str, float]]] = {name: [] for name in configs}
            for s in configs.values():
                s.start()
            try:
                for rnd in range(args.rounds):
                    for name, s in configs.items():
                        pgdata = node.pgdata if name.startswith("postgresql") else None  # type: ignore[attr-defined]
                        results[name].append(_run(s, args.requests, pgdata, f"r{rnd}"))
            finally:
                for s in configs.values():
                    s.stop()
        finally:
            node.stop()  # type: ignore[attr-defined]
    metrics = list(next(iter(results.values()))[0])
    print(f"{args.requests} sequential 4 KiB requests per op, {args.rounds} rounds, median per request")
    print(f"{'':28}" + "".join(f"{name:>16}" for name in results))
    for m in metrics:
        row = "".join(f"{statistics.median(r[m] for r in rs):16.0f}" for rs in results.values())
        print(f"{m:28}{row}")


if __name__ == "__main__":
    main()
