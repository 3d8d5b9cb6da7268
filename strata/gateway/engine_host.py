"""The engine host: with --metadata, one gateway at a time runs the engine services.

RDS, ElastiCache, EC2/EBS, EFS, FIS, Application Auto Scaling and CloudWatch
(strata.storage.shared.ON_ENGINE_HOST) keep their state as engines and files, which two processes
must never run at once. So one gateway, the engine host, holds the PostgreSQL lock
`strata:engines` (strata.storage.engine_lock), builds those providers from the shared
`<blob dir>/engines/` (strata.gateway.services.ServiceTable.host_engines) and advertises its URL;
every other gateway forwards those services' requests to it (strata.gateway.forward), signatures
and all, and so serves them too.

- Takeover: a non-host tries for the lock every `PING` seconds. When the host dies its session
  ends and the lock is free (at once after a kill -9, ~11 s after a lost machine); the first
  gateway to take it builds the providers, which restart the engines from the shared state as
  after a restart of a single gateway (endpoints routed again), then advertises itself.
- Fencing: the host pings its lock's connection every `PING` seconds. When it fails the session
  may be over and another gateway about to start the same engines, so the host kills every
  engine it runs (its child processes) and exits at once with `EXIT_FENCED`; a supervisor starts
  it again, as a gateway that forwards. PostgreSQL gives a silent host up later than the host
  gives PostgreSQL up (strata.storage.engine_lock), so the engines are gone before anyone else
  may take the lock.
- Forwarding waits while no host answers (a takeover in progress) up to `RETRY_FOR` seconds, then
  answers ServiceUnavailable (503), which SDKs retry.
- The engine address (`--engine-address ADDR/DEV`, strata.engines.floating): the host claims ADDR (and its pool)
  when it takes the engines over (a gratuitous ARP points the network at it) and gives it up
  when it stops or fences itself, so other machines reach the engines wherever they run.
- Who asked: the host takes a forwarded request's client address and TLS (aws:SourceIp,
  aws:SecureTransport) from the forwarding gateway's headers when they carry the token the host
  advertised beside its URL (a random one per takeover, in PostgreSQL: only gateways read it);
  else the request is judged as coming from the address that sent it. A client's
  X-Forwarded-For is never believed.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import secrets
import threading

import httptools
import psutil

from strata.config import ENGINE_ADDRESSES_RECORD, EngineAddress, Settings
from strata.engines import floating
from strata.gateway.forward import (
    FORWARDED_BY,
    FORWARDED_FOR,
    FORWARDED_PROOF,
    FORWARDED_PROTO,
    Unreachable,
    forward,
)
from strata.gateway.request_body import RequestBody
from strata.gateway.services import ServiceTable
from strata.protocol.errors import ServiceError
from strata.protocol.http import HttpRequest, HttpResponse
from strata.sim.clock import clock
from strata.storage.engine_lock import PING, EngineHostLock
from strata.storage.shared import ON_ENGINE_HOST

log = logging.getLogger("strata")

# Seconds a new host waits before it starts the engines: a host whose session was ended under it
# (pg_terminate_backend, a PostgreSQL restart) lets the lock go at once, and needs up to a ping's
# interval (and a round trip) to notice and kill its engines.
TAKEOVER_GRACE = 4 * PING
RETRY_FOR = 30.0  # seconds a request waits for an engine host to answer (a takeover takes ~10 s)
RETRY_EVERY = 0.2
# Operations of shared services that need an engine service's provider on the same gateway (a
# peer): DynamoDB's replica auto scaling is Application Auto Scaling's, and UpdateTable adding a
# replica asks it whether the table's write capacity is auto scaled. Forwarded like the engine
# services' requests; their X-Amz-Target names them before the body is read.
HOST_TARGETS = frozenset(
    {
        "DynamoDB_20120810.DescribeTableReplicaAutoScaling",
        "DynamoDB_20120810.UpdateTableReplicaAutoScaling",
        "DynamoDB_20120810.UpdateTable",
    }
)
EXIT_FENCED = 75  # EX_TEMPFAIL: start this gateway again
_UNAVAILABLE = "No gateway runs this service's engines right now (a takeover is under way). Please try again."


class EngineHost:
    """This gateway's part: host (`serving`), or the forwarder to `host_url`."""

    def __init__(self, settings: Settings, services: ServiceTable) -> None:
        self.url = settings.advertise_url or settings.endpoint
        self.address = settings.exposed_engines  # claimed while this gateway hosts (None: loopback)
        self.own_record = settings.data_dir / ENGINE_ADDRESSES_RECORD  # before the record was shared
        self.services = services
        self.lock = EngineHostLock(settings.metadata or "")
        self.serving = False  # the engine services run here
        # (URL, token) of the host as last read: where to forward, and what proves it is a gateway
        # doing so (one attribute: the watcher thread replaces both at once)
        self.host: tuple[str, str] | None = None
        self.token = secrets.token_urlsafe(24)  # this gateway's, advertised when it hosts
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    async def start(self) -> None:
        """Become the host if none is (the first gateway started), then watch the lock."""
        self._loop = asyncio.get_running_loop()
        if await asyncio.to_thread(self.lock.try_take):
            await self._take_over()
        else:
            # A host killed with -9 on a machine that stayed up left the engine address on its
            # device: started again as a forwarder, it must not answer for it beside the new host.
            if self.address is not None:
                await asyncio.to_thread(_release, self.address)
            self._learn(await asyncio.to_thread(self.lock.host))
            if self.host is None:
                log.warning(
                    "--metadata: no engine host has advertised itself yet (one is taking the engines "
                    "over); engine services' requests wait for it, and its URL is logged once known"
                )
        self._watcher = threading.Thread(target=self._watch, name="strata-engine-host", daemon=True)
        self._watcher.start()

    async def _take_over(self) -> None:
        log.warning(
            "--metadata: this gateway is now the engine host (%s): starting the engine services", self.url
        )
        await asyncio.sleep(TAKEOVER_GRACE)
        if self.address is not None:
            try:
                await asyncio.to_thread(floating.claim_all, self.address)
            except OSError as e:  # the engines still serve it once the address comes here
                log.warning("--metadata: cannot claim the engine address: %s", e)
        try:
            await asyncio.to_thread(floating.adopt_record, self.address, self.own_record)
        except OSError as e:  # the endpoints then take pool addresses afresh (as on a first start)
            log.warning("--metadata: cannot move %s to the engines' state: %s", self.own_record, e)
        try:
            await self.services.host_engines()
            await asyncio.to_thread(self.lock.advertise, self.url, self.token)
        except Exception:  # noqa: BLE001 - a host that cannot say so would hold the engines forever
            log.exception("--metadata: taking the engines over failed")
            fence(self.address, "could not take the engines over")
        self.host = (self.url, self.token)
        self.serving = True
        log.warning("--metadata: the engine services run here now")

    def _watch(self) -> None:
        while not self._stop.wait(PING):
            if self.lock.held:
                if not self.lock.still_held() and not self._stop.is_set():
                    fence(self.address)
            elif self.lock.try_take():
                assert self._loop is not None
                asyncio.run_coroutine_threadsafe(self._take_over(), self._loop)
            else:
                try:
                    self._learn(self.lock.host())
                except Exception as e:  # noqa: BLE001 - the database is away: keep the last URL
                    log.warning("cannot read the engine host's URL: %s", e)

    def _learn(self, host: tuple[str, str] | None) -> None:
        """Take the advertised host; say so when its URL is new to this gateway (once per change:
        at start-up it may be a dead host's until the new one advertises itself)."""
        if host is None:
            return
        if self.host is None or self.host[0] != host[0]:
            log.warning(
                "--metadata: the engine host is %s (as last advertised); engine services' requests go there",
                host[0],
            )
        self.host = host

    @property
    def host_url(self) -> str | None:
        return self.host[0] if self.host is not None else None

    @staticmethod
    def runs(service: str, request: HttpRequest) -> bool:
        """Whether the request needs the engine host (see HOST_TARGETS)."""
        return service in ON_ENGINE_HOST or (
            service == "dynamodb" and request.headers.get("x-amz-target") in HOST_TARGETS
        )

    def adopt(self, request: HttpRequest) -> None:
        """On the host: a request forwarded by a gateway (it holds this host's token) is judged as
        coming from the forwarding gateway's client (its address, and TLS or not)."""
        proof = request.headers.get(FORWARDED_PROOF)
        if proof is not None and hmac.compare_digest(proof.encode(), self.token.encode()):
            request.client = request.headers.get(FORWARDED_FOR) or ""
            request.secure = request.headers.get(FORWARDED_PROTO) == "https"

    async def forward(
        self, request: HttpRequest, body: RequestBody, codec: object, request_id: str
    ) -> HttpResponse | None:
        """The host's answer to an engine service's request; None once this gateway serves them
        (it became the host while the request waited)."""
        deadline = clock.monotonic() + RETRY_FOR
        forwarded = FORWARDED_BY in request.headers  # by a gateway that thought this one the host
        while not self.serving:
            host = self.host
            url = host[0] if host is not None else self.url
            if host is not None and url != self.url and not forwarded:
                try:
                    return await forward(url, host[1], request, body, self.url)
                except Unreachable:
                    pass  # the host is gone: wait for a new one to advertise itself
                except (OSError, TimeoutError, httptools.HttpParserError) as e:
                    log.warning("forwarding to the engine host %s failed: %s", url, e)
                    return _unavailable(codec, request_id)  # the body is spent: the client retries
            if clock.monotonic() > deadline:
                return _unavailable(codec, request_id)
            await asyncio.sleep(RETRY_EVERY)
        return None

    async def stop(self) -> None:
        """After the engine services stopped: end the watch, give the engine address up and
        release the lock."""
        self._stop.set()
        if self._watcher is not None:
            await asyncio.to_thread(self._watcher.join, PING + 5)
        if self.serving:
            _release(self.address)
        await asyncio.to_thread(self.lock.close)

    def health(self) -> dict[str, object]:
        return {"self": self.serving, "url": self.host_url}


def _unavailable(codec: object, request_id: str) -> HttpResponse:
    error = ServiceError("ServiceUnavailable", _UNAVAILABLE, 503)
    return codec.serialize_error(None, error, request_id)  # type: ignore[attr-defined]


def _release(address: EngineAddress | None) -> None:
    if address is not None:
        try:
            floating.release_all(address)
        except OSError as e:
            log.warning("--metadata: cannot give the engine address up: %s", e)


def fence(
    address: EngineAddress | None, why: str = "lost the engine host's lock (its PostgreSQL connection failed)"
) -> None:
    """This gateway may not run the engines any more: give their address up, kill them and exit
    (see the module docstring)."""
    _release(address)
    log.error(
        "--metadata: %s: killing this gateway's engines and exiting (status %d) so another gateway "
        "can take them over; start it again and it forwards to the new host",
        why,
        EXIT_FENCED,
    )
    try:
        engines = psutil.Process().children(recursive=True)
    except psutil.Error:
        engines = []
    for p in engines:
        try:
            p.kill()
        except psutil.Error:
            pass
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(EXIT_FENCED)
