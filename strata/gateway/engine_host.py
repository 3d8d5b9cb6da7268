"""The engine host: with --metadata, one gateway at a time runs the engine services.

RDS, ElastiCache, EC2/EBS, EFS, FIS, Application Auto Scaling and CloudWatch
(strata.storage.shared.ON_ENGINE_HOST) keep their state as engines and files, which two processes
must never run at once. So one gateway, the engine host, holds the PostgreSQL lock
`strata:engines` (strata.storage.engine_lock), builds those providers from the shared
`<blob dir>/engines/` (strata.gateway.services.ServiceTable.host_engines) and advertises its URL;
every other gateway forwards those services' requests to it (strata.gateway.forward), signatures
and all, and so serves them too.

- Takeover: a non-host tries for the lock every `PING` seconds. When the host dies its session
  ends and the lock is free (at once after a kill -9, ~11 s after a lost machine). The gateway
  that takes it reads the lock's heartbeat row (strata.storage.engine_lock) and asks the last
  host whether it still holds its takeover (`probe`): if it does, it is only reconnecting to
  PostgreSQL, and the taker lets the lock go and leaves it alone for `BACKOFF` s; otherwise the
  taker names itself in the row, waits its grace (`TAKEOVER_GRACE`, or until a silent host must
  have fenced itself: engine_lock's timing argument), builds the providers, which restart the
  engines from the shared state as after a restart of a single gateway (endpoints routed
  again), and advertises itself.
- Keeping the engines: the host writes a heartbeat every `PING` seconds. When its lock's
  connection fails (a PostgreSQL restart or failover, a proxy moving) the engines go on serving
  while it reconnects; once it holds the lock again and the row still names it, it goes on as the
  host ("kept the engines across a PostgreSQL reconnect" in its log).
- Fencing: the host kills every engine it runs (its child processes) and exits at once with
  `EXIT_FENCED` when the row names another host, or when `KEEP` s passed since its last
  heartbeat that succeeded (a watchdog thread); a supervisor starts it again, as a gateway that
  forwards.
- Where the engines run (`--engine-host`, Settings.engine_host): `any` (the default) takes them
  over as above; `never` never tries for the lock, only forwards (it builds no engine service, so
  its machine needs none of their binaries, root, nftables or memory, and takes no engine
  address); `prefer` tries every `PING` s as `any` does, and while a `prefer` gateway lives (its
  lock session holds `strata:engines-preferred`) an `any` gateway that finds the lock free leaves
  it alone for `PREFER_WAIT` s from the first time it found it so, before trying too: the
  preferred gateway, trying every half second, takes it first unless it cannot reach PostgreSQL
  all that while. So a takeover goes to a preferred gateway if one is up (no later for it); to an
  `any` one at most `PREFER_WAIT` s later than before when a preferred one is up but does not
  take it, and no later when none is. A host is never moved to a preferred gateway that starts
  later (moving restarts every engine): stop the host for that. Every gateway `never`: engine
  requests wait `RETRY_FOR` s, then 503, as while no host is up.
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
import http.client
import json
import logging
import os
import secrets
import threading
from urllib.parse import quote, urlsplit

import httptools
import psutil
import psycopg

from strata.config import (
    ENGINE_ADDRESSES_RECORD,
    ENGINE_HOST_ANY,
    ENGINE_HOST_NEVER,
    ENGINE_HOST_PREFER,
    EngineAddress,
    Settings,
)
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
from strata.storage import shared_faults
from strata.storage.engine_lock import KEEP, MARGIN, PING, Beat, EngineHostLock
from strata.storage.shared import ON_ENGINE_HOST

log = logging.getLogger("strata")

# Seconds a new host waits before it starts the engines: a host whose session was ended under it
# (pg_terminate_backend, a PostgreSQL restart) lets the lock go at once, and needs up to a ping's
# interval (and a round trip) to notice and kill its engines.
TAKEOVER_GRACE = 4 * PING
# Seconds an `any` gateway leaves a free lock to a live `prefer` one (6 of its tries, PING apart)
PREFER_WAIT = 3.0
BACKOFF = 3.0  # seconds a gateway leaves the lock alone after the last host said it still holds it
PROBE_TIMEOUT = 1.0  # seconds the last host has to answer whether it still holds the engines
PROBE_PATH = "/_strata/engine-host"  # ?holder=ID: {"holds": bool} (strata.gateway.admin)
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
        self.setting = settings.engine_host  # --engine-host: any, prefer or never
        self.lock = EngineHostLock(settings.metadata or "", preferred=self.setting == ENGINE_HOST_PREFER)
        self.serving = False  # the engine services run here
        # (URL, token) of the host as last read: where to forward, and what proves it is a gateway
        # doing so (one attribute: the watcher thread replaces both at once)
        self.host: tuple[str, str] | None = None
        self.token = secrets.token_urlsafe(24)  # this gateway's, advertised when it hosts
        # This gateway's takeover, named in the lock's row: one per process (a host that fences exits)
        self.holder = secrets.token_hex(12)
        self.hosting = False  # holds or keeps the engines: from naming itself in the row to its exit
        self._last_beat = 0.0  # clock.monotonic() when the last heartbeat that succeeded was sent
        self._lost = False  # the lock's connection failed: regaining it
        self._backoff_until = 0.0
        self._free_since: float | None = None  # `any`: when it first found the lock left to a preferred one
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    async def start(self) -> None:
        """Become the host if none is (the first gateway started), then watch the lock."""
        self._loop = asyncio.get_running_loop()
        never = self.setting == ENGINE_HOST_NEVER
        if never:
            log.warning(
                "--metadata: --engine-host never: this gateway never runs the engine services; it "
                "forwards their requests to the engine host"
            )
        grace = None if never else await asyncio.to_thread(self._try_host)
        if grace is None:
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
        # Before the takeover: its heartbeats and the watchdog cover the grace and the engines' start.
        self._watcher = threading.Thread(target=self._watch, name="strata-engine-host", daemon=True)
        self._watcher.start()
        if not never:
            threading.Thread(target=self._watchdog, name="strata-engine-watchdog", daemon=True).start()
        if grace is not None:
            await self._take_over(grace)

    def _try_host(self) -> float | None:
        """Blocking: take the lock and decide whether to take the engines over (the module
        docstring): the grace to wait before starting them, or None (not taken, or left to a host
        that is alive)."""
        if clock.monotonic() < self._backoff_until or not self._take():
            return None
        try:
            last = self.lock.last()
            grace = takeover_grace(last, self.holder)
            if grace is None:
                assert last is not None
                log.warning(
                    "--metadata: the engine host %s still holds the engines (it is reconnecting to "
                    "PostgreSQL): leaving them to it",
                    last.url,
                )
                self.lock.let_go()
                self._backoff_until = clock.monotonic() + BACKOFF
                return None
            # Holding from before the row names this gateway: a probe in between must hear "yes".
            # The watchdog counts from before the claim was sent (the row's `at` is later).
            self._last_beat = clock.monotonic()
            self.hosting = True
            self.lock.claim(self.holder, self.url)  # first: a reconnecting host learns it was replaced
        except psycopg.Error as e:
            self.hosting = False  # nothing started; the row may name it: a probe hears "no"
            self.lock.release()
            log.warning("--metadata: cannot take the engines over: %s", e)
            return None
        return grace

    def _take(self) -> bool:
        """Blocking: try for the lock as --engine-host says (the module docstring): `prefer` at
        once, `any` after PREFER_WAIT s while a preferred gateway lives and leaves it free."""
        if self.setting != ENGINE_HOST_ANY:
            return bool(self.lock.try_take())
        now = clock.monotonic()
        patient = self._free_since is None or now - self._free_since < PREFER_WAIT
        got = self.lock.try_take(defer=patient)
        if got is None:  # free, and a preferred gateway lives: its turn first
            if self._free_since is None:
                self._free_since = now
            return False
        self._free_since = None
        return got

    async def _take_over(self, grace: float) -> None:
        log.warning(
            "--metadata: this gateway is now the engine host (%s): starting the engine services", self.url
        )
        if grace > TAKEOVER_GRACE:
            log.warning(
                "--metadata: the last engine host does not answer: waiting %.1f s, until it must "
                "have killed its engines, before starting them",
                grace,
            )
        await asyncio.sleep(grace)
        if self.address is not None:
            try:
                await asyncio.to_thread(floating.claim_all, self.address)
            except OSError as e:  # the engines still serve it once the address comes here
                log.warning("--metadata: cannot claim the engine address: %s", e)
        shared_faults.claim()  # the last host's FIS faults ended with it, on every gateway
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
            if self.hosting:
                self._keep()
            elif self.setting != ENGINE_HOST_NEVER and (grace := self._try_host()) is not None:
                assert self._loop is not None
                asyncio.run_coroutine_threadsafe(self._take_over(grace), self._loop)
            else:
                try:
                    self._learn(self.lock.host())
                except Exception as e:  # noqa: BLE001 - the database is away: keep the last URL
                    log.warning("cannot read the engine host's URL: %s", e)

    def _keep(self) -> None:
        """The host's heartbeat, or its attempt to regain the lock after the connection failed."""
        sent = clock.monotonic()
        try:
            if not self._lost:
                if not self.lock.beat(self.holder):
                    self._fence("another gateway took the engines over")
                self._last_beat = sent
                return
        except psycopg.Error as e:
            self._lost = True
            log.warning(
                "--metadata: the engine host's lock connection failed (%s): keeping the engines "
                "while it reconnects (up to %g s after its last heartbeat)",
                str(e).strip(),
                KEEP,
            )
        again = self.lock.regain(self.holder)
        if again is False:
            self._fence("another gateway took the engines over while PostgreSQL was out of reach")
        elif again:
            try:
                if not self.lock.beat(self.holder):
                    self._fence("another gateway took the engines over")
            except psycopg.Error:
                return  # lost again: the next tick regains it
            log.warning(
                "--metadata: kept the engines across a PostgreSQL reconnect (%.1f s without a heartbeat)",
                sent - self._last_beat,
            )
            self._last_beat = sent
            self._lost = False

    def _watchdog(self) -> None:
        """Fence once KEEP s passed without a heartbeat, whatever the watcher is blocked in."""
        while not self._stop.wait(0.1):
            if self.hosting and clock.monotonic() - self._last_beat > KEEP:
                self._fence(f"no heartbeat reached PostgreSQL for {KEEP:g} s")

    def _fence(self, why: str) -> None:
        if not self._stop.is_set():  # a stopping host's engines are down already
            fence(self.address, why)

    def holds(self, holder: str) -> bool:
        """Whether this gateway holds (or keeps) the engines of the takeover `holder` (the probe)."""
        return self.hosting and hmac.compare_digest(holder.encode(), self.holder.encode())

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
        await asyncio.to_thread(self.lock.close, self.holder if self.hosting else None)

    def health(self) -> dict[str, object]:
        return {"self": self.serving, "url": self.host_url, "setting": self.setting}


def takeover_grace(last: Beat | None, holder: str) -> float | None:
    """Seconds a gateway that took the lock waits before starting the engines, given the row it
    read (strata.storage.engine_lock's timing argument); None: the last host still holds them."""
    if last is None or last.released or last.holder == holder:
        return TAKEOVER_GRACE
    answer = probe(last.url, last.holder)
    if answer is None:  # no answer: it may run them until its KEEP is out
        return max(TAKEOVER_GRACE, KEEP + MARGIN - last.age)
    return None if answer else TAKEOVER_GRACE


def probe(url: str, holder: str) -> bool | None:
    """Ask the host at `url` whether it holds the takeover `holder`: True, False (it says no, or
    nothing listens there: its process is gone), None (no answer within PROBE_TIMEOUT)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=PROBE_TIMEOUT)
    try:
        conn.request("GET", f"{PROBE_PATH}?holder={quote(holder)}", headers={"accept": "application/json"})
        answer = conn.getresponse()
        doc = json.loads(answer.read(4096))
        return answer.status == 200 and isinstance(doc, dict) and doc.get("holds") is True
    except ConnectionRefusedError:
        return False
    except (OSError, http.client.HTTPException):
        return None  # timed out, unreachable, cut off
    except ValueError:
        return False  # it answers, but not as a Strata that holds the engines
    finally:
        conn.close()


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
