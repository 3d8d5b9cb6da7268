"""Per-request figures CloudWatch publishes (DynamoDB's SuccessfulRequestLatency, ReturnedItemCount,
ThrottledRequests, SystemErrors, UserErrors), tallied in memory by the gateway and drained once a
simulated minute by CloudWatch's publisher: a request costs one dict update, never a disk write.

A tally is keyed by (simulated minute, service, account, region, resource, operation) and holds
[successes, latency sum ms, latency min, latency max, returned items, user errors,
system errors, throttled]. Lost on a crash (like the meter's unflushed tally): these are samples,
not acknowledged writes.

Both `add` (the gateway) and `drain` (the publisher, a scheduler rule) run on the event loop's
thread, so the tally needs no lock: a lock and the min/max calls were a third of the tally's cost,
which every DynamoDB request pays.
"""

from __future__ import annotations

import math

from strata.sim.clock import clock

OK, SUM_MS, MIN_MS, MAX_MS, RETURNED, USER_ERRORS, SYSTEM_ERRORS, THROTTLED = range(8)
THROTTLE_CODES = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)


class RequestStats:
    def __init__(self) -> None:
        self._tally: dict[tuple[int, str, str, str, str, str], list[float]] = {}

    def add(
        self,
        service: str,
        account: str,
        region: str,
        resource: str,
        operation: str,
        ms: float,
        status: int,
        code: str | None,
        returned: int,
    ) -> None:
        """One answered request (`code`: the error code when it failed)."""
        key = (int(clock.time()) // 60 * 60, service, account, region, resource, operation)
        t = self._tally.get(key)
        if t is None:
            t = self._tally[key] = [0, 0.0, math.inf, 0.0, 0, 0, 0, 0]
        if status < 300:
            t[OK] += 1
            t[SUM_MS] += ms
            if ms < t[MIN_MS]:
                t[MIN_MS] = ms
            if ms > t[MAX_MS]:
                t[MAX_MS] = ms
            if returned:
                t[RETURNED] += returned
        elif code in THROTTLE_CODES:
            t[THROTTLED] += 1
        elif status >= 500:
            t[SYSTEM_ERRORS] += 1
        else:
            t[USER_ERRORS] += 1

    def drain(self) -> dict[tuple[int, str, str, str, str, str], list[float]]:
        """Everything tallied so far, emptied."""
        tally, self._tally = self._tally, {}
        return tally


request_stats = RequestStats()
