"""ElastiCache endpoints on the engine address (`--engine-address`, strata.engines.floating).

A deployment's PRIMARY endpoint (a group's primary endpoint, a cluster-mode group's or a memcached
cluster's configuration endpoint, a standalone redis cluster's node) is a loopback address that
the node holding the role binds itself, so no route of the endpoint router carries it; one route
per deployment port, host the engine address, sends connections there (kernel DNAT, or HAProxy),
and follows failover because the address moves between nodes. A serverless cache's endpoints are
routes on 127.0.0.1, which the router serves on the engine address by itself.

One address gives one endpoint per port: reader endpoints and per-node endpoints, which share the
deployment's port on other loopback addresses, stay on this machine (README: Several gateways).
"""

from __future__ import annotations

from typing import Any

from strata.config import EngineAddress
from strata.engines.endpoint import Router
from strata.services.elasticache.nodes import PRIMARY


def _route(port: int) -> str:
    return f"engine-address-{port}"


def expose(router: Router | None, exposed: EngineAddress | None, port: int) -> None:
    """Serve PRIMARY:`port` on the engine address (blocking; nothing without one)."""
    if router is not None and exposed is not None:
        router.set_route(_route(port), port, [(PRIMARY, port)], host=exposed.address)


def unexpose(router: Router | None, port: int) -> None:
    if router is not None and _route(port) in router.routes:
        router.remove_route(_route(port))


def advertise(out: Any, exposed: EngineAddress | None, router: Router | None) -> Any:
    """`out` (a rendered resource) with every endpoint on PRIMARY shown on the engine address,
    where other machines reach it (only when a router serves it there)."""
    if exposed is None or router is None:
        return out
    if isinstance(out, dict):
        if out.get("Address") == PRIMARY and "Port" in out:
            return {**out, "Address": exposed.address}
        return {k: advertise(v, exposed, router) for k, v in out.items()}
    if isinstance(out, list):
        return [advertise(v, exposed, router) for v in out]
    return out
