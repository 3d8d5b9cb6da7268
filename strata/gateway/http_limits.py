"""How long an HTTP client may keep the server waiting, and how many connections it may hold.

A client that trickles its request head a byte at a time, announces a body and never sends it,
never reads its answers, or opens connections without end would otherwise hold sockets and memory
forever (slowloris). The HTTP server (strata.gateway.http1) checks these bounds in one sweep.
"""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass

log = logging.getLogger("strata.http")


@dataclass(frozen=True)
class HttpLimits:
    """How long a client may take, and how many connections one address may hold (config.py has
    the settings and their environment variables)."""

    # A request head (line and headers) must arrive whole within this many seconds of its first
    # byte (nginx's client_header_timeout).
    header_timeout: float = 60.0
    # A body that stops arriving for this long ends its request (S3's RequestTimeout).
    body_timeout: float = 60.0
    # A connection with nothing in flight is closed after this long.
    idle_timeout: float = 120.0
    # A client that reads nothing of its answers for this long is cut off (nginx's send_timeout).
    send_timeout: float = 60.0
    # Connections one client address may hold; more are answered 503 and closed. Well above the
    # pools of boto3 (10) and the CLI (10 threads), and of a test opening hundreds from loopback.
    max_connections_per_ip: int = 1024

    @property
    def sweep_interval(self) -> float:
        """How often deadlines are checked (and the coarse clock connections stamp is read):
        a deadline may pass up to this much early or late."""
        shortest = min(self.header_timeout, self.body_timeout, self.idle_timeout, self.send_timeout)
        return max(0.05, min(1.0, shortest / 4))


# Sent to a connection beyond its address's cap, which is then closed.
_TOO_MANY_TEXT = b"Too many connections from your address\n"
TOO_MANY_CONNECTIONS = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\nconnection: close\r\n"
    + f"content-length: {len(_TOO_MANY_TEXT)}\r\n\r\n".encode()
    + _TOO_MANY_TEXT
)


def raise_open_file_limit() -> int:
    """Lift the soft limit on open files to the hard one (1,024 by default on many systems, too
    few for a thousand clients plus the files and engines behind them); returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            log.warning("could not raise the open-file limit above %d", soft)
    return soft
