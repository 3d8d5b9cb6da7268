"""Redis Cluster formation and slot bookkeeping for cluster-mode replication groups.

Split from strata.engines.redis (the single-server engine): these functions act on several
RedisServer processes at once to form, inspect and fail over a real Redis Cluster.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import redis

from strata.engines.process import EngineError
from strata.engines.redis import CLUSTER_SLOTS, STAND_IN, RedisServer, until

log = logging.getLogger("strata")


def slot_ranges(shards: int) -> list[tuple[int, int]]:
    """Split the 16384 hash slots into `shards` contiguous ranges, as ElastiCache does by default."""
    base, extra = divmod(CLUSTER_SLOTS, shards)
    out, start = [], 0
    for i in range(shards):
        size = base + (1 if i < extra else 0)
        out.append((start, start + size - 1))
        start += size
    return out


def parse_slots(text: str) -> tuple[int, int]:
    """'0-5460' -> (0, 5460)."""
    low, _, high = text.partition("-")
    return int(low), int(high or low)


def node_id(server: RedisServer) -> str:
    with server.client() as c:
        return str(c.execute_command("CLUSTER", "MYID"))


def form_cluster(
    shards: list[list[RedisServer]],
    slots: list[tuple[int, int]],
    timeout: float = 60,
    spare_addresses: list[str] | None = None,
) -> None:
    """Join freshly started cluster-mode nodes into one cluster whose first node of each shard is
    the primary serving that shard's slot range and the others its replicas; returns once every
    node serves or knows the whole slot map and every replica is linked to its primary.

    Where the time goes (measured): a Redis Cluster *primary* refuses queries until
    CLUSTER_WRITABLE_DELAY (2 s, not configurable) after its process started, while a *replica*
    has no such delay; and a node learns another's slots only from that node's own ping/pong,
    sent every ~1 s at random (at the latest every cluster-node-timeout / 2). So:

    1. A shard with a replica starts with its slots on a stand-in (its second node) while the
       designated primary replicates it; the primary, already serving as a replica, then takes
       over (CLUSTER FAILOVER TAKEOVER: no election, no data to lose on a fresh node). It becomes
       a primary whose cluster state is already ok, so the 2 s delay never applies, and the
       takeover broadcasts the new slot owner to every node at once instead of waiting for gossip.
    2. Slots are claimed before the nodes meet, and each primary meets its stand-in itself (it
       sends the MEET), so it hears the stand-in's slots in the handshake's first ping (~0.1 s).
    A shard without replicas borrows a temporary stand-in node on one of `spare_addresses` (same
    port, the primary's settings), which is stopped and forgotten by every node once the cluster
    has formed; with no spare address left it is formed directly and waits out the engine's
    delay, as is a shard whose primary was restored from a snapshot (it claims the slots of its
    keys when it loads them).
    """
    spares = list(spare_addresses or [])
    temporary: list[RedisServer] = []
    for shard in shards:
        if len(shard) == 1 and spares and not (Path(shard[0].config.data_dir) / "dump.rdb").exists():
            temporary.append(shard[0].stand_in(spares.pop(0)))
    try:
        for server in temporary:
            server.launch()
        for server in temporary:
            until(lambda s=server: _started(s), timeout, "stand-in start")
        by_primary = {t.name.removesuffix(STAND_IN): t for t in temporary}
        formed = [
            shard + ([by_primary[shard[0].name]] if shard[0].name in by_primary else []) for shard in shards
        ]
        everyone = [s for shard in formed for s in shard]
        clients = {s.name: s.client() for s in everyone}  # one admin connection per node while forming
        try:
            _form(formed, slots, everyone, clients, timeout)
            for server in temporary:
                gone = str(clients[server.name].execute_command("CLUSTER", "MYID"))
                server.stop()
                for other in everyone:
                    if other not in temporary:
                        clients[other.name].execute_command("CLUSTER", "FORGET", gone)
        finally:
            for c in clients.values():
                c.close()
    finally:
        for server in temporary:
            server.stop()
            shutil.rmtree(server.config.data_dir, ignore_errors=True)


def _form(
    shards: list[list[RedisServer]],
    slots: list[tuple[int, int]],
    everyone: list[RedisServer],
    clients: dict[str, redis.Redis],
    timeout: float,
) -> None:
    started = time.monotonic()
    phases: list[str] = []

    def phase(name: str) -> None:
        phases.append(f"{name} {time.monotonic() - started:.3f}")

    def cmd(server: RedisServer, *args: str) -> object:
        return clients[server.name].execute_command(*args)

    def view(server: RedisServer) -> dict[str, list[str]]:
        return _nodes(str(cmd(server, "CLUSTER", "NODES")))

    owned = {s.name: _own_slots(view(s)) for s in everyone}
    holders = [
        shard[1] if len(shard) > 1 and not any(owned[s.name] for s in shard) else shard[0] for shard in shards
    ]
    # Distinct config epochs from the start (as redis-cli --cluster create does): otherwise the
    # engine resolves epoch collisions lazily, and a failover soon after creation can be undone
    # by a restarted old primary whose epoch is not lower than its promoted replica's.
    for epoch, server in enumerate(everyone, start=1):
        try:
            cmd(server, "CLUSTER", "SET-CONFIG-EPOCH", str(epoch))
        except redis.ResponseError:  # not fresh (restored nodes.conf): it has an epoch already
            pass
    for holder, (low, high) in zip(holders, slots, strict=True):
        for a, b in _runs([s for s in range(low, high + 1) if s not in owned[holder.name]]):
            cmd(holder, "CLUSTER", "ADDSLOTSRANGE", str(a), str(b))
    ids = {s.name: str(cmd(s, "CLUSTER", "MYID")) for s in everyone}
    phase("slots claimed")
    # Every node meets every later one directly (a shard's primary comes before its stand-in).
    for i, server in enumerate(everyone):
        for other in everyone[i + 1 :]:
            cfg = other.config
            cmd(server, "CLUSTER", "MEET", cfg.address, str(cfg.port), str(cfg.cluster_bus_port))
    # Membership converged: every node knows every other by id, with a link to it, so a
    # takeover's broadcast reaches everyone.
    for s in everyone:
        until(lambda s=s: _knows_all(view(s), set(ids.values())), timeout, "cluster meet")
    phase("met")
    for shard, holder in zip(shards, holders, strict=True):
        for member in shard:
            if member is not holder:
                cmd(member, "CLUSTER", "REPLICATE", ids[holder.name])
    for shard, holder, (low, high) in zip(shards, holders, slots, strict=True):
        if holder is shard[0]:
            continue
        primary = shard[0]
        until(
            lambda p=primary, h=ids[holder.name], r=f"{low}-{high}": (
                _serves(view(p), h, r) and _state_ok(str(cmd(p, "CLUSTER", "INFO")))
            ),
            timeout,
            "stand-in's slots known",
        )
        cmd(primary, "CLUSTER", "FAILOVER", "TAKEOVER")
        # A takeover takes the epoch after the newest its node has heard of, unagreed: the next one
        # must not start before every node has heard of this one, or two primaries share an epoch.
        # The engine settles such a tie later by bumping the node with the smaller id, and if that
        # is a primary that then dies, its replica's takeover can tie with it again, and the dead
        # node restarted wins its slots back, empty (a lost failover).
        epoch = _epoch(view(primary))  # TAKEOVER bumps it before it replies
        until(
            lambda e=epoch: all(_current_epoch(str(cmd(s, "CLUSTER", "INFO"))) >= e for s in everyone),
            timeout,
            "takeover epoch known",
        )
    phase("taken over")
    # Every node serves its slots (a directly formed primary waits ~2 s) and knows who serves every
    # range: a replica promoted before it learned its primary's slots would take over nothing.
    owners = [(ids[shard[0].name], f"{low}-{high}") for shard, (low, high) in zip(shards, slots, strict=True)]
    for s in everyone:
        until(
            lambda s=s: (
                _state_ok(str(cmd(s, "CLUSTER", "INFO")))
                and all(_serves(view(s), owner, r) for owner, r in owners)
            ),
            timeout,
            "slot map",
        )
    phase("slot map agreed")
    for shard in shards:
        primary_id = ids[shard[0].name]
        for replica in shard[1:]:
            # After a stand-in's takeover the engine moves the stand-in's other replicas to the new
            # primary itself (Redis 7.0 not always): make sure.
            def follows(r: RedisServer = replica, primary_id: str = primary_id) -> bool:
                mine = next(f for f in view(r).values() if "myself" in f[2])
                if "slave" not in mine[2] or mine[3] != primary_id:
                    cmd(r, "CLUSTER", "REPLICATE", primary_id)
                info = clients[r.name].info("replication")
                return info.get("master_link_status") == "up"

            until(follows, timeout, "replica link")
    phase("replicas linked")
    log.info("redis cluster of %d nodes formed: %s", len(everyone), ", ".join(phases))


def _nodes(text: str) -> dict[str, list[str]]:
    """CLUSTER NODES output by node id: the fields of each line (id, address, flags, primary,
    ping, pong, epoch, link state, slots...)."""
    return {f[0]: f for f in (line.split() for line in text.splitlines()) if len(f) >= 8}


def _own_slots(nodes: dict[str, list[str]]) -> set[int]:
    for fields in nodes.values():
        if "myself" in fields[2]:
            out: set[int] = set()
            for part in fields[8:]:
                if not part.startswith("["):  # "[slot->-id]": a slot being migrated
                    low, high = parse_slots(part)
                    out.update(range(low, high + 1))
            return out
    return set()


def _knows_all(nodes: dict[str, list[str]], ids: set[str]) -> bool:
    """Whether a node's view has exactly the nodes `ids`, each past the handshake and linked."""
    return set(nodes) == ids and all(
        "handshake" not in f[2] and "noaddr" not in f[2] and f[7] == "connected" for f in nodes.values()
    )


def _serves(nodes: dict[str, list[str]], owner_id: str, slots: str) -> bool:
    fields = nodes.get(owner_id)
    return fields is not None and "master" in fields[2] and slots in fields[8:]


def _epoch(nodes: dict[str, list[str]]) -> int:
    """The viewing node's own config epoch."""
    for fields in nodes.values():
        if "myself" in fields[2]:
            return int(fields[6])
    return 0


def _current_epoch(cluster_info: str) -> int:
    for line in cluster_info.splitlines():
        if line.startswith("cluster_current_epoch:"):
            return int(line.split(":", 1)[1])
    return 0


def newest_epoch(servers: list[RedisServer]) -> int:
    """The highest epoch any of `servers` has heard of (current epoch and every config epoch)."""
    newest = 0
    for server in servers:
        with server.client() as c:
            newest = max(newest, _current_epoch(str(c.execute_command("CLUSTER", "INFO"))))
            newest = max(
                [newest, *(int(f[6]) for f in _nodes(str(c.execute_command("CLUSTER", "NODES"))).values())]
            )
    return newest


def current_epoch(server: RedisServer) -> int:
    with server.client() as c:
        return _current_epoch(str(c.execute_command("CLUSTER", "INFO")))


def config_epoch(server: RedisServer) -> int:
    with server.client() as c:
        return _epoch(_nodes(str(c.execute_command("CLUSTER", "NODES"))))


def _state_ok(cluster_info: str) -> bool:
    return "cluster_state:ok" in cluster_info


def owned_slots(server: RedisServer) -> set[int]:
    """The hash slots this node serves, from its own line of CLUSTER NODES."""
    with server.client() as c:
        return _own_slots(_nodes(str(c.execute_command("CLUSTER", "NODES"))))


def _runs(slots: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs of sorted slot numbers: [1,2,3,7] -> [(1,3),(7,7)]."""
    out: list[tuple[int, int]] = []
    for s in slots:
        if out and out[-1][1] == s - 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


def cluster_ok(server: RedisServer) -> bool:
    with server.client() as c:
        return "cluster_state:ok" in str(c.execute_command("CLUSTER", "INFO"))


def serves_slots(server: RedisServer, owner: RedisServer, slots: str) -> bool:
    """Whether `server`'s view of the cluster has `owner` as the primary serving `slots` ("low-high")."""
    with server.client() as c:
        text = str(c.execute_command("CLUSTER", "NODES"))
    where = f"{owner.config.address}:{owner.config.port}@"
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 8 and fields[1].startswith(where):
            return "master" in fields[2] and slots in fields[8:]
    return False


def cluster_failover(replica: RedisServer, takeover: bool) -> None:
    """Promote a cluster replica: FAILOVER (coordinated) or TAKEOVER (its primary is gone)."""
    with replica.client() as c:
        c.execute_command("CLUSTER", "FAILOVER", *(["TAKEOVER"] if takeover else []))


def _started(server: RedisServer) -> bool:
    if not server.running():
        raise EngineError(f"{server.name} exited while starting: {server.process.log_tail(800)}")
    return server.ping()
