"""Strata's own endpoints under /_strata/: health, the simulated clock, the meter, the bill.

GET /_strata/bill?from=<ISO date or time>&to=...&by=service|resource|usage-type answers the bill
of that span of simulated time (default: from the first of the simulated month to now), priced
with strata/sim/prices.json (strata.sim.pricing); `daily=1` adds each service's cost per day.

Moving the clock (POST /_strata/clock) answers once every time-driven rule has caught up
(strata.sim.scheduler), with what each did under "ran": {"s3.lifecycle": {"transitioned": 3}};
GET /_strata/clock shows how far each rule has got under "rules".

They can move time for the whole cloud (and TTL or lifecycle then delete data), so every call must:
- come from a loopback client, for a Host name Strata serves (strata.gateway.hosts);
- not come from another web origin: a foreign `Origin` header, or `Sec-Fetch-Site` other than
  `same-origin` / `none`, is refused with 403 (a page on any site can POST to 127.0.0.1);
- not come from a script in a web page at all (`Sec-Fetch-Mode` other than `navigate`), even a
  same-origin one: S3 serves anyone's HTML objects from this origin too (and the console's pages
  live here), so "same origin" does not mean "Strata's own page";
- for a POST, carry `Content-Type: application/json` (415 otherwise): a browser cannot send that
  cross-origin without a CORS preflight, which Strata never grants;
- hold valid values: a JSON object, a finite, forward step that keeps the clock before the year
  9000 (strata.sim.clock.LATEST); anything else is a 400 and changes nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from strata import __version__
from strata.gateway.engine_host import PROBE_PATH
from strata.gateway.hosts import misdirected
from strata.protocol.errors import ServiceError
from strata.protocol.http import HttpRequest, HttpResponse
from strata.services.registry import SERVICES
from strata.sim import pricing
from strata.sim.clock import clock, parse_duration
from strata.sim.meter import meter
from strata.sim.scheduler import scheduler
from strata.storage.shared import live

if TYPE_CHECKING:
    from strata.gateway.app import StrataApp
    from strata.gateway.request_body import RequestBody


def _json(status: int, body: Any) -> HttpResponse:
    data = json.dumps(body, default=str).encode()
    return HttpResponse(status, [("content-type", "application/json")], data)


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _origin_refusal(request: HttpRequest) -> str | None:
    """Why a request comes from another web origin than Strata's own, or None if it does not."""
    site = (request.headers.get("sec-fetch-site") or "").strip().lower()
    if site and site not in ("same-origin", "none"):
        return f"a {site} request (Sec-Fetch-Site)"
    mode = (request.headers.get("sec-fetch-mode") or "").strip().lower()
    if mode and mode != "navigate":
        return f"a script's request (Sec-Fetch-Mode {mode})"
    origin = request.headers.get("origin")
    if origin is not None:
        scheme, _, authority = origin.strip().lower().partition("://")
        default = {"http": ":80", "https": ":443"}.get(scheme)
        host = request.host.strip().lower()
        if default is None or not host:
            return f"a request from origin {origin[:100]!r}"
        with_port = [a if ":" in a.rsplit("]", 1)[-1] else a + default for a in (authority, host)]
        if with_port[0] != with_port[1]:
            return f"a request from origin {origin[:100]!r}"
    return None


def _is_json(request: HttpRequest) -> bool:
    media_type = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    return media_type == "application/json"


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a valid value")


def _move_clock(body: bytes) -> None:
    """Apply {"advance": seconds | "30d"} or {"set": ISO-8601}; ValueError for anything else."""
    try:
        doc = json.loads(body or b"{}", parse_constant=_no_constant)
    except RecursionError as e:
        raise ValueError("the body is not a JSON object") from e
    if not isinstance(doc, dict) or ("advance" in doc) == ("set" in doc):
        raise ValueError('give {"advance": "30d"} (or a number of seconds) or {"set": "<ISO-8601>"}')
    if "advance" in doc:
        value = doc["advance"]
        if isinstance(value, str):
            clock.advance(parse_duration(value))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            clock.advance(value)
        else:
            raise ValueError(f"advance takes a duration like '30d' or a number of seconds, not {value!r}")
    else:
        value = doc["set"]
        if not isinstance(value, str):
            raise ValueError(f"set takes an ISO-8601 instant, not {value!r}")
        clock.set(datetime.fromisoformat(value))


HEALTH_WAIT = 2.0  # seconds the health answer waits for the services' own checks
NO_ANSWER = f"no answer within {HEALTH_WAIT:g} s (a database it uses is slow or unreachable)"


async def _services_health(app: StrataApp) -> dict[str, str]:
    """The services' states, asked off the event loop: S3's and S3 Control's check runs a query,
    which with --metadata goes to PostgreSQL and during a failover waits for the pool (30 s) or
    the network; on the loop it stalled every request of the gateway, this health check too.
    One check at a time (a slow one is awaited again by the next health request, not started
    anew, so no threads pile up). After HEALTH_WAIT seconds the answer has the same shape as
    always, every service by name: the states read so far or needing no check, and NO_ANSWER for
    each of the others, so a monitor reads `services[name]` whatever happens."""
    from strata.services.base import run_blocking

    probe = app.health_probe
    if probe is None or probe.done():
        app.health_states = {}
        probe = app.health_probe = asyncio.ensure_future(run_blocking(app.services.health, app.health_states))
        probe.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved if none waits
    try:
        return await asyncio.wait_for(asyncio.shield(probe), HEALTH_WAIT)
    except TimeoutError:
        read = app.health_states  # filled by the probe's thread: one get per name
        return {name: read.get(name) or app.services.known_state(name) or NO_ANSWER for name in SERVICES}


def _clock_state() -> dict:
    return {"now": clock.now().isoformat(), "offset_seconds": clock.offset}


async def handle(app: StrataApp, request: HttpRequest, request_body: RequestBody) -> HttpResponse:
    try:
        body = await request_body.read(1024 * 1024)
    except ServiceError as e:  # too large, or cut off
        return _json(e.status, {"error": e.message})
    path = request.raw_path.rstrip("/")
    if path == PROBE_PATH and request.method == "GET" and app.engine_host is not None:
        # Asked by other gateways (not loopback): does this gateway still hold that takeover of
        # the engines? Says nothing to whoever does not know the id, which only PostgreSQL holds.
        return _json(200, {"holds": app.engine_host.holds(request.query_dict().get("holder", ""))})
    if request.client and not _is_loopback(request.client):
        return _json(403, {"error": "the admin API is only served to loopback clients"})
    if not app.hosts.allows(request.host):
        return _json(421, {"error": misdirected(request.host).message})
    refusal = _origin_refusal(request)
    if refusal:
        return _json(403, {"error": f"the admin API refuses {refusal}: it only answers Strata's own origin"})
    if request.method not in ("GET", "HEAD") and not _is_json(request):
        return _json(415, {"error": "admin calls that change state must send Content-Type: application/json"})
    if path == "/_strata/health" and request.method in ("GET", "HEAD"):
        return _json(
            200,
            {
                "version": __version__,
                "pid": os.getpid(),  # which server answers (a harness checks it is the one it started)
                "uptime_seconds": round(clock.monotonic() - app.started_at, 3),
                "region": app.settings.region,
                "account": app.settings.account_id,
                "services": await _services_health(app),
                # with --metadata: whether this gateway runs the engine services, and who does
                "engine_host": app.engine_host.health() if app.engine_host is not None else None,
            },
        )
    if path == "/_strata/clock":
        if request.method == "GET":
            # scheduler_owner: whether this gateway runs the shared rules (always, on one gateway);
            # gateways: how many share the cloud's PostgreSQL now (DynamoDB's capacity is divided)
            state = {
                **_clock_state(),
                "rules": scheduler.status(),
                "scheduler_owner": scheduler.owner,
                "gateways": live.count,
            }
            return _json(200, state)
        if request.method == "POST":
            try:
                _move_clock(body)
            except (ValueError, TypeError, OverflowError) as e:
                return _json(400, {"error": str(e)})
            ran = await scheduler.catch_up()
            return _json(200, {**_clock_state(), "ran": ran})
    if path == "/_strata/meter" and request.method == "GET":
        service = request.query_dict().get("service")
        return _json(200, {"events": [e.__dict__ for e in meter.events(service)]})
    if path == "/_strata/bill" and request.method == "GET":
        try:
            start, end, by = bill_period(request.query_dict())
        except ValueError as e:
            return _json(400, {"error": str(e)})
        items = await asyncio.to_thread(pricing.usage, start, end)
        doc = pricing.summarize(items, by)
        if request.query_dict().get("daily"):
            doc["daily"] = pricing.daily(items)
        return _json(200, {"from": _iso(start), "to": _iso(end), "by": by, **doc})
    if path == "/_strata/ebs/nbd" and request.method == "GET":
        return _nbd_uri(app, request.query_dict().get("volume") or "")
    return _json(404, {"error": f"no admin route {request.method} {request.raw_path}"})


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def _instant(text: str) -> float:
    when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def bill_period(query: dict[str, str]) -> tuple[float, float, str]:
    """(start, end, grouping) of a bill request; ValueError names what is wrong."""
    now = clock.now()
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()
    end = now.timestamp()
    if query.get("from"):
        start = _instant(query["from"])
    if query.get("to"):
        end = _instant(query["to"])
    if start >= end:
        raise ValueError("'from' must be before 'to'")
    by = query.get("by") or "usage-type"
    if by not in pricing.GROUPINGS:
        raise ValueError(f"'by' is one of {', '.join(pricing.GROUPINGS)}")
    return start, end, by


def _nbd_uri(app: StrataApp, volume_id: str) -> HttpResponse:
    """Where an attached EBS volume is served over NBD (`strata ebs nbd-uri` prints it)."""
    try:
        provider = app.services.provider("ec2")
        if provider is None and app.engine_host is not None:
            url = app.engine_host.host_url
            return _json(503, {"error": f"EC2 runs on the engine host ({url}): ask it", "engine_host": url})
        if provider is None:
            return _json(404, {"error": "EC2 is not running"})
        return _json(200, {"volume": volume_id, "uri": provider.nbd.uri(volume_id)})
    except ServiceError as e:
        return _json(
            404 if e.code.endswith("NotFound") or "Malformed" in e.code else 409,
            {"error": e.message, "code": e.code},
        )
