"""ElastiCache endpoints on the engine address (`--engine-address`, strata.engines.floating).

A deployment's PRIMARY endpoint (a group's primary endpoint, a cluster-mode group's or a memcached
cluster's configuration endpoint, a standalone redis cluster's node) is a loopback address that
the node holding the role binds itself, so no route of the endpoint router carries it; one route
per deployment port, host the engine address, sends connections there (kernel DNAT, or HAProxy),
and follows failover because the address moves between nodes. A serverless cache's endpoints are
routes on 127.0.0.1, which the router serves on the engine address by itself.

One address gives one endpoint per port: reader endpoints and per-node endpoints, which share the
deployment's port on other loopback addresses, are served to other machines only with more engine
addresses (`--engine-address A,B,C/DEV`): each such loopback address then has a pool address of
its own (floating.public_host), where a route sends connections on to it (the reader's: a route
of its own; each node's: one more route per node, `expose`). Cluster-mode nodes announce their
pool address as their host name (`cluster-announce-hostname`, with `cluster-preferred-endpoint-type
hostname`), so CLUSTER SLOTS and MOVED name it, and memcached Auto Discovery lists it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from strata.config import EngineAddress
from strata.engines.endpoint import Router
from strata.engines.floating import public_host
from strata.engines.nft import served_routes
from strata.services.elasticache.nodes import PRIMARY


def _route(port: int) -> str:
    return f"engine-address-{port}"


def _node_routes(port: int) -> str:
    return f"{_route(port)}-node-"


def expose(
    router: Router | None, exposed: EngineAddress | None, port: int, nodes: Iterable[str] = ()
) -> None:
    """Serve PRIMARY:`port` on the engine address and, with a pool (`--engine-address A,B,C/DEV`),
    each of the deployment's `nodes` (loopback addresses) on its pool address, same port; routes
    of nodes no longer listed go (blocking; nothing without an engine address)."""
    if router is None or exposed is None:
        return
    router.set_route(_route(port), port, [(PRIMARY, port)], host=exposed.address)
    wanted: dict[str, tuple[str, str]] = {}
    for address in nodes if exposed.pool else ():
        public = public_host(exposed, address)
        if public is not None and public != exposed.address:
            wanted[_node_routes(port) + address] = (public, address)
    for name in [n for n in router.routes if n.startswith(_node_routes(port)) and n not in wanted]:
        router.remove_route(name)
    for name, (public, address) in wanted.items():
        if router.routes.get(name) is None or router.routes[name].host != public:
            router.set_route(name, port, [(address, port)], host=public)


def unexpose(router: Router | None, port: int) -> None:
    if router is None:
        return
    for name in [n for n in router.routes if n == _route(port) or n.startswith(_node_routes(port))]:
        router.remove_route(name)


def node_host(router: Router | None, exposed: EngineAddress | None, address: str) -> str:
    """Where other machines reach the node on loopback `address`: its pool address (what `expose`
    serves it on), or `address` itself without a pool (or a router, or with the pool full)."""
    if router is None or exposed is None or not exposed.pool:
        return address
    return public_host(exposed, address) or address


def announced(router: Router | None, exposed: EngineAddress | None, dep: dict, address: str) -> str | None:
    """The name a cluster-mode node announces itself by (CLUSTER SLOTS, MOVED): its node_host
    with an engine address pool, None otherwise (its own loopback address, as before). Not for a
    serverless cache, whose proxy rewrites its nodes' addresses to its endpoint's."""
    if exposed is None or not exposed.pool or router is None or dep.get("node_type") == "cache.serverless":
        return None
    return node_host(router, exposed, address)


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
            public = public_host(exposed, address, assign=False)
            if public is not None and (public, port) in served:
                return {**out, "Address": public}
        return {k: _advertised(v, exposed, served) for k, v in out.items()}
    if isinstance(out, list):
        return [_advertised(v, exposed, served) for v in out]
    return out
