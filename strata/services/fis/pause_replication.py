"""aws:dynamodb:global-table-pause-replication: the target replicas of global tables neither send
nor receive replicated changes for the action's duration.

AWS does it by denying DynamoDB's replication role access to the table and its stream (a
resource policy statement that expires); writes made meanwhile wait in the streams and reach the
other replicas once the pause ends. Strata holds them the same way, behind the replicator's
cursors (dynamodb/replication.py `pause`), so nothing is lost and they are delivered after; no
resource policy is written (the pause is the replicator's, in memory, lifted by a restart).
"""

from __future__ import annotations

import asyncio
from typing import Any

from strata.services.fis.targets import call, internal_context


class NotGlobal(Exception):
    """A target is not a replica of a global table of the experiment's account and region."""


def replica_of(arn: str, region: str, account: str) -> tuple[str, str] | None:
    """The (scope, table name) a table ARN of this account and region names, or None."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[2] != "dynamodb" or parts[3] != region or parts[4] != account:
        return None
    kind, _, name = parts[5].partition("/")
    if kind != "table" or not name or "/" in name:
        return None
    return f"{account}:{region}", name


async def pause_tables(
    dynamodb: Any, arns: list[str], region: str, account: str, key: str, duration: float, ref: str
) -> None:
    """Pause replication to and from the tables `arns` name for `duration` seconds; the pause
    is lifted however the action ends. Raises NotGlobal before pausing anything if a target is
    not a global table's replica (DescribeTable's ResourceNotFoundException if it does not exist)."""
    replicas = set()
    for arn in arns:
        replica = replica_of(arn, region, account)
        if replica is None:
            raise NotGlobal(f"Table {arn} is not a table of account {account} in {region}.")
        ctx = internal_context("dynamodb", "DescribeTable", region, account, ref)
        table = (await call(dynamodb, "describe_table", ctx, {"TableName": replica[1]}))["Table"]
        if not table.get("Replicas"):
            raise NotGlobal(f"Table {arn} is not a global table: it has no replicas.")
        replicas.add(replica)
    dynamodb.replicator.pause(key, frozenset(replicas))
    try:
        await asyncio.sleep(duration)
    finally:  # rolled back however the action ends
        dynamodb.replicator.resume(key)
