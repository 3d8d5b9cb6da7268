"""DynamoDB's control-plane limits, as its API reference and quotas page document them.

- Tables per account and region: 2,500 (a soft quota). CreateTable, restores and imports past it
  get LimitExceededException ("There is a limit of 2500 tables per subscriber").
- Simultaneous table operations per account and region: 500 tables CREATING, UPDATING or
  DELETING at once ("CreateTable, UpdateTable, DeleteTable, UpdateTimeToLive,
  RestoreTableFromBackup, and RestoreTableToPointInTime"). One more such request gets
  LimitExceededException ("Only 500 tables can be created, updated, or deleted simultaneously").
- Request rates of the calls documented as rate-limited: DescribeLimits once a minute ("You can
  expect throttling errors if you call it more than once in a minute"), DescribeContributorInsights
  five a second. Past them: ThrottlingException "Rate exceeded", which every SDK retries.

The rates are buckets on the simulated clock per account/region and operation, enforced with the
data plane's throttling (`STRATA_DYNAMODB_THROTTLING=off` turns them off); the two quotas are
limits (STRATA_LIMIT_DYNAMODB_TABLES, STRATA_LIMIT_DYNAMODB_SIMULTANEOUS_TABLE_OPERATIONS). Only
control-plane operations ever look at any of this: the item path does not.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from strata.protocol.errors import ServiceError
from strata.services.dynamodb.errors import limit_exceeded
from strata.services.dynamodb.provisioning import status
from strata.services.dynamodb.tables import TableMeta
from strata.services.dynamodb.throttle import Bucket

# Requests per second and the burst a bucket holds (in requests), per rate-limited operation.
RATES: dict[str, tuple[float, float]] = {
    "DescribeLimits": (1 / 60.0, 1.0),
    "DescribeContributorInsights": (5.0, 5.0),
}


@dataclass(frozen=True)
class ControlLimits:
    tables: int = 2500
    simultaneous: int = 500


def rate_exceeded() -> ServiceError:
    return ServiceError("ThrottlingException", "Rate exceeded", 400)


class ControlPlane:
    """The control-plane request-rate buckets, by (account:region, operation)."""

    def __init__(self, limits: ControlLimits, enforce: bool) -> None:
        self.limits = limits
        self.enforce = enforce
        self._buckets: dict[tuple[str, str], Bucket] = {}

    def admit(self, scope: str, operation: str, now: float) -> None:
        """ThrottlingException when the operation's rate for the account is spent; else take one."""
        if not self.enforce:
            return
        rate, burst = RATES[operation]
        bucket = self._buckets.get((scope, operation))
        if bucket is None:
            bucket = self._buckets[(scope, operation)] = Bucket(rate, now, burst / rate)
        if bucket.level(now) < 1.0:
            raise rate_exceeded()
        bucket.tokens -= 1.0

    def check_table_count(self, scope: str, tables: Iterable[TableMeta]) -> None:
        """One more table in the account and region would pass the table quota."""
        count = sum(1 for meta in tables if meta.scope == scope)
        if count >= self.limits.tables:
            raise limit_exceeded(
                f"Subscriber limit exceeded: There is a limit of {self.limits.tables} tables per subscriber"
            )

    def check_simultaneous(self, scope: str, tables: Iterable[TableMeta], now: float) -> None:
        """One more table operation while the account has the most tables CREATING, UPDATING or
        DELETING that it may have at once."""
        busy = sum(1 for meta in tables if meta.scope == scope and _in_progress(meta, now))
        if busy >= self.limits.simultaneous:
            raise limit_exceeded(
                f"Subscriber limit exceeded: Only {self.limits.simultaneous} tables can be created, updated, "
                "or deleted simultaneously"
            )


def _in_progress(meta: TableMeta, now: float) -> bool:
    if meta.status != "ACTIVE":  # CREATING (a restore or import loading) or DELETING
        return True
    return status(meta, now) == "UPDATING" or bool(meta.dropped) or any(ix.backfilling for ix in meta.indexes)
