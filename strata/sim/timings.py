"""The durations AWS documents for control-plane events, felt under `strata serve --timings aws`
(STRATA_TIMINGS=aws), so that an application's timeouts and retries meet what they meet on AWS.

By default (`fast`) Strata does each thing as fast as its engines allow. Under `aws`:
- an RDS Multi-AZ DB instance failover (RebootDBInstance ForceFailover, FIS, or after the
  primary's crash) leaves the endpoint unanswered for 60 s ("failover times are typically
  60-120 seconds"), between the old primary's stop and the standby taking over;
- an Aurora cluster failover (FailoverDBCluster, FIS, or after the writer's crash) likewise for
  30 s (AWS: failover "typically completes within 30 seconds"), between the writer's stop and the
  reader's promotion.
Not yet: creation and modification times, ElastiCache failover.
The waits are in simulated time (strata.sim.clock): they pass in real time like everything else,
and a test moves the clock past them instead of waiting.
"""

from __future__ import annotations

import time

from strata.config import Settings
from strata.sim.clock import clock

PROFILES = ("fast", "aws")
AWS: dict[str, float] = {
    "rds_multi_az_failover": 60.0,
    "aurora_failover": 30.0,
}


def seconds(settings: Settings, name: str) -> float:
    """How long the event `name` takes beyond the engines' own work under the server's profile."""
    return AWS[name] if settings.timings == "aws" else 0.0


def wait(duration: float) -> None:
    """Block until `duration` seconds of simulated time have passed (call off the event loop)."""
    until = clock.time() + duration
    while (left := until - clock.time()) > 0:
        time.sleep(min(0.2, left))
