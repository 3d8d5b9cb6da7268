"""The proof's clock and log (bench/ha_proof.py): seconds since the proof started, and a line
printed with them, so the events of every part (kills, windows, read-backs) share one timeline.
"""

from __future__ import annotations

import time

T0 = time.monotonic()


def now() -> float:
    return time.monotonic() - T0


def say(msg: str) -> None:
    print(f"[{now():7.1f}s] {msg}", flush=True)
