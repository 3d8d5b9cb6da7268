"""Several gateways on one PostgreSQL: what sharing costs and how fast it follows (issue 22).

Measures, on a throwaway PostgreSQL (the programs RDS uses) and two real `strata serve`:
    freshness   µs per cache check (strata.storage.shared.Freshness.changed: one indexed read),
                the price every IAM-user-signed request and S3 request pays on PostgreSQL
    iam         ms per request signed by an IAM user on gateway B (median of --requests
                GetCallerIdentity), and how many requests after a DeleteAccessKey on A gateway B
                still accepted (must be 0)
    clock       ms from an advance answered by A until B's /_strata/clock shows it (median of 5)
    connections PostgreSQL sessions an idle gateway holds
    takeover    s from kill -9 of the scheduler's owner until the other gateway owns it

Usage: python bench/shared_gateways.py [--requests 200]
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

from strata.engines.postgres import PgNode  # noqa: E402
from strata.storage.postgres import PostgresStore  # noqa: E402
from strata.storage.shared import Freshness  # noqa: E402
from tests.strata_process import StrataProcess  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="strata-gw-") as tmp:
        root = Path(tmp)
        port, password = _free_port(), secrets.token_hex(12)
        node = PgNode(root / "pg", port, "strata")
        node.initdb(password)
        dsn = f"postgresql://strata:{password}@127.0.0.1:{port}/postgres"
        gateways: list[StrataProcess] = []
        try:
            store = PostgresStore(dsn, "bench")
            fresh = Freshness(store, "x")
            for _ in range(200):
                fresh.changed()
            t = time.perf_counter()
            for _ in range(2000):
                fresh.changed()
            print(f"freshness  {(time.perf_counter() - t) / 2000 * 1e6:.0f} µs per check")
            store.close()

            env = {"STRATA_METADATA": dsn}
            for name in "ab":
                gateways.append(
                    StrataProcess(
                        root / name, extra_env=env, extra_args=["--blob-dir", str(root / "blobs"), "--quiet"]
                    ).start()
                )
            a, b = gateways
            with psycopg.connect(dsn) as c:
                (count,) = c.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'strata%'"
                ).fetchone()
            print(f"connections {count / 2:.0f} per idle gateway")
            iam = a.client("iam")
            iam.create_user(UserName="bench")
            iam.put_user_policy(
                UserName="bench",
                PolicyName="sts",
                PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:*","Resource":"*"}]}',
            )
            key = iam.create_access_key(UserName="bench")["AccessKey"]
            sts_b = b.client("sts", access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])
            times = []
            for _ in range(args.requests):
                t = time.perf_counter()
                sts_b.get_caller_identity()
                times.append(time.perf_counter() - t)
            print(f"iam        {_ms(statistics.median(times))} per IAM-user request on B (client included)")
            iam.delete_access_key(UserName="bench", AccessKeyId=key["AccessKeyId"])
            accepted = 0
            for _ in range(20):
                try:
                    sts_b.get_caller_identity()
                    accepted += 1
                except ClientError:
                    pass
            print(f"iam        {accepted} of 20 requests accepted by B after the key's deletion on A")

            lags = []
            for _ in range(5):
                moved = a.admin("/_strata/clock", {"advance": "1h"})["offset_seconds"]
                t = time.perf_counter()
                while b.admin("/_strata/clock")["offset_seconds"] < moved:
                    time.sleep(0.001)
                lags.append(time.perf_counter() - t)
            print(f"clock      {_ms(statistics.median(lags))} until B shows A's advance (median of 5)")

            deadline = time.monotonic() + 30
            while not any(g.admin("/_strata/clock")["scheduler_owner"] for g in gateways):
                if time.monotonic() > deadline:
                    raise SystemExit("no gateway took the scheduler")
                time.sleep(0.05)
            owner = next(g for g in gateways if g.admin("/_strata/clock")["scheduler_owner"])
            other = b if owner is a else a
            t = time.perf_counter()
            owner.kill()
            while not other.admin("/_strata/clock")["scheduler_owner"]:
                time.sleep(0.01)
            print(f"takeover   {time.perf_counter() - t:.2f} s from kill -9 of the owner to a new owner")
        finally:
            for g in gateways:
                g.stop()
            node.stop()
            os.environ.pop("STRATA_METADATA", None)


if __name__ == "__main__":
    main()
