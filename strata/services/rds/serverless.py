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

MinCapacity 0 (with SecondsUntilAutoPause, 300-86400 s, default 300): after that long (simulated
time) without user connections, the instance pauses — its endpoints are pointed at a WakeRelay,
its engine stops, its capacity (and metering) is 0 ACUs. The first connection to the instance's
or cluster's endpoint is held by the relay while the engine starts, then passed through; the
endpoints point at the engine again. Background work on a paused instance (reboot, snapshot,
a new reader, deletion...) resumes it first, as AWS does for administrative operations.
Simplifications: only an Aurora writer pauses; a writer with readers never does (their
replication connections count, as AWS pauses a writer only with its tier 0-1 readers); a paused
instance is resumed when Strata restarts.
"""

from __future__ import annotations

import asyncio
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


class ServerlessOperations(RDSCore):
    """The capacity supervisor, auto-pause and resume (see the module docstring)."""

    def _serverless_state(self) -> dict:
        """relays: engine key -> the WakeRelay of a paused instance; draining: relays of resumed
        instances still passing connections on; idle_since: engine key -> simulated time a user
        connection was last seen."""
        if not hasattr(self, "_sls"):
            self._sls = {
                "relays": {},
                "draining": set(),
                "idle_since": {},
                "sampler": LoadSampler(),
                "loop": None,
            }
        return self._sls

    def _scaling_of(self, doc: dict) -> dict:
        cluster = self.store.get_doc("cluster", doc["cluster"]) if doc.get("cluster") else None
        return (cluster or {}).get("serverless_v2") or {}

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
        first; under the instance's lock, so it cannot pause between the check and the work."""
        with self.fleet.lock(ident):
            for target in self._paused_for(ident):
                self._resume_paused(target)
            return super()._locked(ident, fn, *args)

    def _paused_for(self, ident: str) -> list[str]:
        cid = ident.split(":", 1)[1] if ident.startswith("cluster:") else None
        doc = None if cid else self.store.get_doc("instance", ident)
        if doc is not None:
            cid = doc.get("cluster")
        cluster = self.store.get_doc("cluster", cid) if cid else None
        wanted = {d for d in ((doc or {}).get("id"), (cluster or {}).get("writer")) if d}
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
            with self.store.acting_for(d):  # paused, but its cluster's MinCapacity is no longer 0
                if self._scaling_of(d).get("MinCapacity") != 0 and not self._is_busy(d["id"]):
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
        carried = {p for r in [*state["relays"].values(), *state["draining"]] for p in r.upstream_ports}

        def sample() -> dict[str, tuple[float | None, int]]:
            now = clock.monotonic()
            counts = connections_by_port({n.port for _, n in nodes.values()}, carried)
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
                await self._apply_load(doc, key, cpu, connections)

    async def _apply_load(self, doc: dict, key: str, cpu: float | None, connections: int) -> None:
        config = self._scaling_of(doc)
        lo = float(config.get("MinCapacity", RUNNING_FLOOR))
        hi = float(config.get("MaxCapacity", MAX_ACU))
        current = held_capacity(doc, config)
        if cpu is not None:
            new = next_capacity(current, cpu, connections, lo, hi)
            if new != current:
                self._set_capacity(doc, new)
        idle = self._serverless_state()["idle_since"]
        now = clock.time()
        if connections or key not in idle:
            idle[key] = now
        if lo == 0 and self._may_pause(doc) and now - idle[key] >= float(config["SecondsUntilAutoPause"]):
            idle.pop(key, None)
            await self._pause(doc["id"])

    def _set_capacity(self, doc: dict, acu: float, **fields: object) -> dict:
        """Meter the capacity held so far (from the record as stored: the scheduler may have
        metered since `doc` was read), then hold `acu`."""
        current = self.store.get_doc("instance", doc["id"]) or doc
        self._meter_instance(current)  # type: ignore[attr-defined]  # instances.py
        current.update(acu=acu, **fields)
        doc.update(acu=acu, **fields)
        return self._save(current, "acu", "metered_at", *fields)

    def _may_pause(self, doc: dict) -> bool:
        cluster = self.store.get_doc("cluster", doc["cluster"]) if doc.get("cluster") else None
        return (
            cluster is not None and cluster.get("writer") == doc["id"] and cluster["members"] == [doc["id"]]
        )

    # -- pause and resume --------------------------------------------------------------------------

    async def _pause(self, ident: str) -> None:
        state = self._serverless_state()
        key = self.store.engine_key(ident)
        doc = self._get_instance(ident)
        relay = WakeRelay(lambda: self._wake(doc))
        port = await relay.start()
        self._busy.add(key)  # the monitor and the scheduler leave it alone meanwhile
        try:
            paused = await run_blocking(self._pause_blocking, ident, port)
        finally:
            self._busy.discard(key)
        if paused:
            state["relays"][key] = relay
        else:  # a connection it took meanwhile goes on to the engine, still running
            relay.stop_listening()
            state["draining"].add(relay)

    def _pause_blocking(self, ident: str, relay_port: int) -> bool:
        with self.fleet.lock(ident):
            doc = self._get_instance(ident)
            if doc["status"] != "available" or doc.get("paused") or not self._may_pause(doc):
                return False
            node = self.fleet.primary(doc)
            self._point_endpoints(doc, relay_port)
            # a connection that reached the engine before the endpoints moved keeps it running
            if connections_by_port({node.port}).get(node.port):
                self._point_endpoints(doc, None)
                return False
            try:
                if doc["kind"] == "postgres":
                    node.switch_wal()  # the cluster's archive then holds everything up to the pause
            except Exception:  # noqa: BLE001 - pausing must not fail because of the archive
                log.warning("could not switch WAL before pausing %s", ident)
            self._set_capacity(doc, 0.0, paused=True)  # first: the monitor leaves a paused engine be
            node.stop()
        self._event(ident, "db-instance", "DB instance paused (0 ACUs) after its idle time", ["notification"])  # type: ignore[attr-defined]
        return True

    def _point_endpoints(self, doc: dict, relay_port: int | None) -> None:
        """The instance's endpoint and its cluster's (writer, and reader: it has no readers) at
        the relay, or (None) back at the engine, leaving the relay's connections be."""
        cluster = self._get_cluster(doc["cluster"])  # type: ignore[attr-defined]  # clusters.py
        port = relay_port or doc["nodes"][doc["primary"]]["port"]
        backend = [("127.0.0.1", port)]
        name = self.store.engine_key(cluster["id"])
        router = self.fleet.router
        router.set_route(f"instance-{self.store.engine_key(doc['id'])}", doc["port"], backend, cut=False)
        router.set_route(f"cluster-{name}", cluster["port"], backend, cut=False)
        router.set_route(
            f"cluster-ro-{name}", cluster["port"], backend, balance=True, host=m.READER_HOST, cut=False
        )

    async def _wake(self, doc: dict) -> tuple[str, int]:
        """The relay's wake-up (its connections are served outside any account's scope): resume
        the engine of `doc`; its address."""
        with self.store.acting_for(doc):
            key = self.store.engine_key(doc["id"])
            self._busy.add(key)
            try:
                port = await run_blocking(self._resume_paused, doc["id"])
            finally:
                self._busy.discard(key)
        return "127.0.0.1", port

    def _resume_paused(self, ident: str) -> int:
        """Start a paused instance's engine and point its endpoints at it; its engine port.
        Blocking; a no-op for an instance that is not paused."""
        with self.fleet.lock(ident):
            doc = self._get_instance(ident)
            node = self.fleet.primary(doc)
            if not doc.get("paused"):
                return node.port
            t0 = clock.monotonic()
            # (a new port for the engine if another program took its own meanwhile)
            node = self.fleet.with_free_port(doc, doc["primary"], lambda n: n.start())
            self._save(doc, "nodes")
            self._point_endpoints(doc, None)
            floor = max(RUNNING_FLOOR, float(self._scaling_of(doc).get("MinCapacity", RUNNING_FLOOR)))
            self._set_capacity(doc, floor, paused=False)
            self._serverless_state()["idle_since"][self.store.engine_key(ident)] = clock.time()
            relay = self._serverless_state()["relays"].pop(self.store.engine_key(ident), None)
        if relay is not None:  # new connections reach the engine now; held ones stay relayed
            self._serverless_state()["draining"].add(relay)
            self._serverless_state()["loop"].call_soon_threadsafe(relay.stop_listening)
        log.info("resumed paused instance %s in %.2fs", ident, clock.monotonic() - t0)
        self._event(ident, "db-instance", "DB instance resumed", ["notification"])  # type: ignore[attr-defined]
        return node.port
