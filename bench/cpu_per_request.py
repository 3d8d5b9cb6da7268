"""Server CPU per request, side by side: how much processor time a GetItem or a GetObject costs.

Throughput on a shared machine moves with the neighbours' load; the server's own CPU time per
answered request moves far less, and it is what issue 13 asks to hold ("an authorized GetItem /
GetObject must not get measurably slower"). For each workload and round, every target in turn is
driven by wrk (the shared harness in ../shared/bench: pre-signed S3 GETs of 4 KiB objects,
replayed SigV4 GetItem requests) while the user+system time of its server process (all threads,
from /proc) is read before and after:

    CPU µs/request = (process CPU seconds after - before) / requests wrk completed

Usage (each server already running; its process is found by the port it listens on, or --pid;
`--credentials NAME=AK:SK` signs a target as an IAM user rather than the test key's root):

    python bench/cpu_per_request.py --target base=http://127.0.0.1:4701 \\
        --target new=http://127.0.0.1:4702 --seconds 6 --rounds 3

`--workloads` picks from ddb_get,s3_get_4k (the default), ddb_put, s3_put_4k. Start every server
with the same `--cpu-affinity N`: with the default `auto` each pins itself to the CPU it starts
on, and two servers on different CPUs (one shared with wrk or a busy neighbour) differ by more
than the code does. Prints each run (user and system time apart), then the median per target
with the ratio to the first target (above 1.00x: more CPU than the first). Linux only (/proc).

`--callgrind`: each server runs under `valgrind --tool=callgrind --instr-atstart=no` (start it
so); around each measured run the script zeroes the counters, switches instrumentation on, and
afterwards reads the instructions executed (`callgrind_control`), so the figure is instructions
per request: the same for the same code whatever the neighbours do (a loaded shared machine moves
CPU time by ±20%). Under valgrind a server answers ~100x slower: give --seconds 15 or more.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

# the shared harness sits in shared/bench beside the checkout (../shared or ../../shared for a worktree)
_HERE = Path(__file__).resolve()
sys.path.insert(
    0,
    str(
        next(
            (p / "shared" / "bench" for p in _HERE.parents if (p / "shared" / "bench" / "bench.py").exists()),
            _HERE.parent,
        )
    ),
)
import bench as harness  # noqa: E402  (the shared harness: targets, request builders, wrk driver)

WORKLOADS = ("ddb_get", "s3_get_4k", "ddb_put", "s3_put_4k")
_TICKS = os.sysconf("SC_CLK_TCK")


def listening_pid(port: int) -> int:
    """The process holding the loopback TCP socket that listens on `port` (from /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(fields[9])
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return int(proc.name)
        except OSError:
            continue
    raise SystemExit(f"no process of ours listens on port {port} (give --pid NAME=PID)")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU time of the process, all its threads (not its children)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) / _TICKS, int(fields[12]) / _TICKS  # utime, stime (fields 14, 15)


def callgrind(pid: int, *args: str) -> str:
    return subprocess.run(
        ["callgrind_control", *args, str(pid)], capture_output=True, text=True, check=True
    ).stdout


def instructions(pid: int) -> int:
    """Instructions the process executed since its counters were zeroed (callgrind's Ir)."""
    out = callgrind(pid, "-e", "Ir")
    threads = re.findall(r"^\s*Th\s+\d+\s+([\d,]+)", out, re.MULTILINE)  # one line a thread
    if not threads:
        raise SystemExit(f"no callgrind totals from pid {pid}: is it running under callgrind?\n{out}")
    return sum(int(n.replace(",", "")) for n in threads)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", action="append", required=True, metavar="NAME=URL")
    ap.add_argument("--pid", action="append", default=[], metavar="NAME=PID")
    ap.add_argument(
        "--credentials",
        action="append",
        default=[],
        metavar="NAME=AK:SK",
        help="sign a target's requests (and its set-up) with these keys (default test:test)",
    )
    ap.add_argument("--workloads", default="ddb_get,s3_get_4k", help=f"from {','.join(WORKLOADS)}")
    ap.add_argument("--seconds", type=float, default=6)
    ap.add_argument("--warmup", type=float, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--callgrind", action="store_true", help="instructions per request (see above)")
    a = ap.parse_args()
    a.seconds = int(a.seconds) if a.seconds == int(a.seconds) else a.seconds  # wrk takes "6s", not "6.0s"
    a.warmup = int(a.warmup) if a.warmup == int(a.warmup) else a.warmup
    # what the shared harness's setup() reads
    a.threads, a.keys, a.get_keys, a.conns_big = 1, 2000, 500, 16
    pids = {k: int(v) for k, v in (p.split("=", 1) for p in a.pid)}
    keys = dict(c.split("=", 1) for c in a.credentials)
    targets = []
    for spec in a.target:
        name, url = spec.split("=", 1)
        ak, sk = keys.get(name, "test:test").split(":", 1)
        t = harness.Target(name, url, ak, sk)
        harness.detect(t, ["s3", "ddb"])
        t.pid = pids.get(name) or listening_pid(urlsplit(url).port or 80)
        targets.append(t)
    print(
        f"# cpu_per_request {time.strftime('%H:%M')} load={os.getloadavg()[0]:.2f} wrk -c{a.conns} "
        f"-d{a.seconds}s rounds={a.rounds}; " + ", ".join(f"{t.name}=pid {t.pid}" for t in targets)
    )
    by_name = {w.name: w for w in harness.WORKLOADS}
    chosen = [by_name[n] for n in a.workloads.split(",")]
    results: dict[str, dict[str, list[tuple[float, float]]]] = {
        w.name: {t.name: [] for t in targets} for w in chosen
    }
    for w in chosen:
        scripts = {t.name: harness.setup(w, t, a)[1] for t in targets}
        for _ in range(a.rounds):
            for t in targets:
                if a.warmup:
                    harness.run_wrk(t, scripts[t.name], a.warmup, a.conns, 1)
                if a.callgrind:
                    callgrind(t.pid, "-z")
                    callgrind(t.pid, "-i", "on")
                before = cpu_seconds(t.pid)
                r = harness.run_wrk(t, scripts[t.name], a.seconds, a.conns, 1)
                after = cpu_seconds(t.pid)
                n = max(1, r["requests"])
                if a.callgrind:
                    thousands = instructions(t.pid) / n / 1000  # (read while still switched on)
                    callgrind(t.pid, "-i", "off")
                    results[w.name][t.name].append((thousands, r["ops"]))
                    print(
                        f"  {w.name:<10} {t.name:<8} {thousands:9.1f} thousand instructions/request"
                        f"  ({n} requests, errors={r['errors']})",
                        flush=True,
                    )
                    continue
                user, system = (after[0] - before[0]) / n * 1e6, (after[1] - before[1]) / n * 1e6
                us = user + system
                results[w.name][t.name].append((us, r["ops"]))
                print(
                    f"  {w.name:<10} {t.name:<8} {us:7.1f} µs CPU/request (user {user:5.1f}, system {system:5.1f})"
                    f"  {r['ops']:9,.0f} ops/s  "
                    f"errors={r['errors']} load={os.getloadavg()[0]:.2f}",
                    flush=True,
                )
    unit = "kIr/req" if a.callgrind else "µs/req"
    print(f"\n{'workload':<11}" + "".join(f"{t.name + ' ' + unit:>22}{'ops/s':>10}" for t in targets))
    for w in chosen:
        row = f"{w.name:<11}"
        base_us = statistics.median(u for u, _ in results[w.name][targets[0].name])
        base_ops = statistics.median(o for _, o in results[w.name][targets[0].name])
        for t in targets:
            us = statistics.median(u for u, _ in results[w.name][t.name])
            ops = statistics.median(o for _, o in results[w.name][t.name])
            row += f"{us:>10.1f} ({us / base_us:.2f}x){'':>2}{ops:>8,.0f} ({ops / base_ops:.2f}x)"
        print(row)
    print(f"medians of {a.rounds} rounds; CPU ratios above 1.00x cost more than {targets[0].name}")


if __name__ == "__main__":
    main()
