"""Aurora Serverless v2: capacity that follows load, auto-pause at MinCapacity 0, resume on connect.

Every db.serverless instance has a current capacity in ACUs (`doc["acu"]`), between its
cluster's MinCapacity and MaxCapacity in steps of 0.5. One supervisor task samples every
available serverless engine each `SAMPLE_EVERY` real seconds (serverless_load.py: CPU of the
engine's process tree, client connections) and sets the capacity the load asks for: up at once,
down by half the gap per sample (AWS scales up fast and down gradually). ACU-hours are metered at
the capacity held over simulated time (the capacity is metered up to each change), and CloudWatch
publishes ServerlessDatabaseCapacity and ACUUtilization from it.

What an ACU stands for here: AWS sizes 1 ACU at about 2 GiB of memory with the CPU that goes with
it (a db.r6g.large, 2 vCPUs and 16 GiB, is about 8 ACUs), so `CPU_PER_ACU` is a quarter of a
core; connections ask for capacity too (Aurora PostgreSQL gives about 200 connections per ACU of
memory; `CONNECTIONS_PER_ACU` keeps headroom). Memory is not sampled.

MinCapacity 0 (with SecondsUntilAutoPause, 300-86400 s, default 300): instances pause in groups,
as AWS's auto-pause does: the writer and every reader in promotion tiers 0-1 pause and resume
together, once none of them has had a user connection for that long (simulated time); a reader in
tiers 2-15 pauses and resumes on its own (`pause_group`). Connections that are not a user's do
not count: Strata's own (its metrics, probes) and the engines' replication (serverless_load.py).
A group pauses only when every member is db.serverless (a provisioned one never pauses). Paused,
an instance's endpoints (its own, and its share of the cluster's writer and reader endpoints)
point at a WakeRelay of its own, its engine stops, its capacity (and metering) is 0 ACUs; its
status stays `available`, as on AWS (CloudWatch's ServerlessDatabaseCapacity shows 0). The first
connection to any of them is held by the relay while the whole group starts (the writer first; the
readers then stream from it and catch up), then passed through; the endpoints point at the
engines again.
Background work that needs the engine (reboot, a new reader, failover, a manual snapshot,
deletion...) resumes it first, as AWS does for such operations; work that does not, does not:
parameter changes are written to the engine's configuration and take effect when it resumes,
the automated backup of a cluster whose writer is paused is skipped (nothing changed since the
pause, and the cluster's WAL/binlog archive already holds everything up to it: point-in-time
restore still reaches it), metrics report 0 ACUs, log rotation works on the files. Not paused:
a global database's clusters and Multi-AZ DB clusters. A paused instance is resumed when Strata
restarts.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math

from strata.engines.wake_relay import WakeRelay
from strata.services.base import run_blocking
from strata.services.rds import model as m
from strata.services.rds.core import RDSCore
from strata.services.rds.serverless_load import LoadSampler, connections_by_port
from strata.sim.clock import clock

log = logging.getLogger("strata.rds")

SAMPLE_EVERY = 2.0  # real seconds between load samples
CPU_PER_ACU = 0.25  # cores of CPU one ACU stands for
CONNECTIONS_PER_ACU = 100
MIN_ACU, MAX_ACU, MIN_MAX_ACU = 0.0, 256.0, 1.0
RUNNING_FLOOR = 0.5  # a running instance's least capacity (0 ACUs means paused)
PAUSE_RANGE = (300, 86400)
DEFAULT_PAUSE = 300


def check_scaling(cfg: dict | None) -> dict | None:
    """A cluster's ServerlessV2ScalingConfiguration as stored (SecondsUntilAutoPause only with
    MinCapacity 0, defaulting to 300), or AWS's InvalidParameterValue."""
    if not cfg:
        return None
    lo, hi = float(cfg.get("MinCapacity", RUNNING_FLOOR)), float(cfg.get("MaxCapacity", 128))
    pause = cfg.get("SecondsUntilAutoPause")
    for name, value, least in (("minimum", lo, MIN_ACU), ("maximum", hi, MIN_MAX_ACU)):
        if not least <= value <= MAX_ACU or (value * 2) % 1:
            raise m.fault(
                "InvalidParameterValue",
                f"Serverless v2 {name} capacity {value} isn't valid. The {name} capacity must be "
                f"between {least} and {MAX_ACU} ACUs, in steps of 0.5.",
            )
    if lo > hi:
        raise m.fault(
            "InvalidParameterValue",
            f"Serverless v2 maximum capacity {hi} isn't valid. The maximum capacity must be "
            f"greater than or equal to the minimum capacity {lo}.",
        )
    out: dict = {"MinCapacity": lo, "MaxCapacity": hi}
    if pause is not None and lo != 0:
        raise m.fault(
            "InvalidParameterValue", "SecondsUntilAutoPause can only be specified when minimum capacity is 0."
        )
    if lo == 0:
        pause = DEFAULT_PAUSE if pause is None else int(pause)
        if not PAUSE_RANGE[0] <= pause <= PAUSE_RANGE[1]:
            raise m.fault(
                "InvalidParameterValue",
                f"SecondsUntilAutoPause {pause} isn't valid. Specify a value between "
                f"{PAUSE_RANGE[0]} and {PAUSE_RANGE[1]} seconds.",
            )
        out["SecondsUntilAutoPause"] = pause
    return out


def merged_scaling(current: dict | None, change: dict) -> dict:
    """A ModifyDBCluster's ServerlessV2ScalingConfiguration over the cluster's: the capacities it
    leaves out are kept, and so is the auto-pause time while the minimum stays 0."""
    out = dict(change)
    for name in ("MinCapacity", "MaxCapacity"):
        if name not in out and current and name in current:
            out[name] = current[name]
    if (
        "SecondsUntilAutoPause" not in out
        and current
        and "SecondsUntilAutoPause" in current
        and float(out.get("MinCapacity", RUNNING_FLOOR)) == 0
    ):
        out["SecondsUntilAutoPause"] = current["SecondsUntilAutoPause"]
    return out


def next_capacity(current: float, cpu_cores: float, connections: int, lo: float, hi: float) -> float:
    """The capacity after one sample: what the load asks for (in 0.5 steps, within the range),
    reached at once when above `current`, else approached by half the gap (at least a step)."""
    demand = max(cpu_cores / CPU_PER_ACU, connections / CONNECTIONS_PER_ACU)
    floor = max(lo, RUNNING_FLOOR)
    target = min(hi, max(floor, math.ceil(demand * 2) / 2))
    if target >= current:
        return target
    return max(target, math.floor((current - max(0.5, (current - target) / 2)) * 2) / 2)


def held_capacity(doc: dict, config: dict) -> float:
    """The ACUs a db.serverless instance holds now (`config`: its cluster's scaling
    configuration): 0 while paused, else its current capacity kept within the range."""
    if doc.get("paused"):
        return 0.0
    floor = max(RUNNING_FLOOR, float(config.get("MinCapacity", RUNNING_FLOOR)))
    hi = float(config.get("MaxCapacity", MAX_ACU))
    return min(hi, max(floor, float(doc.get("acu") or floor)))


def pause_group(cluster: dict, tiers: dict[str, int], ident: str) -> list[str]:
    """The instances of `cluster` that pause and resume with `ident`, the writer first (AWS: the
    writer and every reader in promotion tiers 0-1 pause and resume together; a reader in tiers
    2-15 on its own). `tiers`: member -> PromotionTier."""
    writer = cluster.get("writer")
    if ident != writer and tiers.get(ident, 1) >= 2:
        return [ident]
    readers = [i for i in cluster["members"] if i != writer and tiers.get(i, 1) <= 1]
    return ([writer] if writer else []) + readers


class ServerlessOperations(RDSCore):
    """The capacity supervisor, auto-pause and resume (see the module docstring)."""

    def _serverless_state(self) -> dict:
        """relays: engine key -> the WakeRelay of a paused instance (or one being paused);
        routed: engine key -> the relay port its endpoints point at; draining: relays of resumed
        instances still passing connections on; idle_since: engine key -> simulated time a user
        connection was last seen."""
        if not hasattr(self, "_sls"):
            self._sls = {
                "relays": {},
                "routed": {},
                "draining": set(),
                "idle_since": {},
                "sampler": LoadSampler(),
                "loop": None,
            }
        return self._sls

    def _scaling_of(self, doc: dict) -> dict:
        cluster = self.store.get_doc("cluster", doc["cluster"]) if doc.get("cluster") else None
        return (cluster or {}).get("serverless_v2") or {}

    def _backend_port(self, doc: dict) -> int:
        port = self._serverless_state()["routed"].get(self.store.engine_key(doc["id"]))
        return port if port is not None else super()._backend_port(doc)

    def _group(self, doc: dict) -> tuple[dict | None, list[dict]]:
        """`doc`'s cluster and the records of its pause group (see `pause_group`)."""
        cluster = self.store.get_doc("cluster", doc["cluster"]) if doc.get("cluster") else None
        if cluster is None:
            return None, [doc]
        docs = {i: self.store.get_doc("instance", i) for i in cluster["members"]}
        tiers = {i: d.get("promotion_tier", 1) for i, d in docs.items() if d}
        return cluster, [d for i in pause_group(cluster, tiers, doc["id"]) if (d := docs.get(i))]

    @staticmethod
    def _may_pause(cluster: dict | None, group: list[dict]) -> bool:
        """Can the group pause: every member a running db.serverless instance of an available
        Aurora cluster with MinCapacity 0 (not a global database's: its other regions replicate
        from the writer; not a Multi-AZ DB cluster)."""
        return (
            cluster is not None
            and cluster["status"] == "available"
            and bool(cluster.get("writer"))
            and not cluster.get("global_cluster")
            and not cluster.get("multi_az_cluster")
            and (cluster.get("serverless_v2") or {}).get("MinCapacity") == 0
            and all(
                d["class"] == "db.serverless"
                and d["status"] == "available"
                and not d.get("paused")
                and d.get("primary")
                for d in group
            )
        )

    def _carried(self) -> set[int]:
        state = self._serverless_state()
        relays = [*list(state["relays"].values()), *list(state["draining"])]
        return {p for r in relays for p in list(r.upstream_ports)}

    # -- server life -------------------------------------------------------------------------------

    async def start(self) -> None:
        state = self._serverless_state()
        state["loop"] = asyncio.get_running_loop()
        for doc in self.store.list_docs("instance"):  # a paused engine starts with Strata again
            if doc.get("paused"):
                with self.store.acting_for(doc):
                    self._set_capacity(doc, 0.0, paused=False)  # the pause metered at 0 ACUs
        await super().start()
        self._loops.append(asyncio.create_task(self._serverless_supervisor()))

    async def stop(self) -> None:
        state = self._serverless_state()
        for relay in [*state["relays"].values(), *state["draining"]]:
            await relay.close()
        await super().stop()

    def _locked(self, ident: str, fn, *args):  # noqa: ANN001, ANN202
        """Background work on a paused instance (or one needing its paused writer) resumes it
        first, with its pause group. Resumed before the instance's lock is taken (each member
        under its own lock: two jobs on members of one group must not wait for each other's
        lock), and checked again under it: the group cannot pause meanwhile, as `ident` is busy,
        unless it is not in that group (a reader built from a writer the clock idled again)."""
        targets = self._paused_for(ident)
        if targets:
            self._resume_group(targets)
        with self.fleet.lock(ident):
            targets = self._paused_for(ident)
            if targets:
                self._resume_group(targets)
            return super()._locked(ident, fn, *args)

    def _paused_for(self, ident: str) -> list[str]:
        """The paused instances work on `ident` needs running, the writer first: a cluster's work
        (failover) all of them; an instance's its pause group, and the writer's group too while
        it is built from the writer (not available)."""
        if ident.startswith("cluster:"):
            cluster = self.store.get_doc("cluster", ident.split(":", 1)[1])
            doc = None
            wanted = list((cluster or {}).get("members", []))
        else:
            doc = self.store.get_doc("instance", ident)
            if doc is None:
                return []
            cluster, group = self._group(doc)
            wanted = [d["id"] for d in group]
            writer = self.store.get_doc("instance", (cluster or {}).get("writer") or "")
            if writer is not None and doc["status"] != "available":
                wanted += [d["id"] for d in self._group(writer)[1] if d["id"] not in wanted]
        first = (cluster or {}).get("writer")
        wanted.sort(key=lambda i: i != first)
        return [i for i in wanted if (self.store.get_doc("instance", i) or {}).get("paused")]

    # -- the supervisor ----------------------------------------------------------------------------

    async def _serverless_supervisor(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_EVERY)
            try:
                await self._serverless_round()
            except Exception:  # noqa: BLE001 - the supervisor must keep running
                log.exception("rds serverless supervisor")

    async def _serverless_round(self) -> None:
        state = self._serverless_state()
        docs = []
        for d in self.store.list_docs("instance"):
            if d["class"] != "db.serverless" or d["status"] != "available":
                continue
            if not d.get("paused"):
                docs.append(d)
                continue
            with self.store.acting_for(d):
                if self._is_busy(d["id"]):
                    continue
                # paused, but its cluster's MinCapacity is no longer 0, or part of its group runs
                # (a PromotionTier changed, a provisioned reader joined)
                group = self._group(d)[1]
                if self._scaling_of(d).get("MinCapacity") != 0 or not all(g.get("paused") for g in group):
                    await self._wake(d)
        if not docs:
            return
        nodes = {}
        for doc in docs:
            with self.store.acting_for(doc):
                if self._is_busy(doc["id"]) or not doc.get("primary"):
                    continue
                try:
                    nodes[self.store.engine_key(doc["id"])] = (doc, self.fleet.primary(doc))
                except Exception as e:  # noqa: BLE001 - e.g. its encrypted volume is locked: not sampled
                    log.debug("serverless: %s not sampled: %s", doc["id"], e)
        state["draining"] = {r for r in state["draining"] if r.busy()}
        carried = self._carried()
        engines = self.fleet.engine_pids()

        def sample() -> dict[str, tuple[float | None, int]]:
            now = clock.monotonic()
            counts = connections_by_port({n.port for _, n in nodes.values()}, carried, engines)
            out = {
                k: (state["sampler"].cpu_cores(n.proc.pid, now), counts[n.port])
                for k, (_, n) in nodes.items()
            }
            state["sampler"].forget({n.proc.pid for _, n in nodes.values() if n.proc.pid})
            return out

        loads = await run_blocking(sample)
        for key, (doc, _node) in nodes.items():
            cpu, connections = loads[key]
            with self.store.acting_for(doc):
                self._apply_load(doc, key, cpu, connections)
        due: dict[tuple[str, ...], tuple[dict, list[str]]] = {}
        for doc, _node in nodes.values():
            with self.store.acting_for(doc):
                ids = self._due_to_pause(doc)
                if ids:
                    due[tuple(self.store.engine_key(i) for i in ids)] = (doc, ids)
        for doc, ids in due.values():
            with self.store.acting_for(doc):
                await self._pause(doc["cluster"], ids)

    def _apply_load(self, doc: dict, key: str, cpu: float | None, connections: int) -> None:
        config = self._scaling_of(doc)
        lo = float(config.get("MinCapacity", RUNNING_FLOOR))
        hi = float(config.get("MaxCapacity", MAX_ACU))
        current = held_capacity(doc, config)
        if cpu is not None:
            new = next_capacity(current, cpu, connections, lo, hi)
            if new != current:
                self._set_capacity(doc, new)
        idle = self._serverless_state()["idle_since"]
        if connections or key not in idle:
            idle[key] = clock.time()

    def _due_to_pause(self, doc: dict) -> list[str] | None:
        """The pause group of `doc` when every member of it has been without user connections
        for SecondsUntilAutoPause; else None."""
        cluster, group = self._group(doc)
        if not self._may_pause(cluster, group) or any(self._is_busy(d["id"]) for d in group):
            return None
        wait = float((cluster or {})["serverless_v2"]["SecondsUntilAutoPause"])
        idle, now = self._serverless_state()["idle_since"], clock.time()
        keys = [self.store.engine_key(d["id"]) for d in group]
        if all(k in idle and now - idle[k] >= wait for k in keys):
            return [d["id"] for d in group]
        return None

    def _set_capacity(self, doc: dict, acu: float, **fields: object) -> dict:
        """Meter the capacity held so far (from the record as stored: the scheduler may have
        metered since `doc` was read), then hold `acu`."""
        current = self.store.get_doc("instance", doc["id"]) or doc
        self._meter_instance(current)  # type: ignore[attr-defined]  # instances.py
        current.update(acu=acu, **fields)
        doc.update(acu=acu, **fields)
        return self._save(current, "acu", "metered_at", *fields)

    # -- pause and resume --------------------------------------------------------------------------

    async def _pause(self, cid: str, ids: list[str]) -> None:
        """Pause a group (`ids`, the writer first) together: each member's endpoints go to a relay
        of its own, whose first connection resumes the whole group (see `_wake`)."""
        state = self._serverless_state()
        keys = {i: self.store.engine_key(i) for i in ids}
        relays: dict[str, WakeRelay] = {}
        for i in ids:
            doc = self._get_instance(i)
            relays[i] = WakeRelay(functools.partial(self._wake, doc))
            await relays[i].start()
            state["relays"][keys[i]] = relays[i]
        added = {k for k in keys.values() if k not in self._busy}
        self._busy.update(added)  # the monitor and the scheduler leave them alone meanwhile
        try:
            ports = {i: r.port for i, r in relays.items()}
            paused = await run_blocking(self._pause_blocking, cid, ids, ports)
        except Exception:  # noqa: BLE001 - not paused this time; the supervisor tries again
            log.exception("pausing %s", ", ".join(ids))
            paused = False
        finally:
            self._busy.difference_update(added)
        running = []
        for i, relay in relays.items():
            if paused:
                state["idle_since"].pop(keys[i], None)
                continue
            if (self.store.get_doc("instance", i) or {}).get("paused"):
                continue  # stopped before a failure: its relay resumes it
            running.append(i)
            state["routed"].pop(keys[i], None)
            if state["relays"].get(keys[i]) is relay:
                del state["relays"][keys[i]]
            relay.stop_listening()  # a connection it took meanwhile goes on to the engine
            state["draining"].add(relay)
        if running:  # (pointed at the engines already, unless the pause failed half-way)
            try:
                await run_blocking(self._route_members, cid, running)
            except Exception:  # noqa: BLE001 - e.g. the cluster is gone
                log.warning("could not point %s back at their engines", ", ".join(running))

    def _pause_blocking(self, cid: str, ids: list[str], ports: dict[str, int]) -> bool:
        state = self._serverless_state()
        taken = []
        try:
            for i in ids:  # work holding one of them (or waiting for another) goes first
                lock = self.fleet.lock(i)
                if not lock.acquire(blocking=False):
                    return False
                taken.append(lock)
            cluster, group = self._group(self._get_instance(ids[0]))
            if [d["id"] for d in group] != ids or not self._may_pause(cluster, group):
                return False
            nodes = [self.fleet.primary(d) for d in group]
            for i in ids:
                state["routed"][self.store.engine_key(i)] = ports[i]
            self._route_members(cid, ids)
            # a connection that reached an engine before the endpoints moved keeps the group running
            counts = connections_by_port({n.port for n in nodes}, self._carried(), self.fleet.engine_pids())
            if any(counts.values()):
                for i in ids:
                    state["routed"].pop(self.store.engine_key(i), None)
                self._route_members(cid, ids)
                return False
            # the writer first: its clean stop passes its last WAL to the readers streaming from it
            for doc, node in zip(group, nodes, strict=True):
                try:
                    if doc["kind"] == "postgres" and doc["id"] == cluster["writer"]:  # type: ignore[index]
                        node.switch_wal()  # the cluster's archive then holds everything up to the pause
                except Exception:  # noqa: BLE001 - pausing must not fail because of the archive
                    log.warning("could not switch WAL before pausing %s", doc["id"])
                self._set_capacity(doc, 0.0, paused=True)  # first: the monitor leaves a paused engine be
                node.stop()
        finally:
            for lock in taken:
                lock.release()
        for i in ids:
            self._event(i, "db-instance", "DB instance paused (0 ACUs) after its idle time", ["notification"])  # type: ignore[attr-defined]
        return True

    def _route_members(self, cid: str, ids: list[str]) -> None:
        """The endpoints of instances `ids` and of their cluster at each one's relay (paused) or
        engine, leaving the connections they carry be."""
        cluster = self._get_cluster(cid)  # type: ignore[attr-defined]  # clusters.py
        for i in ids:
            doc = self.store.get_doc("instance", i)
            if doc and doc.get("primary"):
                backend = [("127.0.0.1", self._backend_port(doc))]
                key = self.store.engine_key(i)
                self.fleet.router.set_route(f"instance-{key}", doc["port"], backend, cut=False)
        self._route_cluster(cluster, cut=False)  # type: ignore[attr-defined]  # clusters.py

    async def _wake(self, doc: dict) -> tuple[str, int]:
        """The relay's wake-up (its connections are served outside any account's scope): resume
        `doc` and the paused members of its pause group; the address of `doc`'s engine."""
        with self.store.acting_for(doc):
            current = self._get_instance(doc["id"])
            ids = [d["id"] for d in self._group(current)[1] if d.get("paused")]
            ids += [] if doc["id"] in ids else [doc["id"]]
            keys = {self.store.engine_key(i) for i in ids}
            added = keys - self._busy
            self._busy.update(added)
            try:
                await run_blocking(self._resume_group, ids)
                port = self._get_instance(doc["id"])["nodes"][current["primary"]]["port"]
            finally:
                self._busy.difference_update(added)
        return "127.0.0.1", port

    def _resume_group(self, ids: list[str]) -> None:
        """Resume the paused instances `ids` (the writer first), then point their endpoints at the
        engines and let the readers of the cluster stream from the writer again. Blocking."""
        resumed = [i for i in ids if self._resume_paused(i)]
        if not resumed:
            return
        state = self._serverless_state()
        cid = self._get_instance(resumed[0]).get("cluster")
        if cid:
            self._route_members(cid, resumed)
            self._refollow(cid)
        for i in resumed:  # new connections reach the engines now; held ones stay relayed
            relay = state["relays"].pop(self.store.engine_key(i), None)
            if relay is not None:
                state["draining"].add(relay)
                state["loop"].call_soon_threadsafe(relay.stop_listening)

    def _refollow(self, cid: str) -> None:
        """Running readers stream from the writer at its port now (a resumed engine may have
        moved; a MariaDB replica would otherwise retry only each minute)."""
        cluster = self._get_cluster(cid)  # type: ignore[attr-defined]  # clusters.py
        writer = self.store.get_doc("instance", cluster.get("writer") or "")
        if writer is None or writer.get("paused") or writer["status"] != "available":
            return
        for rid in cluster["members"]:
            r = self.store.get_doc("instance", rid)
            if rid == writer["id"] or not r or r.get("paused") or r["status"] != "available":
                continue
            try:
                with self.fleet.lock(rid):
                    self.fleet.primary(r).follow(self.fleet.primary(writer), rid)  # type: ignore[arg-type]  # same kind
            except Exception:  # noqa: BLE001 - it reconnects by itself, later
                log.warning("reader %s could not be pointed at its resumed writer", rid)

    def _resume_paused(self, ident: str) -> bool:
        """Start a paused instance's engine (its endpoints still at its relay); False when it was
        not paused. Blocking."""
        with self.fleet.lock(ident):
            doc = self._get_instance(ident)
            if not doc.get("paused"):
                return False
            t0 = clock.monotonic()
            # (a new port for the engine if another program took its own meanwhile)
            self.fleet.with_free_port(doc, doc["primary"], lambda n: n.start())
            self._save(doc, "nodes")
            self.fleet.keep_read_only(doc)
            key = self.store.engine_key(ident)
            self._serverless_state()["routed"].pop(key, None)
            floor = max(RUNNING_FLOOR, float(self._scaling_of(doc).get("MinCapacity", RUNNING_FLOOR)))
            self._set_capacity(doc, floor, paused=False)
            self._serverless_state()["idle_since"][key] = clock.time()
        log.info("resumed paused instance %s in %.2fs", ident, clock.monotonic() - t0)
        self._event(ident, "db-instance", "DB instance resumed", ["notification"])  # type: ignore[attr-defined]
        return True
