"""RDS benchmarks: CreateDBInstance -> first connection, Multi-AZ failover time, and the cost of
the stable endpoint (pgbench TPS through the endpoint vs straight to the engine's own port).

Runs its own `strata serve` on a temp data dir. Endpoint mechanisms compared in the same run:
kernel redirection (nft, the default when root), HAProxy (the fallback), and direct. Usage:

    python bench/rds_bench.py [--runs 3] [--pgbench-seconds 10] [--clients 8]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from strata.engines.postgres import pg_bin  # noqa: E402
from tests.strata_process import StrataProcess  # noqa: E402

USER, PASSWORD = "bench", "Bench-pass-123"


def wait_available(rds, ident: str, timeout: float = 300) -> dict:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        inst = rds.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]
        if inst["DBInstanceStatus"] == "available":
            return inst
        if inst["DBInstanceStatus"] == "failed":
            raise RuntimeError(f"{ident} failed")
        time.sleep(0.05)
    raise TimeoutError(ident)


def connect(port: int) -> psycopg.Connection:
    return psycopg.connect(
        host="127.0.0.1",
        port=port,
        user=USER,
        password=PASSWORD,
        dbname="app",
        connect_timeout=2,
        autocommit=True,
    )


def create_to_connect(rds, ident: str) -> float:  # noqa: ANN001
    t0 = time.monotonic()
    inst = rds.create_db_instance(
        DBInstanceIdentifier=ident,
        Engine="postgres",
        MasterUsername=USER,
        MasterUserPassword=PASSWORD,
        DBInstanceClass="db.t3.micro",
        AllocatedStorage=20,
        DBName="app",
        BackupRetentionPeriod=0,
    )["DBInstance"]
    while True:
        try:
            with connect(inst["Endpoint"]["Port"]) as c:
                c.execute("SELECT 1")
            return time.monotonic() - t0
        except psycopg.OperationalError:
            time.sleep(0.02)


def failover_time(rds, ident: str) -> tuple[float, float]:  # noqa: ANN001
    """(seconds until the endpoint reaches the NEW primary and a write commits there,
    seconds until DescribeDBInstances says available again)."""
    inst = wait_available(rds, ident)
    port = inst["Endpoint"]["Port"]
    with connect(port) as c:
        c.execute("CREATE TABLE IF NOT EXISTS f (x int)")
        before = c.execute("SELECT inet_server_port()").fetchone()[0]
    t0 = time.monotonic()
    rds.reboot_db_instance(DBInstanceIdentifier=ident, ForceFailover=True)
    while True:
        try:
            with connect(port) as c:
                if c.execute("SELECT inet_server_port()").fetchone()[0] != before:
                    c.execute("INSERT INTO f VALUES (1)")
                    writable = time.monotonic() - t0
                    break
        except psycopg.Error:
            pass
        time.sleep(0.01)
    wait_available(rds, ident)
    available = time.monotonic() - t0
    time.sleep(8)  # let the new standby be rebuilt before the next round
    return writable, available


def aurora_failover_time(rds, runs: int) -> list[float]:  # noqa: ANN001
    """Seconds from FailoverDBCluster until the writer endpoint commits a write on the new writer."""
    rds.create_db_cluster(
        DBClusterIdentifier="aur",
        Engine="aurora-postgresql",
        MasterUsername=USER,
        MasterUserPassword=PASSWORD,
        DatabaseName="app",
    )
    for name in ("aur-a", "aur-b"):
        rds.create_db_instance(
            DBInstanceIdentifier=name,
            DBClusterIdentifier="aur",
            Engine="aurora-postgresql",
            DBInstanceClass="db.serverless",
        )
        wait_available(rds, name)
    port = rds.describe_db_clusters(DBClusterIdentifier="aur")["DBClusters"][0]["Port"]
    with connect(port) as c:
        c.execute("CREATE TABLE f (x int)")
    out = []
    for _ in range(runs):
        with connect(port) as c:
            before = c.execute("SELECT inet_server_port()").fetchone()[0]
        t0 = time.monotonic()
        rds.failover_db_cluster(DBClusterIdentifier="aur")
        while True:
            try:
                with connect(port) as c:
                    if c.execute("SELECT inet_server_port()").fetchone()[0] != before:
                        c.execute("INSERT INTO f VALUES (1)")
                        out.append(time.monotonic() - t0)
                        break
            except psycopg.Error:
                pass
            time.sleep(0.01)
        for name in ("aur-a", "aur-b"):
            wait_available(rds, name)  # the old writer is back as a reader before the next round
    return out


def pgbench(port: int, seconds: int, clients: int) -> float:
    env = {"PGPASSWORD": PASSWORD, "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [
            pg_bin("pgbench"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            USER,
            "-c",
            str(clients),
            "-j",
            "2",
            "-T",
            str(seconds),
            "-S",
            "-n",
            "app",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    m = re.search(r"tps = ([\d.]+)", out.stdout)
    if not m:
        raise RuntimeError(out.stdout + out.stderr)
    return float(m.group(1))


def serve(mode: str) -> StrataProcess:
    data = Path(tempfile.mkdtemp(prefix=f"rdsbench-{mode}-")) / "data"
    return StrataProcess(data, extra_env={"STRATA_ENDPOINT_MODE": mode}).start()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pgbench-seconds", type=int, default=10)
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()
    results: dict[str, object] = {}
    for mode in ("nft", "haproxy"):
        server = serve(mode)
        try:
            rds = server.client("rds")
            times = [create_to_connect(rds, f"cc-{mode}-{i}") for i in range(args.runs)]
            results[f"create_to_connect_s[{mode}]"] = [round(t, 2) for t in times]
            inst = wait_available(rds, f"cc-{mode}-0")
            endpoint = inst["Endpoint"]["Port"]
            node_root = next((server.data_dir / "rds" / "instances" / f"cc-{mode}-0").glob("n*"))
            direct = int(
                re.search(r"port = '(\d+)'", (node_root / "pgdata" / "strata.conf").read_text()).group(1)
            )
            env = {"PGPASSWORD": PASSWORD, "PATH": "/usr/bin:/bin"}
            subprocess.run(
                [
                    pg_bin("pgbench"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(direct),
                    "-U",
                    USER,
                    "-i",
                    "-s",
                    "2",
                    "-q",
                    "app",
                ],
                check=True,
                capture_output=True,
                env=env,
            )
            tps_direct = [pgbench(direct, args.pgbench_seconds, args.clients) for _ in range(2)]
            tps_endpoint = [pgbench(endpoint, args.pgbench_seconds, args.clients) for _ in range(2)]
            results[f"pgbench_select_tps_direct[{mode}]"] = [round(x) for x in tps_direct]
            results[f"pgbench_select_tps_endpoint[{mode}]"] = [round(x) for x in tps_endpoint]
            results[f"endpoint_vs_direct[{mode}]"] = round(
                statistics.mean(tps_endpoint) / statistics.mean(tps_direct), 3
            )
            if mode == "nft":
                rds.create_db_instance(
                    DBInstanceIdentifier="maz",
                    Engine="postgres",
                    MasterUsername=USER,
                    MasterUserPassword=PASSWORD,
                    DBInstanceClass="db.t3.micro",
                    AllocatedStorage=20,
                    DBName="app",
                    MultiAZ=True,
                    BackupRetentionPeriod=0,
                )
                fo = [failover_time(rds, "maz") for _ in range(args.runs)]
                results["failover_writable_s"] = [round(a, 2) for a, _ in fo]
                results["failover_available_s"] = [round(b, 2) for _, b in fo]
                results["aurora_failover_writable_s"] = [
                    round(t, 2) for t in aurora_failover_time(rds, args.runs)
                ]
        finally:
            server.stop()
            shutil.rmtree(server.data_dir.parent, ignore_errors=True)
    for k, v in results.items():
        print(f"{k:40s} {v}")


if __name__ == "__main__":
    main()
