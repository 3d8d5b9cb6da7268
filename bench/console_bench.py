"""The web console's pages over big data: the bucket page of a 1,000,000-key bucket and the first
page of a 1,000,000-item table (issue #21's bar: under 300 ms of server time each).

Usage: python bench/console_bench.py [--keys 1000000] [--items 1000000] [--rounds 20]

Starts its own Strata on free loopback ports in a temp dir. The keys and items are written
straight into the stores with the server stopped (bench/s3_bench.py and bench/dynamodb_scale.py
do the same), so what is measured is the console's page, not a million PUTs. Two bucket shapes:
flat (the page lists the first 100 keys) and 1,000 "directories" of 1,000 keys (the page lists
100 common prefixes, and a directory's page 100 of its keys). Server time is the server's own
CPU time per page (/proc) and the page's wall time seen from the client (an upper bound).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's strata, not an installed one
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, os.environ.get("STRATA_SHARED_BENCH", str(ROOT.parent / "shared" / "bench")))

from dynamodb_scale import load as load_items  # noqa: E402
from local_server import cpu_seconds  # noqa: E402
from s3_bench import _fill as fill_keys  # noqa: E402

from tests.console.plain_client import ROOT as CONSOLE  # noqa: E402
from tests.console.plain_client import PlainConsole  # noqa: E402
from tests.strata_process import StrataProcess  # noqa: E402


def measure(server: StrataProcess, console: PlainConsole, path: str, rounds: int) -> tuple[float, float]:
    """(median wall ms, mean server CPU ms) of GET `path`, after one warm-up."""
    status, _, _, text = console.request("GET", CONSOLE + path)
    assert status == 200, text[:500]
    walls = []
    cpu0 = cpu_seconds(server.proc.pid)
    for _ in range(rounds):
        t0 = time.perf_counter()
        status, _, _, _ = console.request("GET", CONSOLE + path)
        walls.append((time.perf_counter() - t0) * 1000)
        assert status == 200
    cpu = (cpu_seconds(server.proc.pid) - cpu0) * 1000 / rounds
    return statistics.median(walls), cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="console-bench-") as tmp:
        server = StrataProcess(Path(tmp) / "data").start()
        server.client("s3").list_buckets()  # the S3 store's schema exists
        server.stop()
        t = time.perf_counter()
        fill_keys(server.data_dir, "flat", (f"obj{i:08d}" for i in range(args.keys)))
        per_dir = max(1, args.keys // 1000)
        fill_keys(
            server.data_dir, "dirs", (f"d{d:03d}/obj{i:08d}" for d in range(1000) for i in range(per_dir))
        )
        load_items(server.data_dir, {"items": args.items})
        print(f"(filled {args.keys:,} keys twice and {args.items:,} items in {time.perf_counter() - t:.0f}s)")
        server.start()
        try:
            console = PlainConsole(server.port)
            assert console.sign_in() == 303
            pages = {
                f"bucket page, {args.keys:,} flat keys": "/s3/bucket?bucket=flat",
                f"bucket page, 1,000 prefixes of {per_dir:,} keys": "/s3/bucket?bucket=dirs",
                "a prefix's page (d500/) in that bucket": "/s3/bucket?bucket=dirs&prefix=d500%2F",
                f"table page (Scan, 50 items), {args.items:,} items": "/dynamodb/table?name=items",
                "table page, Query of one partition": "/dynamodb/table?name=items&mode=query&pk=p0005000",
            }
            print(f"{'page':58} {'wall ms (median)':>17} {'server CPU ms':>14}")
            for label, path in pages.items():
                wall, cpu = measure(server, console, path, args.rounds)
                print(f"{label:58} {wall:17.1f} {cpu:14.1f}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
