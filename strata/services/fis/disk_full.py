"""Strata's own disk-full actions (strata:rds:disk-full, strata:elasticache:disk-full,
strata:efs:disk-full): the target's storage really runs out of space for the action's duration.

Only a resource whose files live on a volume of their own can be filled without filling everyone
else's: an encrypted one (StorageEncrypted, AtRestEncryptionEnabled, Encrypted), whose files are on
their own ext4 image (strata/storage/encrypted_volumes.py). The action allocates every free block
of that volume to a ballast file outside the resource's directory, and keeps taking what is freed
(an engine deleting a temporary file), so the engine itself gets ENOSPC and answers as it does on a
full disk. When the action ends, however it ends, the ballast goes; a Strata restart drains it too
(volumes are drained when they are opened). Targets that are not encrypted are refused when the
template names them by ARN (CreateExperimentTemplate, UpdateExperimentTemplate, StartExperiment)
and fail the action when found by tags.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.sim.clock import clock
from strata.storage.encrypted_volumes import EncryptedVolumes

log = logging.getLogger("strata.fis")

TOPUP_SECONDS = 0.5  # how soon space an engine frees is taken again
# fills run here, not in the loop's default executor: a cancelled action waits for its own fill
_pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="fis-disk-full")


@dataclass(frozen=True)
class DiskFull:
    service: str  # the provider's name (its encrypted_volume(ctx, ident) gives the volume)
    title: str  # the service's name in messages
    kind: str  # what a target is
    setting: str  # the create setting that gives a resource its own volume


ACTIONS: dict[str, DiskFull] = {
    "strata:rds:disk-full": DiskFull("rds", "RDS", "DB instance", "StorageEncrypted"),
    "strata:efs:disk-full": DiskFull("efs", "EFS", "file system", "Encrypted"),
}


def ident_of(arn: str) -> str:
    """The resource id at the end of an ARN (rds ...:db:ID, elasticache ...:replicationgroup:ID,
    elasticfilesystem ...:file-system/ID)."""
    return arn.rsplit(":", 1)[-1].rsplit("/", 1)[-1]


def not_encrypted(action_id: str, ident: str) -> ServiceError:
    spec = ACTIONS[action_id]
    return ServiceError(
        "ValidationException",
        f"The {spec.kind} {ident} is not encrypted: {action_id} fills the storage of an encrypted "
        f"{spec.kind} only (create it with {spec.setting} set to true).",
        400,
    )


def volumes_of(
    peer: Callable[[str], Any], ctx: RequestContext, action_id: str, arns: list[str]
) -> list[tuple[EncryptedVolumes, str]]:
    """The volume of each target in `ctx`'s account and region (the owning service's not-found
    error for a missing one; a ValidationException for one that is not encrypted)."""
    provider = peer(ACTIONS[action_id].service)
    if provider is None:
        raise ServiceError(
            "ValidationException", f"The {ACTIONS[action_id].title} service is not running.", 400
        )
    out = []
    for arn in arns:
        volume = provider.encrypted_volume(ctx, ident_of(arn))
        if volume is None:
            raise not_encrypted(action_id, ident_of(arn))
        out.append(volume)
    return out


def check_template(
    peer: Callable[[str], Any], ctx: RequestContext, targets: dict[str, dict], actions: dict[str, dict]
) -> None:
    """Refuse a template whose disk-full action names, by ARN, an existing target that is not
    encrypted (one that does not exist fails when the experiment runs, as every other action's)."""
    for action in actions.values():
        if action["actionId"] not in ACTIONS:
            continue
        for target in action.get("targets", {}).values():
            for arn in targets[target].get("resourceArns") or []:
                try:
                    volumes_of(peer, ctx, action["actionId"], [arn])
                except ServiceError as e:
                    if e.code == "ValidationException":
                        raise


async def hold(volumes: list[tuple[EncryptedVolumes, str]], key: str, duration: float) -> None:
    """Keep every volume full for `duration` seconds (ballast file `key`), then give the space
    back, also when cancelled: a fill still running in its thread is waited for first."""
    loop = asyncio.get_running_loop()
    pending: concurrent.futures.Future | None = None

    def fill_all() -> None:
        for vols, vol_id in volumes:
            if vols.exists(vol_id):  # a resource deleted meanwhile took its volume with it
                vols.fill(vol_id, key)

    deadline = clock.monotonic() + duration
    try:
        while True:
            pending = _pool.submit(fill_all)
            await asyncio.wrap_future(pending, loop=loop)
            left = deadline - clock.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(TOPUP_SECONDS, left))
    finally:
        if pending is not None:
            concurrent.futures.wait([pending])  # never drain before a fill in flight (< 1 s) is done
        for vols, vol_id in volumes:
            try:
                vols.drain(vol_id, key)
            except OSError:  # noqa: PERF203 - drain the others; the next start-up drains this one
                log.warning("could not drain the ballast of %s", vol_id, exc_info=True)
