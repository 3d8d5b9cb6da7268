"""Strata's own endpoints under /_strata/: health, the simulated clock, the meter.

Only answered for loopback clients: they can move time for the whole cloud.
"""

from __future__ import annotations

import ipaddress
import json
from typing import TYPE_CHECKING, Any

from strata import __version__
from strata.protocol.errors import ServiceError
from strata.protocol.http import HttpRequest, HttpResponse
from strata.sim.clock import clock, parse_duration
from strata.sim.meter import meter

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


def _clock_state() -> dict:
    return {"now": clock.now().isoformat(), "offset_seconds": clock.offset}


async def handle(app: StrataApp, request: HttpRequest, request_body: RequestBody) -> HttpResponse:
    try:
        body = await request_body.read(1024 * 1024)
    except ServiceError as e:  # too large, or cut off
        return _json(e.status, {"error": e.message})
    path = request.raw_path.rstrip("/")
    if request.client and not _is_loopback(request.client):
        return _json(403, {"error": "the admin API is only served to loopback clients"})
    if path == "/_strata/health" and request.method in ("GET", "HEAD"):
        return _json(
            200,
            {
                "version": __version__,
                "uptime_seconds": round(clock.monotonic() - app.started_at, 3),
                "region": app.settings.region,
                "account": app.settings.account_id,
                "services": app.services.health(),
            },
        )
    if path == "/_strata/clock":
        if request.method == "GET":
            return _json(200, _clock_state())
        if request.method == "POST":
            try:
                doc = json.loads(body or b"{}")
                if "advance" in doc:
                    value = doc["advance"]
                    clock.advance(
                        float(value) if isinstance(value, int | float) else parse_duration(str(value))
                    )
                elif "set" in doc:
                    from datetime import datetime

                    clock.set(datetime.fromisoformat(doc["set"]))
                else:
                    return _json(400, {"error": "give {'advance': '30d'} or {'set': ISO-8601}"})
            except (ValueError, TypeError) as e:
                return _json(400, {"error": str(e)})
            return _json(200, _clock_state())
    if path == "/_strata/meter" and request.method == "GET":
        service = request.query_dict().get("service")
        return _json(200, {"events": [e.__dict__ for e in meter.events(service)]})
    return _json(404, {"error": f"no admin route {request.method} {request.raw_path}"})
