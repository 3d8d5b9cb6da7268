"""Running an experiment in real time: targets resolved, actions started as their startAfter
actions complete, every fault rolled back when an action ends, fails or is stopped.

An experiment is one asyncio task; each state change is written to the metadata store before it
is visible, so GetExperiment after a restart tells what happened. Faults live only in memory
(strata.sim.faults) and die with the process, which is why start-up marks the experiments a
restart interrupted as failed; the one on disk, a disk-full action's ballast, is drained when
its volume is opened at start-up (disk_full.py).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import Any

from strata.config import Settings
from strata.engines.blackhole import Blackhole
from strata.engines.partition import Partition
from strata.protocol.errors import ServiceError
from strata.services.fis import disk_full
from strata.services.fis.authority import RoleDenied, check_role, check_trust
from strata.services.fis.catalog import duration_seconds
from strata.services.fis.network import (
    NetworkUnavailable,
    cut_service,
    cut_zones,
    prefix_list_blocks,
    subnets_of,
)
from strata.services.fis.pause_replication import NotGlobal, pause_tables
from strata.services.fis.stops import POLL_SECONDS, alarm_arns, alarms_fired
from strata.services.fis.targets import call, internal_context, resolve, zone_name
from strata.sim.clock import clock
from strata.sim.faults import ApiFault, api_faults, io_pauses
from strata.sim.meter import meter
from strata.storage.metadata import MetadataStore

log = logging.getLogger("strata.fis")

ACTIVE = ("pending", "initiating", "running", "stopping")
_FAULT_KINDS = {
    "aws:fis:inject-api-throttle-error": "throttle",
    "aws:fis:inject-api-internal-error": "internal",
    "aws:fis:inject-api-unavailable-error": "unavailable",
}


class ActionFailed(Exception):
    """An action could not be carried out; its message becomes the action's state reason, `code`
    the experiment's error code (AWS's: ConfigurationFailure, AuthorizationFailure, ...)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class Runner:
    def __init__(self, store: MetadataStore, peer: Callable[[str], Any], settings: Settings) -> None:
        self.store = store
        self.peer = peer
        self.settings = settings  # whose IAM directory judges the experiment role (authority.py)
        self.tasks: dict[str, asyncio.Task] = {}
        # The documents of running experiments: the one copy every change goes through.
        self.live: dict[str, dict] = {}
        self._stopping: dict[str, str] = {}  # experiment -> why it is being stopped
        exposed = settings.exposed_engines
        # endpoints cut off by network disruptions (on the engine address too)
        self.blackhole = Blackhole(exposed=exposed)
        self.partition = Partition()  # replication between engines of cut zones and the others

    def _save(self, doc: dict) -> None:
        self.store.put_doc("exp", doc["id"], doc)

    def _set(self, doc: dict, status: str, reason: str, error: str | None = None) -> None:
        """Record the experiment's state; `error` is AWS's failure code (AuthorizationFailure ...)."""
        doc["state"] = {"status": status, "reason": reason}
        if error is not None:
            doc["state"]["error"] = {"accountId": doc["account"], "code": error}
        self._save(doc)

    def launch(self, doc: dict) -> None:
        task = asyncio.get_running_loop().create_task(self._run(doc))
        self.tasks[doc["id"]] = task
        self.live[doc["id"]] = doc

        def done(_task: asyncio.Task) -> None:
            self.tasks.pop(doc["id"], None)
            self.live.pop(doc["id"], None)

        task.add_done_callback(done)

    def stop(self, doc: dict) -> None:
        """Ask a running experiment to stop: its task rolls every fault back and records it."""
        self._stop(self.live.get(doc["id"], doc), "Experiment stopped.")

    def _stop(self, doc: dict, reason: str) -> None:
        self._stopping[doc["id"]] = reason
        self._set(doc, "stopping", "Stopping the experiment.")
        task = self.tasks.get(doc["id"])
        if task is not None:
            task.cancel()

    async def shutdown(self) -> None:
        for task in list(self.tasks.values()):
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    def interrupted(self) -> None:
        """Experiments a restart cut short: failed, their actions stopped or cancelled (the faults
        they injected were in memory, so nothing is left to roll back)."""
        for doc in self.store.list_docs("exp"):
            if doc["state"]["status"] in ACTIVE:
                self._finish_actions(doc, "Strata restarted while the action ran.")
                doc["endTime"] = clock.time()
                self._set(
                    doc, "failed", "Strata restarted during the experiment; its faults were rolled back."
                )

    def _finish_actions(self, doc: dict, reason: str) -> None:
        now = clock.time()
        for action in doc["actions"].values():
            status = action["state"]["status"]
            if status in ("running", "initiating"):
                action["state"] = {"status": "stopped", "reason": reason}
                action["endTime"] = now
            elif status == "pending":
                action["state"] = {
                    "status": "cancelled",
                    "reason": "The experiment ended before the action started.",
                }

    async def _run(self, doc: dict) -> None:
        running: dict[str, asyncio.Task] = {}
        try:
            self._set(doc, "initiating", "Experiment is initiating.")
            try:
                check_trust(self.settings, doc["roleArn"], doc["region"], doc["account"], doc["arn"])
            except RoleDenied as e:
                raise ActionFailed(str(e), "AuthorizationFailure") from e
            resolved = {}
            for name, target in doc["targets"].items():
                ctx = internal_context("fis", "StartExperiment", doc["region"], doc["account"], doc["id"])
                arns = await resolve(self.peer, target, ctx)
                if not arns and doc["experimentOptions"]["emptyTargetResolutionMode"] == "fail":
                    raise ActionFailed(f"Target resolution failed: no resources found for target {name}.")
                resolved[name] = arns
            doc["resolved"] = resolved
            self._set(doc, "running", "Experiment is running.")
            if alarm_arns(doc["stopConditions"]):
                running["(stop conditions)"] = asyncio.get_running_loop().create_task(self._watch(doc))
            await self._schedule(doc, running)
            await _cancel_all(running)  # the stop condition watcher
            doc["endTime"] = clock.time()
            self._set(doc, "completed", "Experiment completed.")
        except asyncio.CancelledError:
            await _cancel_all(running)
            if doc["id"] not in self._stopping:
                raise  # Strata is shutting down: start-up records the experiment as interrupted
            reason = self._stopping.pop(doc["id"])
            self._finish_actions(doc, "Action stopped with the experiment.")
            doc["endTime"] = clock.time()
            self._set(doc, "stopped", reason)
        except (ActionFailed, ServiceError) as e:
            await _cancel_all(running)
            self._finish_actions(doc, "Action stopped: another action failed.")
            doc["endTime"] = clock.time()
            if isinstance(e, ServiceError):
                self._set(doc, "failed", e.message)
            else:
                self._set(doc, "failed", str(e), e.code)
        except Exception as e:  # noqa: BLE001 - an experiment never takes the server down
            log.exception("FIS experiment %s failed", doc["id"])
            await _cancel_all(running)
            self._finish_actions(doc, "Action stopped: the experiment failed.")
            doc["endTime"] = clock.time()
            self._set(doc, "failed", f"Experiment failed: {e}")

    async def _watch(self, doc: dict) -> None:
        """Stop the experiment when one of its stop condition alarms is, or was since the last poll,
        in the ALARM state."""
        arns = alarm_arns(doc["stopConditions"])
        since = clock.time()
        while True:
            now = clock.time()
            firing = await alarms_fired(self.peer, arns, doc["region"], doc["account"], since)
            since = now  # the next poll reads the history from this one on: no ALARM slips by
            if firing:
                self._stop(doc, f"Experiment stopped by the stop condition {firing[0]}.")
                task = self.tasks.get(doc["id"])
                if task is not None:
                    task.cancel()
                return
            await asyncio.sleep(POLL_SECONDS)

    async def _schedule(self, doc: dict, running: dict[str, asyncio.Task]) -> None:
        """Start each action once every action it starts after has completed (the stop condition
        watcher, when there is one, runs beside them and never completes)."""
        actions = doc["actions"]
        done: set[str] = set()
        while len(done) < len(actions):
            for name, action in actions.items():
                if name in done or name in running:
                    continue
                if all(p in done for p in action.get("startAfter", [])):
                    running[name] = asyncio.get_running_loop().create_task(self._action(doc, name))
            finished, _ = await asyncio.wait(running.values(), return_when=asyncio.FIRST_COMPLETED)
            for name in [n for n, t in running.items() if t in finished and n not in actions]:
                running.pop(name).result()  # the watcher ends only by failing or stopping us
            for name in [n for n, t in running.items() if t in finished]:
                task = running.pop(name)
                task.result()  # an action's failure fails the experiment
                done.add(name)

    async def _action(self, doc: dict, name: str) -> None:
        action = doc["actions"][name]
        if doc["experimentOptions"]["actionsMode"] == "skip-all":
            action["state"] = {
                "status": "skipped",
                "reason": "The experiment runs with actionsMode skip-all.",
            }
            self._save(doc)
            return
        if any(not doc["resolved"].get(t) for t in action.get("targets", {}).values()):
            action["state"] = {"status": "skipped", "reason": "The action's target resolved to no resources."}
            self._save(doc)
            return
        action["state"] = {"status": "running", "reason": "Action is running."}
        action["startTime"] = clock.time()
        self._save(doc)
        began = clock.monotonic()
        try:
            self._authorize(doc, action)
            await self._perform(doc, name, action)
        except (ActionFailed, ServiceError) as e:
            action["state"] = {
                "status": "failed",
                "reason": str(e.message if isinstance(e, ServiceError) else e),
            }
            action["endTime"] = clock.time()
            self._save(doc)
            raise
        finally:
            # AWS bills an action's active time, rounded to the nearest minute, however it ends.
            minutes = math.floor((clock.monotonic() - began) / 60 + 0.5)
            meter.record("fis", "ActionMinutes", minutes, "action-minute", experiment=doc["id"], action=name)
        action["state"] = {"status": "completed", "reason": "Action was completed."}
        action["endTime"] = clock.time()
        self._save(doc)

    def _authorize(self, doc: dict, action: dict) -> None:
        """The experiment's role must be allowed what the action does (authority.py)."""
        by_tags = any("resourceTags" in doc["targets"][t] for t in action.get("targets", {}).values())
        try:
            check_role(
                self.settings,
                doc["roleArn"],
                doc["region"],
                action["actionId"],
                self._targets(doc, action),
                by_tags,
            )
        except RoleDenied as e:
            raise ActionFailed(str(e), "AuthorizationFailure") from e

    def _targets(self, doc: dict, action: dict) -> list[str]:
        return [arn for t in action.get("targets", {}).values() for arn in doc["resolved"].get(t, [])]

    async def _perform(self, doc: dict, name: str, action: dict) -> None:
        action_id, params = action["actionId"], action.get("parameters", {})
        if action_id == "aws:fis:wait":
            await asyncio.sleep(duration_seconds(params["duration"]))
        elif action_id in _FAULT_KINDS:
            key = f"{doc['id']}/{name}"
            api_faults.add(
                key,
                ApiFault(
                    kind=_FAULT_KINDS[action_id],
                    service=params["service"],
                    operations=frozenset(o.strip() for o in params["operations"].split(",") if o.strip()),
                    percentage=int(params["percentage"]),
                    roles=frozenset(self._targets(doc, action)),
                ),
            )
            try:
                await asyncio.sleep(duration_seconds(params["duration"]))
            finally:
                api_faults.remove(key)  # rolled back however the action ends
        elif action_id == "aws:rds:reboot-db-instances":
            rds = self._rds()
            force = params.get("forceFailover", "false").lower() == "true"
            for arn in self._targets(doc, action):
                ctx = internal_context("rds", "RebootDBInstance", doc["region"], doc["account"], doc["id"])
                await rds.reboot_db_instance(
                    ctx, {"DBInstanceIdentifier": arn.rsplit(":", 1)[-1], "ForceFailover": force}
                )
        elif action_id == "aws:rds:failover-db-cluster":
            rds = self._rds()
            for arn in self._targets(doc, action):
                ctx = internal_context("rds", "FailoverDBCluster", doc["region"], doc["account"], doc["id"])
                await rds.failover_db_cluster(ctx, {"DBClusterIdentifier": arn.rsplit(":", 1)[-1]})
        elif action_id == "aws:elasticache:replicationgroup-interrupt-az-power":
            await self._interrupt_az_power(doc, action, duration_seconds(params["duration"]))
        elif action_id == "aws:dynamodb:global-table-pause-replication":
            try:
                await pause_tables(
                    self._service("dynamodb", "DynamoDB"),
                    self._targets(doc, action),
                    doc["region"],
                    doc["account"],
                    f"{doc['id']}/{name}",
                    duration_seconds(params["duration"]),
                    doc["id"],
                )
            except NotGlobal as e:
                raise ActionFailed(str(e)) from e
        elif action_id == "aws:ebs:pause-volume-io":
            await self._pause_volume_io(doc, name, action, duration_seconds(params["duration"]))
        elif action_id == "strata:rds:replica-lag":
            await self._replica_lag(
                doc, action, int(params["lagSeconds"]), duration_seconds(params["duration"])
            )
        elif action_id == "strata:elasticache:replica-lag":
            await self._cache_replica_lag(
                doc, action, int(params["lagSeconds"]), duration_seconds(params["duration"])
            )
        elif action_id == "aws:network:disrupt-connectivity":
            await self._disrupt_connectivity(doc, name, action, params)
        elif action_id in disk_full.ACTIONS:
            self._service(disk_full.ACTIONS[action_id].service, disk_full.ACTIONS[action_id].title)
            ctx = internal_context("fis", "StartExperiment", doc["region"], doc["account"], doc["id"])
            volumes = disk_full.volumes_of(self.peer, ctx, action_id, self._targets(doc, action))
            await disk_full.hold(volumes, f"{doc['id']}/{name}", duration_seconds(params["duration"]))

    async def _interrupt_az_power(self, doc: dict, action: dict, duration: float) -> None:
        """The nodes of the target groups in the target's zone lose power for `duration`; the
        ElastiCache monitor fails a primary among them over, as after any crash (az_power.py)."""
        cache = self._service("elasticache", "ElastiCache")
        zone = self._target_zone(doc, action)
        cut: list[tuple[str, list[str]]] = []
        try:
            for group_id in self._group_ids(doc, action):
                cut.append((group_id, await cache.interrupt_az_power(group_id, zone)))
            await asyncio.sleep(duration)
        finally:
            for group_id, members in cut:  # power returns however the action ends
                await cache.restore_az_power(group_id, members)

    def _group_ids(self, doc: dict, action: dict) -> list[str]:
        """The replication group ids of the action's targets (ARNs of the experiment's account)."""
        ids = []
        for arn in self._targets(doc, action):
            parts = arn.split(":")
            if len(parts) != 7 or parts[3:6] != [doc["region"], doc["account"], "replicationgroup"]:
                raise ActionFailed(f"Replication group {arn} not found.")
            ids.append(parts[6])
        return ids

    def _target_zone(self, doc: dict, action: dict) -> str:
        target = doc["targets"][action["targets"]["ReplicationGroups"]]
        identifier = target["parameters"]["availabilityZoneIdentifier"]
        zone = zone_name(doc["account"], doc["region"], identifier)
        if zone is None:
            raise ActionFailed(f"Invalid availabilityZoneIdentifier: {identifier}")
        return zone

    async def _cache_replica_lag(self, doc: dict, action: dict, lag: int, duration: float) -> None:
        """The target groups' replicas in the target's zone get their primary's stream `lag`
        seconds late for `duration` (elasticache/replica_lag.py)."""
        cache = self._service("elasticache", "ElastiCache")
        zone = self._target_zone(doc, action)
        held: list[str] = []
        try:
            for group_id in self._group_ids(doc, action):
                held.append(group_id)
                await cache.set_replica_lag(group_id, lag, zone)
            await asyncio.sleep(duration)
        finally:  # rolled back however the action ends
            for group_id in held:
                try:
                    await cache.set_replica_lag(group_id, 0)
                except Exception:  # noqa: BLE001 - lift the others
                    log.warning("could not lift the replica lag of %s", group_id, exc_info=True)

    async def _pause_volume_io(self, doc: dict, name: str, action: dict, duration: float) -> None:
        """Every request on the target volumes' NBD data path waits for `duration`."""
        ec2 = self._service("ec2", "EC2")
        ids = [arn.rsplit("/", 1)[-1] for arn in self._targets(doc, action)]
        ctx = internal_context("ec2", "DescribeVolumes", doc["region"], doc["account"], doc["id"])
        await call(ec2, "describe_volumes", ctx, {"VolumeIds": ids})  # the account's own, or NotFound
        key = f"{doc['id']}/{name}"
        io_pauses.pause(key, frozenset(ids))
        try:
            await asyncio.sleep(duration)
        finally:
            io_pauses.resume(key)  # rolled back however the action ends

    async def _disrupt_connectivity(self, doc: dict, name: str, action: dict, params: dict) -> None:
        """aws:network:disrupt-connectivity on the target subnets, by scope (network.py)."""
        ids = [arn.rsplit("/", 1)[-1] for arn in self._targets(doc, action)]
        self._service("ec2", "EC2")
        subnets = await subnets_of(self.peer, doc, ids)  # the account's own, or NotFound
        key, duration = f"{doc['id']}/{name}", duration_seconds(params["duration"])
        scope = params.get("scope", "all")
        if scope in ("dynamodb", "s3"):
            await cut_service(key, scope, duration)
            return
        zones = sorted({s["AvailabilityZone"] for s in subnets})
        try:
            sources = None
            if scope == "prefix-list":
                sources = await prefix_list_blocks(self.peer, doc, params["prefixListIdentifier"])
            partition = self.partition if scope in ("all", "availability-zone") else None
            await cut_zones(
                self.peer, self.blackhole, doc, key, zones, duration, scope == "all", sources, partition
            )
        except NetworkUnavailable as e:
            raise ActionFailed(str(e)) from e

    async def _replica_lag(self, doc: dict, action: dict, lag: int, duration: float) -> None:
        """The target replicas' engines apply each commit `lag` seconds late for `duration`."""
        rds = self._rds()
        held: list[str] = []
        try:
            for arn in self._targets(doc, action):
                ident = arn.rsplit(":", 1)[-1]
                await rds.set_replica_lag(ident, lag)
                held.append(ident)
            await asyncio.sleep(duration)
        finally:  # rolled back however the action ends
            for ident in held:
                try:
                    await rds.set_replica_lag(ident, 0)
                except Exception:  # noqa: BLE001 - e.g. deleted meanwhile: lift the others
                    log.warning("could not lift the replica lag of %s", ident, exc_info=True)

    def _rds(self) -> Any:
        return self._service("rds", "RDS")

    def _service(self, name: str, title: str) -> Any:
        provider = self.peer(name)
        if provider is None:
            raise ActionFailed(f"The {title} service is not running.")
        return provider


async def _cancel_all(tasks: dict[str, asyncio.Task]) -> None:
    for task in tasks.values():
        task.cancel()
    await asyncio.gather(*tasks.values(), return_exceptions=True)
