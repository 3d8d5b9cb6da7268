"""Cross-region read replica lag under a steady write load (issue 24's bar: reported, under 1 s).

Starts its own `strata serve`, creates a PostgreSQL instance in us-east-1 and a read replica of it
in us-west-2 (CreateDBInstanceReadReplica with the source's ARN), then writes at a steady rate
(default 1,000 single-row autocommit INSERTs per second, spread over writer threads) and, meanwhile:

- visible:  a probe commits a marker row on the source and times until the replica returns it
            (acknowledged commit -> readable in the other region), every 200 ms;
- reported: the replica's ReplicaLag as RDS reports it (DescribeDBInstances StatusInfos), once a
            second.

Usage: python bench/rds_replica_lag.py [--seconds 20] [--rate 1000] [--writers 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.services.rds.helpers import create_pg, pg_connect, wait_status  # noqa: E402
from tests.strata_process import StrataProcess  # noqa: E402

EAST, WEST = "us-east-1", "us-west-2"


def writer(source: dict, rate: float, stop: threading.Event, done: list[int]) -> None:
    """Single-row commits at `rate` per second on a fixed schedule (late ones are not made up)."""
    with pg_connect(source) as conn:
        interval, due, n = 1.0 / rate, time.monotonic(), 0
        while not stop.is_set():
            conn.execute("INSERT INTO load (v) VALUES (%s)", (n,))
            n += 1
            due += interval
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            elif pause < -1:
                due = time.monotonic()
        done.append(n)


def probe(source: dict, replica: dict, stop: threading.Event, lags: list[float]) -> None:
    with pg_connect(source) as src, pg_connect(replica) as rep:
        marker = 0
        while not stop.is_set():
            marker += 1
            start = time.monotonic()
            src.execute("INSERT INTO markers (id) VALUES (%s)", (marker,))
            while rep.execute("SELECT 1 FROM markers WHERE id = %s", (marker,)).fetchone() is None:
                if time.monotonic() - start > 60:
                    raise SystemExit(f"marker {marker} never reached the replica")
                time.sleep(0.001)
            lags.append(time.monotonic() - start)
            stop.wait(0.2)


def reported_lag(west, rep_id: str) -> float | None:  # noqa: ANN001
    inst = west.describe_db_instances(DBInstanceIdentifier=rep_id)["DBInstances"][0]
    for info in inst.get("StatusInfos") or []:
        message = info.get("Message") or ""
        if message.startswith("ReplicaLag="):
            return float(message.split("=", 1)[1].split()[0])
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--writers", type=int, default=4)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="replica-lag-") as tmp:
        server = StrataProcess(Path(tmp) / "data").start()
        try:
            east, west = server.client("rds", region=EAST), server.client("rds", region=WEST)
            source = create_pg(east, "lag-src", BackupRetentionPeriod=1)
            with pg_connect(source) as conn:
                conn.execute("CREATE TABLE load (id bigserial PRIMARY KEY, v bigint)")
                conn.execute("CREATE TABLE markers (id bigint PRIMARY KEY)")
            west.create_db_instance_read_replica(
                DBInstanceIdentifier="lag-rep",
                SourceDBInstanceIdentifier=source["DBInstanceArn"],
                SourceRegion=EAST,
            )
            replica = wait_status(west, "lag-rep", timeout=300)
            stop = threading.Event()
            done: list[int] = []
            lags: list[float] = []
            threads = [
                threading.Thread(target=writer, args=(source, a.rate / a.writers, stop, done))
                for _ in range(a.writers)
            ]
            threads.append(threading.Thread(target=probe, args=(source, replica, stop, lags)))
            started = time.monotonic()
            for t in threads:
                t.start()
            reported: list[float] = []
            while time.monotonic() - started < a.seconds:
                time.sleep(1)
                value = reported_lag(west, "lag-rep")
                if value is not None:
                    reported.append(value)
            stop.set()
            for t in threads:
                t.join(120)
            elapsed = time.monotonic() - started
            lags.sort()
            print(
                f"# rds_replica_lag: {sum(done) / elapsed:,.0f} writes/s for {elapsed:.0f} s "
                f"(asked {a.rate:,.0f}/s, {a.writers} writers), source {EAST} -> replica {WEST}"
            )
            print(
                f"  visible (commit on the source -> read on the replica), {len(lags)} probes: "
                f"median {statistics.median(lags) * 1000:.1f} ms, "
                f"p95 {lags[int(len(lags) * 0.95)] * 1000:.1f} ms, max {lags[-1] * 1000:.1f} ms"
            )
            if reported:
                print(
                    f"  reported ReplicaLag (s), {len(reported)} samples: median "
                    f"{statistics.median(reported):g}, max {max(reported):g}"
                )
            bar = "met" if lags[-1] < 1.0 else "NOT met"
            print(f"  bar (lag under 1 s at this rate): {bar}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
