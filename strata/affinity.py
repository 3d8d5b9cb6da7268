"""Keep the request-serving threads on one CPU; give everything else the whole machine.

Why: requests are served by the event-loop thread (strata.gateway.http1), and the threads it works
with most (strata.storage's writer and fsync threads, the meter's writer) hand the GIL back and forth
with it. When they sit on different CPUs each handoff is a cross-CPU futex wake-up; pinned to one
CPU it is a plain context switch. Only one thread runs Python at a time anyway, so the pin costs
the server no parallelism. (Measured when requests still crossed from granian's Rust threads: a
quarter of a small request's CPU, GetItem 200 -> 150 us; with HTTP on the loop the gain is smaller,
within the noise of a shared machine, and the pin stays for the commit threads.)

Linux keeps affinity per thread and a new thread or child process inherits its creator's, so:
- the event-loop thread pins itself before it starts serving, and threads it starts inherit it;
- engine processes (PostgreSQL, MariaDB, Redis...) widen themselves back in their pre-exec hook
  (`widen_child`), so they are never confined to the server's CPU;
- thread pools that do CPU-heavy work without the GIL (hashing large uploads) widen their threads
  (`unpin_thread` as the pool's initializer).
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("strata")

# The CPUs the process had before the serving thread was pinned; None while nothing is pinned.
_allowed: frozenset[int] | None = None


def _current_cpu() -> int | None:
    """The CPU the calling thread runs on now (field 39 of /proc/thread-self/stat)."""
    try:
        with open("/proc/thread-self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[36])
    except (OSError, IndexError, ValueError):
        return None


def pin_serving_thread(choice: str) -> int | None:
    """Pin the calling thread to one CPU and return it; None when not pinned.

    `choice` is "off", "auto" (the CPU the thread is on now, when the process may use two or more)
    or a CPU number. Starting on the CPU we are already on spreads several servers on one machine
    (test workers, developers) over the CPUs instead of stacking them all on CPU 0.
    """
    global _allowed
    if choice == "off" or not hasattr(os, "sched_setaffinity"):
        return None
    allowed = os.sched_getaffinity(0)
    if choice == "auto":
        if len(allowed) < 2:
            return None
        cpu = _current_cpu()
        if cpu not in allowed:
            cpu = max(allowed)
    else:
        cpu = int(choice)
        if cpu not in allowed:
            raise ValueError(f"CPU {cpu} is not available to this process (allowed: {sorted(allowed)})")
    os.sched_setaffinity(0, {cpu})
    _allowed = frozenset(allowed)
    log.debug("serving thread pinned to CPU %d", cpu)
    return cpu


def allowed_cpus() -> frozenset[int] | None:
    """Every CPU of the process when the serving thread is pinned, else None (nothing to undo)."""
    return _allowed


def unpin_thread() -> None:
    """Let the calling thread run on every CPU of the process again (a thread-pool initializer)."""
    if _allowed is not None:
        os.sched_setaffinity(0, _allowed)


def widen_child(cpus: frozenset[int] | None) -> None:
    """In a forked child before exec: take back every CPU (`cpus` read in the parent before fork)."""
    if cpus is not None:
        os.sched_setaffinity(0, cpus)
