"""What a stable endpoint is (a named loopback port and the backends behind it), and its persistence.

Shared by the two endpoint mechanisms (`nft` kernel redirection, `haproxy`); see
`strata.engines.endpoint` for which one is used and why.
"""

from __future__ import annotations

import json
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"
MAX_BACKENDS = 16


@dataclass
class Route:
    """Connections to host:port go to one of `backends` (spread round-robin if `balance`).

    `host` is a loopback address; 127.0.0.2, 127.0.0.3 ... give several endpoints the same port
    (an Aurora cluster's writer and reader endpoints share one Port, as on AWS)."""

    name: str
    port: int
    backends: list[tuple[str, int]] = field(default_factory=list)
    balance: bool = False
    host: str = LOOPBACK


def load_routes(path: Path) -> dict[str, Route]:
    if not path.exists():
        return {}
    routes = {}
    for r in json.loads(path.read_text()):
        routes[r["name"]] = Route(
            r["name"],
            int(r["port"]),
            [(h, int(p)) for h, p in r["backends"]],
            r["balance"],
            r.get("host", LOOPBACK),
        )
    return routes


def save_routes(path: Path, routes: dict[str, Route]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([asdict(r) for r in routes.values()]))
    tmp.replace(path)


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """True if a TCP connection to host:port succeeds now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
