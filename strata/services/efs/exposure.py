"""EFS mount targets on engine pool addresses (`--engine-address A,B,C/DEV`, strata.engines.floating).

A mount target's NFS servers listen on a loopback address of its own (exports.py), on port 2049
(the file system root) and 2050 (its access points, through the credential proxy), so without
more than one engine address it serves this machine only. With a pool, its loopback address takes
a pool address the way a cache node's does (floating.public_host: the next free one, recorded in
Settings.engine_addresses_record and kept across restarts and engine host takeovers), and two routes of EFS's own endpoint
router (kernel DNAT on PREROUTING, or HAProxy where nft cannot be used) send that address's ports
2049 and 2050 to the servers. DescribeMountTargets then shows the pool address as IpAddress, the
mount target's security groups guard it too (mounts.py `_guard`: the client's own address is
judged there), and FIS's network disruptions cut it as they cut the loopback one
(strata.engines.blackhole looks the pool address up).

A mount target's loopback address is drawn at random and never shared, so deleting one frees its
pool address (floating.forget_public_host); a full pool leaves a newcomer on loopback (logged), as
it does cache nodes. With a single engine address or none there is no router: mount targets stay
on loopback, as before.
"""

from __future__ import annotations

import logging
from pathlib import Path

from strata.config import EngineAddress
from strata.engines.endpoint import EndpointRouter, Router
from strata.engines.floating import forget_public_host, public_host, take_public_host
from strata.engines.ganesha import ACCESS_POINT_PORT, NFS_PORT

log = logging.getLogger("strata.efs")
PORTS = (NFS_PORT, ACCESS_POINT_PORT)


def start_router(run_dir: Path, exposed: EngineAddress | None) -> Router | None:
    """EFS's endpoint router when the engine address has a pool, else None (blocking)."""
    if exposed is None or not exposed.pool:
        return None
    try:
        router = EndpointRouter(run_dir, name="efs", any_loopback=True, exposed=exposed)
        router.start()
    except Exception:  # noqa: BLE001 - mount targets then serve this machine only
        log.warning("no endpoint router for EFS mount targets: they stay on loopback", exc_info=True)
        return None
    return router


def _route(mt_id: str, port: int) -> str:
    return f"{mt_id}-{port}"


def pool_address(router: Router | None, exposed: EngineAddress | None, doc: dict) -> str | None:
    """Mount target `doc`'s pool address (assigned on first use), or None when it stays on
    loopback (no router, or the pool is full)."""
    if router is None or exposed is None:
        return None
    public = public_host(exposed, doc["ip"])
    return None if public == exposed.address else public


def take(router: Router | None, exposed: EngineAddress | None, ip: str, wanted: str) -> bool:
    """Give a new mount target on loopback `ip` the pool address it asked for (CreateMountTarget's
    IpAddress); False if that is no free pool address (or there is no pool)."""
    return router is not None and exposed is not None and take_public_host(exposed, ip, wanted)


def expose(router: Router | None, exposed: EngineAddress | None, doc: dict) -> None:
    """Serve mount target `doc` on its pool address, if it has one (blocking)."""
    public = pool_address(router, exposed, doc)
    if router is None or public is None:
        return
    for port in PORTS:
        route = router.routes.get(_route(doc["id"], port))
        if route is None or route.host != public or route.backends != [(doc["ip"], port)]:
            router.set_route(_route(doc["id"], port), port, [(doc["ip"], port)], host=public)
    return public


def unexpose(router: Router | None, exposed: EngineAddress | None, doc: dict) -> None:
    """Stop serving a deleted mount target on its pool address and free the address (blocking)."""
    if router is not None:
        for port in PORTS:
            router.remove_route(_route(doc["id"], port))
    if exposed is not None and exposed.pool:
        forget_public_host(exposed, doc["ip"])


def prune(router: Router | None, exposed: EngineAddress | None, live: set[str]) -> None:
    """Drop the saved routes of mount targets no longer in `live` (deleted while Strata ran
    without a pool), and free their pool addresses (blocking)."""
    if router is None or exposed is None:
        return
    for name, route in list(router.routes.items()):
        if name.rpartition("-")[0] not in live:
            router.remove_route(name)
            for host, _ in route.backends:
                forget_public_host(exposed, host)


def shown(router: Router | None, exposed: EngineAddress | None, doc: dict) -> str:
    """The IpAddress of mount target `doc`: its pool address when served there, else its own."""
    if router is None or exposed is None:
        return doc["ip"]
    public = public_host(exposed, doc["ip"], assign=False)
    route = router.routes.get(_route(doc["id"], NFS_PORT))
    return public if public is not None and route is not None and route.host == public else doc["ip"]
