"""The ASGI application: detect → authenticate → parse → dispatch → serialize, plus admin routes.

request ─► detect service ─► find operation ─► read or stream body ─► authenticate
        ─► parse (model-driven) ─► provider method ─► serialize ─► access log
any ServiceError on the way ─► the protocol's error format; anything else ─► InternalError (500)
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import secrets
from collections.abc import Awaitable
from typing import Any

from botocore import xform_name

from strata.auth import Authenticator
from strata.config import Settings
from strata.gateway import admin
from strata.gateway.accesslog import AccessLog
from strata.gateway.asgi_io import (
    attach_stream,
    content_length,
    drain,
    read_body,
    request_from_scope,
    send_response,
)
from strata.gateway.detect import (
    Detected,
    detect,
    is_unsigned_form_post,
    service_by_query_version,
    to_path_style,
)
from strata.gateway.services import ServiceTable
from strata.protocol import codec_for
from strata.protocol.errors import InternalError, NotImplementedOperation, ServiceError
from strata.services.base import RequestContext
from strata.sim.clock import clock

log = logging.getLogger("strata")

_REST_PROTOCOLS = ("rest-xml", "rest-json")


async def _nothing() -> None:
    return None


class StrataApp:
    """One instance per server; holds the service table and the authenticator."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.services = ServiceTable(settings)
        self.auth = Authenticator(settings)
        self.started_at = clock.monotonic()
        self._methods: dict[tuple[str, str], Any] = {}
        self.access_log = AccessLog(enabled=settings.access_log)
        # Request ids: a random per-process prefix and a counter (unique, and no urandom call per
        # request as secrets.token_hex would make).
        self._id_prefix = secrets.token_hex(3).upper()
        self._ids = itertools.count(1)

    def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[None]:
        # A plain function handing back the handler's coroutine: one coroutine less per request.
        kind = scope["type"]
        if kind == "http":
            return self.handle_http(scope, receive, send)
        if kind == "lifespan":
            return self.lifespan(receive, send)
        return _nothing()

    async def lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.services.start()
                except Exception as e:  # noqa: BLE001 - report start-up failure to the server
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(e)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.access_log.flush()
                await self.services.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def handle_http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await self._handle_http(scope, receive, send)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - last resort: the error renderer itself failed
            log.exception("unhandled error")
            body = b"Internal error"
            headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
            try:
                await send({"type": "http.response.start", "status": 500, "headers": headers})
                await send({"type": "http.response.body", "body": body})
            except Exception:  # noqa: BLE001 - the response had already started; nothing more to do
                pass

    async def _handle_http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        start = clock.monotonic()
        request = request_from_scope(scope)
        can_pathsend = "http.response.pathsend" in (scope.get("extensions") or {})
        if request.raw_path.startswith("/_strata/"):
            response = await admin.handle(self, request, receive)
            await send_response(send, response, request.method == "HEAD", can_pathsend)
            self.access_log.record(
                "strata", request.raw_path, response.status, (clock.monotonic() - start) * 1000, "-"
            )
            return

        request_id = f"{self._id_prefix}{next(self._ids):010X}"
        detected = detect(request, self.settings.s3_hosts)
        if detected.service == "s3" and detected.region is None and is_unsigned_form_post(request):
            request.body = await read_body(receive, content_length(request))
            service_by_body = service_by_query_version(request.body.decode("latin-1"))
            if service_by_body:
                detected = Detected(service_by_body, None)
        service = detected.service
        if detected.bucket_from_host:
            to_path_style(request, detected.bucket_from_host)
        codec = codec_for(service)
        op = None
        op_name = "-"
        try:
            if self.services.protocol(service) in _REST_PROTOCOLS:
                op, path_params = codec.find_operation(request)
                if op.has_streaming_input:
                    attach_stream(request, receive)
                else:
                    request.body = await read_body(receive, content_length(request))
            else:
                if not request.body:
                    request.body = await read_body(receive, content_length(request))
                op, path_params = codec.find_operation(request)
            op_name = op.name
            principal = self.auth.authenticate(request, service, op_name)
            params = codec.parse(op, request, path_params)
            method = self._method(service, op_name)
            ctx = RequestContext(
                request_id=request_id,
                service=service,
                operation=op_name,
                region=detected.region or self.settings.region,
                account_id=principal.account_id if principal else self.settings.account_id,
                principal=principal,
                http=request,
            )
            result = method(ctx, params)
            if inspect.isawaitable(result):
                result = await result
            response = codec.serialize(op, result or {}, request_id)
        except ServiceError as e:
            response = codec.serialize_error(op, e, request_id)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - never leak a traceback to the client
            log.exception("internal error in %s.%s", service, op_name)
            response = codec.serialize_error(op, InternalError(), request_id)
        if request.stream is not None:
            await drain(receive, request)
        try:
            await send_response(send, response, request.method == "HEAD", can_pathsend)
        finally:
            self.access_log.record(
                service, op_name, response.status, (clock.monotonic() - start) * 1000, request_id
            )

    def _method(self, service: str, operation: str) -> Any:
        key = (service, operation)
        method = self._methods.get(key)
        if method is None:
            provider = self.services.provider(service)
            method = getattr(provider, xform_name(operation), None) if provider is not None else None
            if method is None:
                raise NotImplementedOperation(service, operation)
            self._methods[key] = method
        return method
