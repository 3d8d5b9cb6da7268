"""The request handler: detect → authenticate → parse → dispatch → serialize, plus admin routes.

request ─► detect service ─► find operation ─► read or stream body ─► authenticate
        ─► parse (model-driven) ─► provider method ─► serialize ─► access log
any ServiceError on the way ─► the protocol's error format; a write the disk refused (full,
read-only) ─► ServiceUnavailable (503, retryable); anything else ─► InternalError (500)
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import secrets
from typing import Any

from botocore import xform_name

from strata.auth import Authenticator
from strata.auth.directory import directory_for
from strata.auth.enforce import Authorizer, Route
from strata.config import Settings
from strata.console import ROOT as CONSOLE_ROOT
from strata.console import Console
from strata.context import RequestContext
from strata.gateway import access_points, admin, cors
from strata.gateway.accesslog import AccessLog
from strata.gateway.detect import (
    Detected,
    detect,
    is_unsigned_form_post,
    service_by_query_version,
    to_path_style,
)
from strata.gateway.engine_host import EngineHost
from strata.gateway.hosts import HostPolicy, misdirected
from strata.gateway.http1 import DropConnection
from strata.gateway.request_body import RequestBody
from strata.gateway.server_access import bucket_and_key, record_s3_access
from strata.gateway.services import ServiceTable
from strata.gateway.unserved import unserved_response
from strata.protocol import codec_for_request
from strata.protocol.errors import InternalError, NotImplementedOperation, ServiceError
from strata.protocol.http import BodyStream, HttpRequest, HttpResponse
from strata.sim.bucket_requests import bucket_requests
from strata.sim.clock import clock
from strata.sim.faults import api_faults, service_outages
from strata.sim.request_limits import READ_RATE, SLOW_DOWN, WRITE_RATE, PrefixLimits
from strata.sim.request_stats import request_stats
from strata.sim.scheduler import scheduler
from strata.sim.server_access_logs import server_access_logs
from strata.storage.errors import disk_refused

log = logging.getLogger("strata")

_REST_PROTOCOLS = ("rest-xml", "rest-json")
_RETURNING = frozenset({"Query", "Scan"})  # DynamoDB operations whose items CloudWatch counts
_DISK_REFUSED = (
    "The service cannot store data right now (its storage is full or read-only). Please try again."
)


class StrataApp:
    """One instance per server; holds the service table and the authenticator."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.services = ServiceTable(settings)
        # with --metadata: which gateway runs the engine services (None: this one, always)
        self.engine_host = EngineHost(settings, self.services) if settings.metadata else None
        # Several gateways on PostgreSQL: what a request's authorization and operation read from
        # the store (IAM's change counter, S3's bucket row) is read first, off the event loop
        # (Directory.follow, a provider's `_prefetch`), so their synchronous look-ups find it checked.
        self.shared = settings.metadata is not None
        self.directory = directory_for(settings)
        self.auth = Authenticator(settings)
        self.hosts = HostPolicy(settings)
        self.authz = Authorizer(self.directory)
        self.started_at = clock.monotonic()
        self.health_probe: asyncio.Future | None = None  # the services' health check under way (admin)
        self.health_states: dict[str, str] = {}  # the states that check has read so far
        self._methods: dict[tuple[str, str], tuple[Any, Route]] = {}
        self.access_log = AccessLog(enabled=settings.access_log)
        self.console = Console(self)
        # S3's per-prefix request rates (None: not enforced, the default)
        self.prefix_limits = (
            PrefixLimits(
                settings.limit("s3_prefix_write_rate", WRITE_RATE),
                settings.limit("s3_prefix_read_rate", READ_RATE),
            )
            if settings.s3_request_limits
            else None
        )
        # Request ids: a random per-process prefix and a counter (unique, and no urandom call per
        # request as secrets.token_hex would make).
        self._id_prefix = secrets.token_hex(3).upper()
        self._ids = itertools.count(1)

    async def start(self) -> None:
        self.directory.load()
        await self.services.start()
        if self.engine_host is not None:
            await self.engine_host.start()
        scheduler.start()  # after the services: they register their time-driven rules in start()

    async def stop(self) -> None:
        self.access_log.flush()
        await scheduler.stop()
        await self.services.stop()
        if self.engine_host is not None:
            await self.engine_host.stop()  # the lock goes once the engines are down
        self.directory.close()
        self.console.close()

    async def handle(self, request: HttpRequest, body: RequestBody) -> HttpResponse:
        """Answer one request; never raises (the server only writes what this returns)."""
        start = clock.monotonic()
        if request.raw_path.startswith("/_strata/"):
            if request.raw_path == CONSOLE_ROOT or request.raw_path.startswith(CONSOLE_ROOT + "/"):
                response = await self.console.handle(request, body)
            else:
                response = await admin.handle(self, request, body)
            self.access_log.record(
                "strata", request.raw_path, response.status, (clock.monotonic() - start) * 1000, "-"
            )
            return response

        request_id = f"{self._id_prefix}{next(self._ids):010X}"
        service = "-"
        op = None
        op_name = "-"
        params: dict | None = None
        principal = None
        ctx: RequestContext | None = None
        result: Any = None
        error_code: str | None = None
        try:
            detected = detect(request, self.settings.s3_hosts)
            if detected.unserved is not None:
                response = unserved_response(request, detected.unserved, request_id)
                self.access_log.record(
                    detected.unserved, "-", response.status, (clock.monotonic() - start) * 1000, request_id
                )
                return response
            if detected.service == "s3" and detected.region is None and is_unsigned_form_post(request):
                request.body = await body.read()
                service_by_body = service_by_query_version(request.body.decode("latin-1"))
                if service_by_body:
                    detected = Detected(service_by_body, None)
            service = detected.service
            if detected.bucket_from_host:
                to_path_style(request, detected.bucket_from_host)
            access_point = (
                access_points.route(self.services.provider("s3control"), request, detected.bucket_from_host)
                if service == "s3"
                else None
            )
            codec = codec_for_request(service, request)
        except Exception:  # noqa: BLE001 - never leak a traceback to the client
            log.exception("internal error routing %s %s", request.method, request.raw_path)
            return HttpResponse(500, [("content-type", "text/plain")], b"Internal error")
        if self.engine_host is not None and self.engine_host.runs(service, request):
            if not self.engine_host.serving:
                forwarded = await self.engine_host.forward(request, body, codec, request_id)
                if forwarded is not None:
                    elapsed_ms = (clock.monotonic() - start) * 1000
                    self.access_log.record(service, "(forwarded)", forwarded.status, elapsed_ms, request_id)
                    return forwarded
            self.engine_host.adopt(request)
        if service_outages.out and service_outages.down(service):
            await service_outages.wait_out(service)  # FIS: the service's endpoint is cut off
            raise DropConnection
        if service == "s3" and request.method == "OPTIONS":
            return self._preflight(request, codec, request_id, start)
        try:
            if not self.hosts.allows(request.host):
                raise misdirected(request.host)
            if self.services.protocol(service) in _REST_PROTOCOLS:
                op, path_params = codec.find_operation(request)
                # A streamed body must be signed as such (S3 always says how in
                # x-amz-content-sha256); without that header the signature covers the body's hash
                # (EBS PutSnapshotBlock over http), so the body is read before it is verified.
                if op.has_streaming_input and (service == "s3" or "x-amz-content-sha256" in request.headers):
                    request.stream = BodyStream(body.chunks(), body.length)
                elif not request.body:
                    request.body = await body.read()
            else:
                if not request.body:
                    request.body = await body.read()
                op, path_params = codec.find_operation(request)
            op_name = op.name
            if self.shared:  # several gateways: the store's reads off the event loop, once a request
                if self.directory.needs_follow(request):
                    await self.directory.follow()
            principal = self.auth.authenticate(request, service, op_name)
            params = codec.parse(op, request, path_params)
            if self.shared:
                prefetch = getattr(self.services.provider(service), "_prefetch", None)
                if prefetch is not None:
                    await prefetch(params, op_name)
            # FIS API faults: only while an experiment injects one (an empty dict otherwise). After
            # the parse, so the request metrics count a faulted call against its table or bucket
            # (an alarm on SystemErrors or ThrottledRequests sees the experiment, as it should).
            if api_faults.rules and principal is not None and principal.role_arn:
                fault = api_faults.error_for(principal.role_arn, service, op_name)
                if fault is not None:
                    raise ServiceError(*fault)
            if self.prefix_limits is not None and service == "s3":
                if not self.prefix_limits.admit(request.method, params):
                    raise ServiceError(*SLOW_DOWN)
            if access_point is not None:
                params[access_points.MEMBER] = access_point
            method, route = self._method(service, op_name)
            region = detected.region or self.settings.region
            if principal is not None:
                self.authz.check(
                    principal,
                    service,
                    op_name,
                    params,
                    request,
                    region,
                    self.services.provider(service),
                    route,
                )
            ctx = RequestContext(
                request_id=request_id,
                service=service,
                operation=op_name,
                region=region,
                account_id=principal.account_id
                if principal and principal.account_id
                else self.settings.account_id,
                principal=principal,
                http=request,
            )
            result = method(ctx, params)
            # most operations answer a dict at once; inspect.isawaitable cost ~2% of a GetItem
            if type(result) is not dict and inspect.isawaitable(result):
                result = await result
            response = codec.serialize(op, result or {}, request_id)
        except ServiceError as e:
            error_code = e.code
            response = codec.serialize_error(op, e, request_id)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - never leak a traceback to the client
            if disk_refused(e):  # full or read-only data dir: the client retries later
                log.warning("%s.%s: storage refused the write: %s", service, op_name, e)
                # retryable, as S3 and DynamoDB answer when they cannot take a write
                error = ServiceError("ServiceUnavailable", _DISK_REFUSED, 503)
                response = codec.serialize_error(op, error, request_id)
            else:
                log.exception("internal error in %s.%s", service, op_name)
                response = codec.serialize_error(op, InternalError(), request_id)
        if service == "s3" and "origin" in request.headers:
            cors.decorate(self.services.provider(service), request, response)
        elapsed_ms = (clock.monotonic() - start) * 1000
        if service == "dynamodb" and params is not None:  # CloudWatch's per-table request metrics
            returned = result.get("Count", 0) if type(result) is dict and op_name in _RETURNING else 0
            request_stats.add(
                service,
                ctx.account_id if ctx is not None else self.settings.account_id,
                ctx.region if ctx is not None else self.settings.region,
                str(params.get("TableName") or ""),
                op_name,
                elapsed_ms,
                response.status,
                error_code,
                returned,
            )
        if service == "s3" and bucket_requests.watched and params is not None:  # request metrics
            bucket_requests.add(
                str(params.get("Bucket") or ""),
                str(params.get("Key") or ""),
                access_point["Arn"] if access_point else "",
                op_name,
                response.status,
                elapsed_ms,
                _uploaded(request),
                _downloaded(response),
            )
        if service == "s3" and server_access_logs.logged and op is not None:  # server access logs
            record_s3_access(
                request,
                response,
                principal,
                params if params is not None else bucket_and_key(request),
                op_name,
                request_id,
                error_code,
                result,
                elapsed_ms,
                _downloaded(response),
                _uploaded(request),
                access_point,
            )
        self.access_log.record(service, op_name, response.status, elapsed_ms, request_id)
        return response

    def _preflight(self, request: HttpRequest, codec: Any, request_id: str, start: float) -> HttpResponse:
        """An S3 CORS preflight: unsigned by design, answered from the bucket's CORS rules only
        (strata.gateway.cors); it reaches no operation."""
        try:
            if not self.hosts.allows(request.host):
                raise misdirected(request.host)
            response = cors.preflight(
                self.services.provider("s3"), request, codec.response_headers(request_id)
            )
        except ServiceError as e:
            response = codec.serialize_error(None, e, request_id)
        except Exception:  # noqa: BLE001 - never leak a traceback to the client
            log.exception("internal error answering a preflight")
            response = codec.serialize_error(None, InternalError(), request_id)
        self.access_log.record(
            "s3", "OPTIONS", response.status, (clock.monotonic() - start) * 1000, request_id
        )
        return response

    def _method(self, service: str, operation: str) -> tuple[Any, Route]:
        """The provider's method for an operation, and what authorizing it needs (one lookup)."""
        key = (service, operation)
        found = self._methods.get(key)
        if found is None:
            provider = self.services.provider(service)
            method = getattr(provider, xform_name(operation), None) if provider is not None else None
            if method is None:
                raise NotImplementedOperation(service, operation)
            found = self._methods[key] = (method, self.authz.route(service, operation, provider))
        return found


def _uploaded(request: HttpRequest) -> int:
    """Bytes of the request's body (S3's BytesUploaded: the decoded length of aws-chunked ones)."""
    if request.method not in ("PUT", "POST"):
        return 0
    length = request.headers.get("x-amz-decoded-content-length") or request.headers.get("content-length")
    return int(length) if length and length.isdigit() else 0


def _downloaded(response: HttpResponse) -> int:
    """Bytes of the response's body when it carries an object (S3's BytesDownloaded)."""
    if response.status >= 300 or response.body == b"":  # errors, HEAD (a length, no body)
        return 0
    for name, value in response.headers:
        if name.lower() == "content-length":
            return int(value) if value.isdigit() else 0
    return len(response.body) if isinstance(response.body, bytes) else 0
