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
from strata.engines.floating import public_host
from strata.engines.nft import served_routes
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
    """`out` (a rendered resource) with every endpoint the router serves to other machines shown
    on its public address (PRIMARY's on the engine address, a reader's or node's on its pool
    address: floating.public_host); the others stay as they are."""
    if exposed is None or router is None:
        return out
    served = {(r.host, r.port) for r in served_routes(exposed, router.routes.values())}
    return _advertised(out, exposed, served)


def _advertised(out: Any, exposed: EngineAddress, served: set[tuple[str, int]]) -> Any:
    if isinstance(out, dict):
        address, port = out.get("Address"), out.get("Port")
        if isinstance(address, str) and address.startswith("127.") and port is not None:
            public = public_host(exposed, address)
            if public is not None and (public, port) in served:
                return {**out, "Address": public}
        return {k: _advertised(v, exposed, served) for k, v in out.items()}
    if isinstance(out, list):
        return [_advertised(v, exposed, served) for v in out]
    return out
