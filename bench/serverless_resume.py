"""Aurora Serverless v2 resume: from a paused writer (MinCapacity 0) to the first query answered.

Runs its own `strata serve` on a temp data dir, makes an aurora-postgresql cluster with one
db.serverless writer, then repeatedly lets it pause (SecondsUntilAutoPause passes on the simulated
clock) and times psycopg.connect + SELECT 1 through the cluster endpoint, which the paused
instance's relay holds while the engine starts. Also times the same query on a running engine.
The issue's bar: under 2 s (AWS: about 15 s). Usage:

    python bench/serverless_resume.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.strata_process import StrataProcess  # noqa: E402

USER, PASSWORD = "bench", "Bench-pass-123"


def first_query(cluster: dict) -> float:
    t0 = time.perf_counter()
    with psycopg.connect(
        host=cluster["Endpoint"],
        port=cluster["Port"],
        user=USER,
        password=PASSWORD,
        dbname="app",
        connect_timeout=30,
    ) as conn:
        conn.execute("SELECT 1").fetchone()
    return time.perf_counter() - t0


def capacity(server: StrataProcess, cw, ident: str) -> float:  # noqa: ANN001
    server.advance_clock("1m")
    now = datetime.now(UTC)
    points = cw.get_metric_statistics(
        Namespace="AWS/RDS",
        MetricName="ServerlessDatabaseCapacity",
        Dimensions=[{"Name": "DBInstanceIdentifier", "Value": ident}],
        StartTime=now - timedelta(hours=2),
        EndTime=now + timedelta(hours=20),
        Period=60,
        Statistics=["Maximum"],
    )["Datapoints"]
    return max(points, key=lambda p: p["Timestamp"])["Maximum"] if points else -1.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = StrataProcess(Path(tmp) / "data").start()
        try:
            rds, cw = server.client("rds"), server.client("cloudwatch")
            cluster = rds.create_db_cluster(
                DBClusterIdentifier="bench",
                Engine="aurora-postgresql",
                MasterUsername=USER,
                MasterUserPassword=PASSWORD,
                DatabaseName="app",
                ServerlessV2ScalingConfiguration={"MinCapacity": 0, "MaxCapacity": 4},
            )["DBCluster"]
            rds.create_db_instance(
                DBInstanceIdentifier="bench-w",
                DBClusterIdentifier="bench",
                Engine="aurora-postgresql",
                DBInstanceClass="db.serverless",
            )
            while (
                rds.describe_db_instances(DBInstanceIdentifier="bench-w")["DBInstances"][0][
                    "DBInstanceStatus"
                ]
                != "available"
            ):
                time.sleep(0.2)
            running = [first_query(cluster) for _ in range(args.runs)]
            resumes = []
            for _ in range(args.runs):
                server.advance_clock("6m")
                deadline = time.monotonic() + 60
                while capacity(server, cw, "bench-w") != 0.0:
                    if time.monotonic() > deadline:
                        raise SystemExit("the instance did not pause")
                    time.sleep(0.5)
                resumes.append(first_query(cluster))
            print(f"running engine: connect + SELECT 1 median {statistics.median(running) * 1000:.0f} ms")
            print(
                "paused -> first query answered: "
                f"median {statistics.median(resumes):.2f} s, max {max(resumes):.2f} s "
                f"({', '.join(f'{r:.2f}' for r in resumes)})"
            )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
