"""HTTP load and limits: many connections, slowloris, and a normal client served through it all.

Phases, each reporting the server's RSS and open sockets and a normal client's latency (a small
S3 GetObject with boto3, median and worst of 20):

    baseline   nothing else connected
    held       N connections open at once: half idle, half slowloris (a partial head, a byte
               every few seconds, until the header timeout answers them 408)
    wrk        wrk with N connections hammering DynamoDB ListTables (replayed SigV4 requests)
    after      all closed: sockets must be back to the baseline (no descriptor leak)

Usage: python bench/http_load.py [--connections 1000] [--wrk-seconds 10] [--header-timeout 20]
Starts its own Strata on a free loopback port in a temp dir; needs wrk for the wrk phase.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from botocore.config import Config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, os.environ.get("STRATA_SHARED_BENCH", "/work/shared/bench"))
import loadgen  # noqa: E402  (shared harness: signed request replay for wrk)

from tests.strata_process import StrataProcess  # noqa: E402


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def open_sockets(pid: int) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except FileNotFoundError:
            pass
    return count


def client_latency_ms(s3, bucket: str, n: int = 20) -> tuple[float, float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        assert s3.get_object(Bucket=bucket, Key="probe")["Body"].read() == b"probe"
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times)


def report(phase: str, pid: int, latency: tuple[float, float], extra: str = "", state=None) -> None:
    rss, sockets = state or (rss_mib(pid), open_sockets(pid))
    print(
        f"{phase:<9} rss {rss:7.1f} MiB  sockets {sockets:5d}  "
        f"client GetObject median {latency[0]:6.1f} ms, worst {latency[1]:7.1f} ms  {extra}",
        flush=True,
    )


class Slowloris(threading.Thread):
    """Sends one more header byte on each of its sockets every `every` seconds."""

    def __init__(self, socks: list[socket.socket], every: float) -> None:
        super().__init__(daemon=True)
        self.socks, self.every, self.stop = socks, every, threading.Event()
        self.cut_off = 0

    def run(self) -> None:
        while not self.stop.wait(self.every):
            for sock in list(self.socks):
                try:
                    sock.sendall(b"a")
                except OSError:
                    self.socks.remove(sock)
                    self.cut_off += 1


def run_wrk(url: str, lua: str, seconds: int, conns: int) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua)
    out = subprocess.run(
        ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--timeout", "30s", "-s", f.name, url],
        capture_output=True,
        text=True,
    ).stdout
    os.unlink(f.name)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return (
        f"wrk {float(rps.group(1)) if rps else 0:.0f} req/s, non-2xx {bad.group(1) if bad else 0}, "
        f"socket errors: {errors.group(1) if errors else 'none'}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--wrk-seconds", type=int, default=10)
    ap.add_argument("--header-timeout", type=int, default=20)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, a.connections * 2 + 200)), hard))
    tmp = Path(tempfile.mkdtemp(prefix="http-load-"))
    server = StrataProcess(
        tmp / "data", extra_env={"STRATA_HTTP_HEADER_TIMEOUT": str(a.header_timeout)}
    ).start()
    pid = server.proc.pid
    try:
        s3 = server.client("s3", config=Config(read_timeout=60))
        s3.create_bucket(Bucket="load")
        s3.put_object(Bucket="load", Key="probe", Body=b"probe")
        base_sockets = open_sockets(pid)
        report("baseline", pid, client_latency_ms(s3, "load"))

        started = time.perf_counter()
        idle: list[socket.socket] = []
        slow: list[socket.socket] = []  # shared with the Slowloris thread, which drops the cut off
        for i in range(a.connections):
            # From another loopback address than wrk's, so the two phases' connections do not
            # add up against the per-address cap.
            sock = socket.create_connection(
                ("127.0.0.1", server.port), timeout=60, source_address=("127.0.0.2", 0)
            )
            if i % 2:
                sock.sendall(b"GET /_strata/health HTTP/1.1\r\nX-Slow: ")
                slow.append(sock)
            else:
                idle.append(sock)
        opened = time.perf_counter() - started
        loris = Slowloris(slow, every=2.0)
        loris.start()
        time.sleep(1)
        report("held", pid, client_latency_ms(s3, "load"), f"({a.connections} opened in {opened:.2f} s)")

        loadgen.HOST = f"127.0.0.1:{server.port}"
        lua = loadgen.lua_cycle([loadgen.signed(server.endpoint, "ListTables", {})])
        result: list[str] = []
        if shutil.which("wrk"):
            wrk = threading.Thread(
                target=lambda: result.append(run_wrk(server.endpoint, lua, a.wrk_seconds, a.connections))
            )
            wrk.start()
            time.sleep(min(3, a.wrk_seconds / 2))
            latency = client_latency_ms(s3, "load")
            during = (rss_mib(pid), open_sockets(pid))
            wrk.join()
            report("wrk", pid, latency, result[0] if result else "", during)
        deadline = time.monotonic() + a.header_timeout + 10
        while slow and time.monotonic() < deadline:  # the thread drops those cut off
            time.sleep(0.5)
        loris.stop.set()
        print(f"slowloris: {loris.cut_off} of {a.connections // 2} cut off by the header timeout")

        for sock in idle + slow:
            sock.close()
        deadline = time.monotonic() + 30
        while open_sockets(pid) > base_sockets and time.monotonic() < deadline:
            time.sleep(0.2)
        report("after", pid, client_latency_ms(s3, "load"), f"(baseline sockets {base_sockets})")
        print(f"peak rss (VmHWM) {rss_mib(pid, 'VmHWM'):.1f} MiB")
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
