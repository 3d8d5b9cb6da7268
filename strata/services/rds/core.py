"""State and helpers shared by the RDS topic modules: records, engine fleet, background work.

`RDSCore` is the base of every `*Operations` class; provider.py composes them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

from strata.engines.ports import PortAllocator
from strata.engines.postgres import pg_version, pg_versions
from strata.protocol.errors import ServiceError
from strata.services.base import ServiceRuntime, run_blocking
from strata.services.owned_docs import OwnedDocs
from strata.services.rds import model as m
from strata.services.rds import security
from strata.services.rds.fleet import Fleet
from strata.sim import timings
from strata.sim.clock import clock
from strata.sim.scheduler import scheduler
from strata.storage.shared import open_store

if TYPE_CHECKING:
    from strata.services.ec2.network import Network

log = logging.getLogger("strata.rds")
# Real-time runs each 30 simulated minutes: AWS backup windows are at least 30 minutes long,
# so every window contains one of these instants.
BACKUP_RULE_EVERY = 1800.0
# and every 30 simulated minutes for the maintenance windows, at least 30 minutes long
MAINTENANCE_RULE_EVERY = 1800.0

_TAKEN = {
    "instance": "DBInstanceAlreadyExists",
    "cluster": "DBClusterAlreadyExistsFault",
    "snapshot": "DBSnapshotAlreadyExists",
    "cluster_snapshot": "DBClusterSnapshotAlreadyExistsFault",
    "global_cluster": "GlobalClusterAlreadyExistsFault",
}


_CLUSTER_WORK = {"stopping": "stop", "starting": "start", "rebooting": "reboot"}


def _taken(kind: str, ident: str) -> ServiceError:
    """Another account held this identifier before identifiers were per account (see owned_docs)."""
    return m.fault(_TAKEN.get(kind, "InvalidParameterValue"), f"{ident} already exists.")


class RDSCore:
    """State and helpers shared by the RDS operation classes: the record store, the engine fleet,
    background tasks per instance, the monitor, metering and the `rds.backups` rule."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        # In this gateway's SQLite even with --metadata: its engines run here (storage.shared).
        self.store = OwnedDocs(
            open_store(runtime.data_dir / "rds.db", "rds", url=None, fsync=runtime.settings.fsync),
            default_account=runtime.settings.account_id,
            default_region=runtime.settings.region,
            per_account=frozenset(
                {
                    "param_group",
                    "cluster_param_group",
                    "subnet_group",
                    "instance",
                    "cluster",
                    "snapshot",
                    "cluster_snapshot",
                    "cluster_endpoint",
                    "option_group",
                    "global_cluster",  # kept in the default region's scope (global_clusters.py)
                }
            ),
            taken=_taken,
        )
        self.fleet = Fleet(
            runtime.data_dir,
            PortAllocator.for_settings(runtime.settings),
            key=self.store.engine_key,
            exposed=runtime.settings.exposed_engines,
        )
        self._tasks: set[asyncio.Task] = set()
        self._scheduler_wakeup = False
        self._backup_retry: set[str] = set()  # instances whose due backup waits for their work to end
        self._busy: set[str] = set()
        self._loops: list[asyncio.Task] = []
        self._versions: dict[str, list[str]] = {}
        # engine keys of instances ("cluster:<key>" for clusters) whose encrypted volume is being
        # made: their records are saved only after that, and a second create of the name must fail
        self._encrypting: set[str] = set()

    @property
    def account(self) -> str:
        """The account whose resources this request sees (ARNs carry it); the default outside one."""
        return self.store.caller() or self.settings.account_id

    @property
    def region(self) -> str:
        """The region whose resources this request sees (ARNs and zones carry it)."""
        return self.store.region()

    # -- server life -------------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await run_blocking(self.fleet.router.start)
        except Exception:  # noqa: BLE001 - the rest of Strata must serve even if endpoints cannot
            log.exception("RDS endpoints could not be started; instance endpoints will not answer")
        given = await run_blocking(security.guard_old_records, self, m.READER_HOST)
        if given:
            log.info(
                "RDS: %d clusters and instances recorded without security groups now carry defaults", given
            )
        for doc in self.store.list_docs("instance"):
            if doc["status"] in ("stopped", "deleting", "failed", "incompatible-restore"):
                continue
            with self.store.acting_for(doc):
                if doc["status"] == "available":  # until its engines accept connections again
                    self._set_status(doc["id"], "rebooting")
                self._spawn(doc["id"], self._resume, doc["id"])
        self._loops.append(asyncio.create_task(self._monitor()))
        self._loops.append(asyncio.create_task(self._scheduler()))
        clock.on_advance(lambda _now: self._poke_scheduler())
        # the rule is a method of an operation class (backups.py `_backup_rule`, like `_run_schedule`
        # below), found on the composed provider
        scheduler.register("rds.backups", self._backup_rule, every=BACKUP_RULE_EVERY)
        scheduler.register("rds.logs", self._log_rule, every=3600)  # logs.py: hourly log files
        # modify_instance.py: modifications held for the maintenance window
        scheduler.register("rds.maintenance", self._maintenance_rule, every=MAINTENANCE_RULE_EVERY)

    async def stop(self) -> None:
        scheduler.unregister("rds.backups")
        scheduler.unregister("rds.logs")
        scheduler.unregister("rds.maintenance")
        for t in self._loops:
            t.cancel()
        for t in list(self._tasks):
            t.cancel()
        docs = self.store.list_docs("instance")

        def stop_all() -> None:
            for doc in docs:
                for name in list(doc.get("nodes", {})):
                    try:
                        with self.store.acting_for(doc):
                            self.fleet.node(doc, name).stop()
                    except Exception:  # noqa: BLE001 - stop every engine regardless
                        log.exception("stopping %s/%s failed", doc["id"], name)
            self.fleet.router.stop()

        await run_blocking(stop_all)

    def health(self) -> str:
        return "running"

    async def set_replica_lag(self, ident: str, seconds: float) -> None:
        """Hold a read replica's (or Aurora reader's) apply `seconds` behind its source with the
        engine's own delay (PostgreSQL recovery_min_apply_delay, MariaDB MASTER_DELAY); 0 lifts it.
        For FIS's strata:rds:replica-lag; a restart of the replica lifts it too."""
        doc = self._get_instance(ident)
        node = self.fleet.primary(doc)

        def apply() -> None:
            if not node.in_recovery():
                raise m.fault("InvalidDBInstanceState", f"DB instance {doc['id']} is not a read replica.")
            node.set_apply_delay(seconds)

        await run_blocking(apply)

    def endpoints_in_zone(self, account: str, region: str, zone: str) -> list[tuple[str, int]]:
        """The endpoints (address, port) served from Availability Zone `zone` right now, for FIS's
        network disruption: an instance's endpoint where its primary node runs there, an Aurora
        cluster's writer endpoint where its writer does (the reader endpoint spreads over several
        zones and stays). Called inside the experiment's account and region."""
        out = []
        writers = set()
        for doc in self.store.list_docs("instance"):
            primary = (doc.get("nodes") or {}).get(doc.get("primary") or "")
            if primary is not None and primary["az"] == zone:
                out.append(("127.0.0.1", doc["port"]))
                writers.add(doc["id"])
        for c in self.store.list_docs("cluster"):
            if c.get("writer") in writers:
                out.append(("127.0.0.1", c["port"]))
        return out

    # -- background work ---------------------------------------------------------------------------

    def _spawn(self, ident: str, fn, *args) -> None:  # noqa: ANN001
        """Run blocking `fn(*args)` for one resource in the background, one task at a time per id
        (per account: the task runs in the scope of the request or `acting_for` that spawned it)."""
        busy = self.store.engine_key(ident)

        async def run() -> None:
            try:
                await run_blocking(self._locked, ident, fn, *args)
            except Exception as e:  # noqa: BLE001 - recorded on the resource, visible to the user
                log.exception("rds background work for %s failed", ident)
                self._fail(ident, str(e))
            finally:
                self._busy.discard(busy)
                self._poke_scheduler()  # work skipped while this ran (a due backup) runs now

        self._busy.add(busy)
        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _hold_creation(self, doc: dict) -> None:
        """Under `--timings aws`, stay `creating` until the profile's creation time has passed since
        the request (strata.sim.timings); the engines' own work counts towards it."""
        hold = timings.seconds(self.settings, "rds_instance_create")
        if hold:
            timings.wait_since(dt.datetime.fromisoformat(doc["created"]).timestamp(), hold)

    def _is_busy(self, ident: str) -> bool:
        """Has `ident` (of the account being served) background work running?"""
        return self.store.engine_key(ident) in self._busy

    def _locked(self, ident: str, fn, *args):  # noqa: ANN001, ANN202
        with self.fleet.lock(ident):
            return fn(*args)

    def _locked_idle(self, ident: str, fn, *args):  # noqa: ANN001, ANN202
        """As `_locked`, for work that needs no running engine: a paused Serverless v2 instance
        stays paused (`_locked` resumes it, serverless.py)."""
        with self.fleet.lock(ident):
            return fn(*args)

    def _fail(self, ident: str, message: str) -> None:
        if ident.startswith("cluster:"):
            cluster = self.store.get_doc("cluster", ident.split(":", 1)[1])
            if cluster:
                # the failover (stop, start, reboot: cluster_stop.py) did not happen or not all of it
                what = _CLUSTER_WORK.get(cluster["status"], "failover")
                cluster["status"] = "stopped" if what == "start" else "available"
                self.store.put_doc("cluster", cluster["id"], cluster)
                self._event(
                    cluster["id"], "db-cluster", f"Cluster {what} failed: {message[:300]}", ["failure"]
                )
            return
        doc = self.store.get_doc("instance", ident)
        if doc is not None:
            # AWS's storage-full when the engine cannot run on a full disk: the monitor restarts
            # it once there is space again (FIS's strata:rds:disk-full ended)
            full = self._out_of_storage(doc)
            doc["status"] = "storage-full" if full else "failed"
            if not full:
                doc["failure"] = message[:2000]
            self.store.put_doc("instance", ident, doc)
            said = "has reached its storage capacity." if full else f"failed: {message[:300]}"
            self._event(ident, "db-instance", f"DB instance {said}", ["failure"])

    def _out_of_storage(self, doc: dict) -> bool:
        """Is the instance's own (encrypted) volume held full (FIS's strata:rds:disk-full)? Only
        such a volume can fill up; what an engine frees meanwhile is taken again at once."""
        return bool(doc.get("dek")) and self.fleet.volumes.filled(self.fleet.volume_id(doc["id"]))

    # -- records -----------------------------------------------------------------------------------

    def _get_instance(self, ident: str | None) -> dict:
        if not ident:
            raise m.fault("InvalidParameterValue", "DBInstanceIdentifier is required.")
        ident = ident.split(":")[-1].lower()
        doc = self.store.get_doc("instance", ident)
        if doc is None:
            raise m.not_found_instance(ident)
        return doc

    def _save(self, doc: dict, *runtime_keys: str) -> dict:
        """Write a record. With `runtime_keys`, only those keys overwrite the stored record, so
        background work never undoes a concurrent API change (tags, settings) made meanwhile."""
        if runtime_keys:
            current = self.store.get_doc("instance", doc["id"])
            if current is None:
                return doc
            for k in runtime_keys:
                if k in doc:
                    current[k] = doc[k]
            doc = current
        self.store.put_doc("instance", doc["id"], doc)
        return doc

    def _set_status(self, ident: str, status: str, **fields: object) -> dict | None:
        doc = self.store.get_doc("instance", ident)
        if doc is None:
            return None
        doc["status"] = status
        doc.update(fields)
        self.store.put_doc("instance", ident, doc)
        return doc

    def _by_promotion_tier(self, readers: Iterable[str]) -> list[str]:
        """Readers in the order Aurora promotes them: the lowest PromotionTier first (the order
        they joined within a tier; AWS then prefers the largest, and all are alike here)."""
        return sorted(
            readers, key=lambda i: (self.store.get_doc("instance", i) or {}).get("promotion_tier", 1)
        )

    def _backend_port(self, doc: dict) -> int:
        """Where an instance's endpoints send connections: its primary engine (serverless.py
        sends those of a paused instance to the relay that resumes it)."""
        return doc["nodes"][doc["primary"]]["port"]

    def _engine_versions(self, kind: str) -> list[str]:
        """The installed versions of an engine's server, the default (for no EngineVersion) first."""
        if kind not in self._versions:
            if kind == "postgres":
                default = pg_version()
                self._versions[kind] = [default, *(v for v in pg_versions() if v != default)]
            else:
                from strata.engines.mariadb import mariadb_version

                self._versions[kind] = [mariadb_version()]
        return self._versions[kind]

    def _engine_version(self, kind: str) -> str:
        return self._engine_versions(kind)[0]

    def _versions_of(self, engine: str) -> list[str]:
        """The versions Strata serves of `engine`, the default first: its server's installed ones,
        or, for mysql and aurora-mysql, AWS's (all run by the installed MariaDB)."""
        if engine in m.AWS_VERSIONS:
            return list(m.AWS_VERSIONS[engine])
        return self._engine_versions(m.ENGINES[engine].kind)

    def _pick_version(self, info: m.EngineInfo, requested: str | None) -> str:
        return m.check_engine_version(requested, self._versions_of(info.name), info.name)

    def _same_version(self, req: dict, version: str, engine: str) -> dict:
        """`req` for a resource made from one running `version` (a restore, a cluster member, a
        modification): an EngineVersion it names must be that version, since Strata does not
        upgrade engines; the major is passed on so the new resource runs the same server."""
        requested = req.get("EngineVersion")
        installed = self._versions_of(engine)
        if requested and not m.version_matches(requested, version):
            if any(m.version_matches(requested, v) for v in installed):
                raise m.fault(
                    "InvalidParameterCombination",
                    f"Cannot change the engine version from {version} to {requested}: "
                    "Strata does not upgrade DB engines.",
                )
            m.check_engine_version(requested, installed, engine)
        if m.ENGINES[engine].kind == "postgres":
            return {**req, "EngineVersion": version.split(".")[0]}
        # MariaDB runs them all: the same version, or (a mysql resource of an earlier Strata, which
        # carries MariaDB's version) the default
        return {**req, "EngineVersion": version if version in installed else None}

    def _azs(self) -> list[str]:
        return [f"{self.region}{c}" for c in "abcdef"]

    # -- DB subnet groups and EC2's subnets (the operations: groups.py) --------------------------

    def _get_subnet_group(self, name: str) -> dict:
        g = self.store.get_doc("subnet_group", name.lower())
        if g is None:
            if name == "default":
                return {"name": "default", "description": "default", "subnets": [], "tags": {}}
            raise m.fault("DBSubnetGroupNotFoundFault", f"DB subnet group {name} not found.", 404)
        return g

    def _network(self) -> Network | None:
        return getattr(self.runtime.peer("ec2"), "network", None)

    def _subnets_of(self, group_name: str | None) -> list[dict]:
        """The EC2 subnets of a DB subnet group (none: the default group, or a group recorded
        before its subnets were checked, whose ids name no subnet)."""
        net = self._network()
        if not group_name or net is None:
            return []
        ids = self._get_subnet_group(group_name)["subnets"]
        return [s for s in (net.subnet(self.account, self.region, i) for i in ids) if s]

    def _subnet_group_vpc(self, group_name: str | None) -> str | None:
        """The VPC of the DB subnet group (None: the default VPC)."""
        subnets = self._subnets_of(group_name)
        return subnets[0]["vpc"] if subnets else None

    def _instance_zone(self, requested: str | None, inherited: str | None, subnet_group: str | None) -> str:
        """A new instance's zone: the requested one, which its DB subnet group must cover; else the
        zone it inherits (a restore's source) when the group covers it; else the group's first."""
        zones = sorted({s["az"] for s in self._subnets_of(subnet_group)}) or self._azs()
        if requested and requested not in self._azs():
            raise m.fault("InvalidParameterValue", f"Invalid availability zone: {requested}")
        if requested and requested not in zones:
            raise m.fault(
                "InvalidParameterCombination",
                f"The DB subnet group {subnet_group} has no subnet in availability zone {requested}.",
            )
        if requested:
            return requested
        return inherited if inherited and inherited in zones else zones[0]

    def _other_az(self, az: str, subnet_group: str | None = None) -> str:
        """A Multi-AZ standby's zone: another zone of the instance's DB subnet group."""
        zones = sorted({s["az"] for s in self._subnets_of(subnet_group)}) or self._azs()
        return next(a for a in zones if a != az)

    def _resource_id(self, prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:26].upper()}"

    @staticmethod
    def _require(req: dict, *names: str) -> None:
        for n in names:
            if req.get(n) in (None, ""):
                raise ServiceError("MissingParameter", f"The request must contain the parameter {n}", 400)

    # -- periodic work -----------------------------------------------------------------------------

    async def _monitor(self) -> None:
        """Every second: restart crashed engines (a Multi-AZ standby too; a storage-full one once its
        volume has space again), or fail over to the standby."""
        while True:
            await asyncio.sleep(1.0)
            try:
                for doc in self.store.list_docs("instance"):
                    with self.store.acting_for(doc):
                        if doc["status"] == "storage-full" and not self._is_busy(doc["id"]):
                            if self._out_of_storage(doc):
                                continue
                            doc = self._set_status(doc["id"], "available") or doc  # its engine restarts
                        if doc["status"] != "available" or self._is_busy(doc["id"]) or doc.get("paused"):
                            continue
                        if not self.fleet.primary(doc).running():
                            self._spawn(doc["id"], self._recover_crash, doc["id"])
                        elif (standby := self.fleet.standby_name(doc)) and not self.fleet.node(
                            doc, standby
                        ).running():
                            # commits wait for the standby: without it they would wait for ever
                            self._spawn(doc["id"], self._recover_standby, doc["id"])
            except Exception:  # noqa: BLE001 - the monitor must keep running
                log.exception("rds monitor")

    async def _log_rule(self, since: float, until: float) -> dict[str, int]:
        """The `rds.logs` rule; logs.py's LogOperations does the work."""
        return {}

    async def _maintenance_rule(self, since: float, until: float) -> dict[str, int]:
        """The `rds.maintenance` rule; modify_instance.py's ModifyInstanceOperations does the work."""
        return {}

    def _poke_scheduler(self) -> None:
        self._scheduler_wakeup = True

    async def _scheduler(self) -> None:
        """Metering, and the backups put off while an instance was busy, every 30 s and when the
        clock moves or background work ends; backups themselves are the scheduler's
        `rds.backups` rule (strata.sim.scheduler)."""
        elapsed = 0.0
        while True:
            await asyncio.sleep(0.5)
            elapsed += 0.5
            if not self._scheduler_wakeup and elapsed < 30:
                continue
            self._scheduler_wakeup, elapsed = False, 0.0
            try:
                self._run_schedule()
            except Exception:  # noqa: BLE001
                log.exception("rds scheduler")
