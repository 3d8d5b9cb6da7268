"""Stable endpoints: an Address/Port that never changes while the engine process behind it does.

AWS gives an RDS instance, an Aurora cluster (writer and reader endpoints) or an ElastiCache
primary a DNS name that follows failover. Here each endpoint is a loopback port; the router sends
connections to it to the current backend(s), and failover re-points it in milliseconds.

Two mechanisms, same interface; `EndpointRouter(...)` picks the first that works here:
1. `nft` — kernel NAT redirection on the loopback OUTPUT hook (needs root/CAP_NET_ADMIN and the
   Debian `nftables` package). No user-space hop: throughput through the endpoint is the engine's.
2. `haproxy` — HAProxy in TCP mode, switched through its runtime API. Works unprivileged.
Set STRATA_ENDPOINT_MODE=haproxy (or nft) to force one.

Why (measured on this 2-core machine kind, busy with other work, so expect noise):
- redis-benchmark GET -c 50: direct ~86k req/s, through HAProxy ~49k (57 %), through nft
  redirection the same as direct within noise (~50-60k vs ~50k in a busier same run);
- pgbench -S -c 8 (bench/rds_bench.py): nft 0.87-1.04x direct, HAProxy 0.73-0.77x direct.
A uvloop proxy inside Strata's event loop would also compete with the HTTP gateway for one core.
On two cores every user-space proxy doubles the syscalls per request, so only kernel redirection
meets "≥ 80 % of direct"; HAProxy is the fallback where it cannot be used.

Interface (synchronous; call from a thread via run_blocking when on the event loop):

    router = EndpointRouter(run_dir, name="rds")    # one per service; routes saved in routes.json
    router.start()                                   # restores saved routes
    router.set_route("mydb", 45001, [("127.0.0.1", 45002)])        # single backend (writer)
    router.set_route("cl-ro", 45010, [a, b, c], balance=True, host="127.0.0.2")  # spread connections
    router.set_route("mydb", 45001, [("127.0.0.1", 45003)])        # failover: instant switch
    router.set_route("mydb", 45001, [])                            # no backend: connections refused
    router.set_route("mydb", 45001, [b], cut=False)  # HAProxy cuts a replaced backend's connections
                                                     # unless cut=False (kernel redirection never does)
    router.remove_route("mydb"); router.stop()

With an engine address (`EndpointRouter(..., exposed=EngineAddress(addr, dev))`, see
strata.engines.floating), every route on 127.0.0.1 is served on `addr` too, with its port, to
other machines; so is a route whose host is `addr` itself (what ElastiCache's primary endpoints
use, as their nodes bind 127.0.0.1 themselves). With a pool of more addresses, a route on another
loopback address (127.0.0.2, ...) is served on that address's pool address (nft.served_routes).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from strata.engines.floating import EngineAddress
from strata.engines.haproxy import HaproxyRouter
from strata.engines.nft import NftRouter, dnat_rule, nft_usable
from strata.engines.routes import LOOPBACK, MAX_BACKENDS, Route, port_open, save_routes

__all__ = [
    "EndpointRouter",
    "LoopbackNftRouter",
    "Router",
    "LOOPBACK",
    "MAX_BACKENDS",
    "Route",
    "port_open",
    "endpoint_mode",
]


class Router(Protocol):
    routes: dict[str, Route]

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def running(self) -> bool: ...
    def set_route(
        self,
        name: str,
        port: int,
        backends: list[tuple[str, int]],
        *,
        balance: bool = False,
        host: str = LOOPBACK,
        cut: bool = True,
    ) -> None: ...
    def remove_route(self, name: str) -> None: ...
    def backends(self, name: str) -> list[tuple[str, int]]: ...


_MODE: str | None = None


def endpoint_mode() -> str:
    """'nft' or 'haproxy': the mechanism this machine supports (STRATA_ENDPOINT_MODE overrides)."""
    global _MODE
    forced = os.environ.get("STRATA_ENDPOINT_MODE")
    if forced in ("nft", "haproxy"):
        return forced
    if _MODE is None:
        _MODE = "nft" if nft_usable() else "haproxy"
    return _MODE


def EndpointRouter(  # noqa: N802
    run_dir: Path,
    name: str = "endpoints",
    mode: str | None = None,
    *,
    any_loopback: bool = False,
    exposed: EngineAddress | None = None,
) -> Router:
    """The router for `run_dir`: kernel redirection when possible, else HAProxy.

    `any_loopback`: backends may listen on any 127.0.0.0/8 address, not only 127.0.0.1 (engines
    whose nodes share one port number on per-node loopback addresses, as ElastiCache's do).
    `exposed`: the engine address (strata.engines.floating), where routes on 127.0.0.1 and routes
    whose host is that address are served to other machines."""
    mode = mode or endpoint_mode()
    if mode == "nft":
        cls = LoopbackNftRouter if any_loopback else NftRouter
        return cls(run_dir, name, exposed)
    return HaproxyRouter(run_dir, name, exposed)


class LoopbackNftRouter(NftRouter):
    """Kernel redirection to backends on any loopback address: DNAT rewrites address and port
    (NftRouter's `redirect` can only change the port, so it reaches 127.0.0.1 alone). A balanced
    route picks the backend per connection with `numgen inc`, as NftRouter does."""

    def set_route(
        self,
        name: str,
        port: int,
        backends: list[tuple[str, int]],
        *,
        balance: bool = False,
        host: str = LOOPBACK,
        cut: bool = True,
    ) -> None:
        if len(backends) > MAX_BACKENDS:
            raise ValueError(f"at most {MAX_BACKENDS} backends per endpoint")
        if any(not h.startswith("127.") for h, _ in backends):
            raise ValueError("kernel redirection only reaches loopback backends")
        with self._lock:
            self.routes[name] = Route(name, port, [(h, int(p)) for h, p in backends], balance, host)
            save_routes(self._state, self.routes)
            if self._started:
                self._apply()

    def _rule(self, r: Route) -> str:
        return dnat_rule(f"ip daddr {r.host} tcp dport {r.port}", r.backends, r.balance)
