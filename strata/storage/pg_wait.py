"""Wait for the `--metadata` PostgreSQL at start-up instead of exiting at once.

A gateway started while its PostgreSQL is unreachable (a Patroni failover takes 15-25 s; the
database may come up after the gateways on a machine's boot) used to exit with status 1 at once,
so a supervisor restarted it about every second until the database came back. Now the first
connection is retried with backoff for a bounded time, saying once per attempt what it waits for.

Only a failure to reach the server is waited for, and the server's own "not now" answers
(starting up, shutting down, in recovery, too many clients). An answer that will not change by
waiting (wrong password, no such database or user, pg_hba refusing us) or a malformed URL fails
at once: a supervisor restarting a misconfigured gateway for a minute helps nobody.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import psycopg

T = TypeVar("T")

# The server's refusals that a failover or a restart explains and that pass by themselves.
_PASSING = (
    "the database system is",  # starting up / shutting down / in recovery mode / not yet accepting
    "too many clients",
    "remaining connection slots",
    "server closed the connection unexpectedly",
    "terminating connection due to administrator command",
)


def unreachable(e: Exception) -> bool:
    """True when `e` says the server could not be reached or asked us to come back later.

    libpq gives no SQLSTATE for a refused connection (psycopg's `sqlstate` is None even for a wrong
    password), so the message decides: a server that answered with FATAL for another reason
    (authentication, database or role missing, pg_hba) is a configuration error."""
    if not isinstance(e, psycopg.OperationalError):
        return False  # ProgrammingError: a malformed URL; anything else is not the network's
    text = str(e)
    if any(p in text for p in _PASSING):
        return True
    return "FATAL:" not in text


def wait_for(
    attempt: Callable[[], T],
    what: str,
    wait: float,
    say: Callable[[str], None],
    first_backoff: float = 0.5,
    max_backoff: float = 5.0,
) -> T:
    """Run `attempt` until it returns, retrying while it fails with `unreachable` errors for up to
    `wait` seconds (backoff doubling from `first_backoff` to `max_backoff`); `say` is told once per
    retry what is awaited and why. The last error is raised when the time is up, any other at once."""
    deadline = time.monotonic() + wait
    backoff = first_backoff
    while True:
        try:
            return attempt()
        except Exception as e:  # noqa: BLE001 - classified by `unreachable`, re-raised otherwise
            left = deadline - time.monotonic()
            if not unreachable(e) or left <= 0:
                raise
            pause = min(backoff, left)
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            say(f"waiting for {what} ({left:.1f} s left, next try in {pause:.1f} s): {reason}")
            time.sleep(pause)
            backoff = min(backoff * 2, max_backoff)
