"""The durations AWS documents for control-plane events, felt under `strata serve --timings aws`
(STRATA_TIMINGS=aws), so that an application's timeouts, waiters and retries meet what they meet
on AWS.

By default (`fast`) Strata does each thing as fast as its engines allow. Under `aws`:
- an RDS Multi-AZ DB instance failover (RebootDBInstance ForceFailover, FIS, or after the
  primary's crash) leaves the endpoint unanswered for 60 s ("failover times are typically
  60-120 seconds", RDS User Guide, Concepts.MultiAZ.Failover), between the old primary's stop and
  the standby taking over;
- an Aurora cluster failover (FailoverDBCluster, FIS, or after the writer's crash) likewise for
  30 s (AWS: failover "typically completes within 30 seconds"), between the writer's stop and the
  reader's promotion;
- an ElastiCache replication group failover (TestFailover, FIS AZ power, or after the primary
  node's death) for 30 s between the old primary's loss and the replica's promotion. Strata's
  choice: AWS's page on it ("Minimizing downtime in ElastiCache by using Multi-AZ",
  https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/AutoFailover.html) gives no figure for
  a failover, only that the downtime is "minimized" and that a DNS update alone "might take up to
  a few seconds"; 30 s is what AWS documents for the comparable Aurora promotion;
- creation and modification keep a resource in `creating` / `modifying` for at least: an RDS DB
  instance (standalone, Multi-AZ or an Aurora member) 10 minutes to create and 2 minutes to
  modify; a DB cluster (Aurora, Multi-AZ DB cluster, a global database's member) 5 minutes to
  create (its own record: its instances take theirs); an ElastiCache cache cluster or replication group 5 minutes to create and 2 minutes to
  modify. Strata's choice: AWS documents no figure for either (its guides say only that the
  resource is in `creating` until it is ready); the figures are "several minutes", within the
  waiters AWS's SDKs ship (`db_instance_available` waits up to 30 minutes, polling every 30 s;
  `cache_cluster_available` and `replication_group_available` up to 10 and 40 minutes), so code
  written against those waiters passes, and code that expects a database in seconds does not.
The waits are in simulated time (strata.sim.clock): they pass in real time like everything else,
and a test moves the clock past them instead of waiting. A restart of Strata ends a creation or
modification wait (the resource comes back `available`).
"""

from __future__ import annotations

import asyncio
import time

from strata.config import Settings
from strata.sim.clock import clock

PROFILES = ("fast", "aws")
AWS: dict[str, float] = {
    "rds_multi_az_failover": 60.0,
    "aurora_failover": 30.0,
    "elasticache_failover": 30.0,
    "rds_instance_create": 600.0,
    "rds_instance_modify": 120.0,
    "rds_cluster_create": 300.0,
    "elasticache_create": 300.0,
    "elasticache_modify": 120.0,
}


def seconds(settings: Settings, name: str) -> float:
    """How long the event `name` takes beyond the engines' own work under the server's profile."""
    return AWS[name] if settings.timings == "aws" else 0.0


def wait(duration: float) -> None:
    """Block until `duration` seconds of simulated time have passed (call off the event loop)."""
    until = clock.time() + duration
    while (left := until - clock.time()) > 0:
        time.sleep(min(0.2, left))


def wait_since(started: float, duration: float) -> None:
    """Block until `duration` seconds of simulated time have passed since `started` (a
    clock.time()): the event's own work, done meanwhile, counts towards it."""
    wait(max(0.0, started + duration - clock.time()))


async def wait_async(duration: float) -> None:
    """`wait` on the event loop: until `duration` seconds of simulated time have passed."""
    until = clock.time() + duration
    while (left := until - clock.time()) > 0:
        await asyncio.sleep(min(0.2, left))
