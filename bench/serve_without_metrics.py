"""A Strata server that meters nothing and collects no metrics, for measuring what they cost.

Issue 18 asks that metering and metric collection cost a GetItem/GetObject at most 5% of its
requests per second, "side by side, same run, collection on vs off". Strata has no setting to
switch them off (a bill with holes is not a mode anyone should run), so this launcher switches them
off in its own process only, before serving:

- the gateway's per-request tallies CloudWatch drains (strata.sim.request_stats: DynamoDB's
  latency, returned items and errors; strata.sim.bucket_requests: S3 request metrics);
- the meter's recording (strata.sim.meter.Meter.record / record_keyed: requests, bytes, capacity
  units ... every billable event);
- CloudWatch's publisher (the `cloudwatch.publish` rule that samples the engines once a minute).

Everything else is the same checkout. Drive it beside a server as shipped with
`bench/cpu_per_request.py --callgrind` (instructions per request, load-independent):

    valgrind --tool=callgrind --instr-atstart=no python -m strata.cli serve --port 4701 ... &
    valgrind --tool=callgrind --instr-atstart=no python bench/serve_without_metrics.py \\
        serve --port 4702 ... &
    python bench/cpu_per_request.py --callgrind --target on=http://127.0.0.1:4701 \\
        --target off=http://127.0.0.1:4702 --seconds 15 --rounds 2

This is a measuring tool, never a way to run Strata: it serves on loopback only and says so.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout this file is in

from strata.services.cloudwatch.publish import Publisher  # noqa: E402
from strata.sim.bucket_requests import BucketRequests  # noqa: E402
from strata.sim.meter import Meter  # noqa: E402
from strata.sim.request_stats import RequestStats  # noqa: E402


def _skip(*_args: object, **_kwargs: object) -> None:
    """Record nothing: the measurement's other side."""


async def _publish_nothing(*_args: object, **_kwargs: object) -> dict[str, int]:
    return {"datapoints": 0}


def main() -> None:
    if any(arg in ("--host", "-h") or arg.startswith("--host=") for arg in sys.argv[1:]):
        raise SystemExit("serve_without_metrics serves on loopback only: do not give --host")
    print("serve_without_metrics: NOTHING IS METERED in this process (a benchmark)", file=sys.stderr)
    RequestStats.add = _skip  # type: ignore[method-assign]
    BucketRequests.add = _skip  # type: ignore[method-assign]
    Meter.record = _skip  # type: ignore[method-assign]
    Meter.record_keyed = _skip  # type: ignore[method-assign]
    Publisher.run = _publish_nothing  # type: ignore[method-assign]
    from strata.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
