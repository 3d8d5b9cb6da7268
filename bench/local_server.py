"""What the side-by-side DynamoDB benchmarks share: a server's CPU time from /proc, and waiting
until a just-started `strata serve` answers."""

from __future__ import annotations

import os
import time
from pathlib import Path

import boto3

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process, all its threads."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def wait_up(url: str) -> None:
    d = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1")
    for _ in range(200):
        try:
            d.list_tables()
            return
        except Exception:  # noqa: BLE001 - not listening yet
            time.sleep(0.1)
    raise SystemExit("server did not start")
