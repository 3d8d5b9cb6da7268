"""Run Strata: one process, one uvloop event loop serving HTTP (strata.gateway.http1) and HTTPS
(strata.gateway.https, the same app on --tls-port).

One process: engines supervised by providers are children of this process, and start-up/shutdown
hooks run in the same loop as requests. The HTTP server was chosen by measurement with the serving
thread pinned (see strata.gateway.http1 for the numbers).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor

from strata.affinity import pin_serving_thread, unpin_thread
from strata.config import ConfigError, Settings
from strata.sim.clock import ClockStateError, clock
from strata.sim.meter import meter
from strata.sim.scheduler import scheduler

log = logging.getLogger("strata")


def prepare(settings: Settings) -> None:
    """Open the data directory's shared state (clock offset, rules' progress, meter) before serving.

    The data dir is private (0700, also when it existed with wider rights): it holds every object,
    item and engine secret. Files made inside it are 0600 (`serve` sets umask 077).
    """
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(settings.data_dir, 0o700)
    settings.all_credentials()  # refuses a public bind with default credentials, before any work
    clock.use_state_file(settings.data_dir / "clock.json")
    scheduler.use_state_file(settings.data_dir / "scheduler.json")
    meter.open(settings.data_dir / "meter.db")
    if settings.metadata is not None:
        share(settings)


_shared: list = []  # the SharedSim of a server started with --metadata (closed at exit)


def share(settings: Settings) -> None:
    """`--metadata postgresql://...`: one clock and one owner of the shared time-driven rules for
    every gateway on that database; say what runs on the engine host only (strata.gateway.engine_host)."""
    from strata.config import redact_url
    from strata.sim.meter import SCHEMA as METER_SCHEMA
    from strata.storage import shared_faults, shared_tallies
    from strata.storage.coordination import SharedSim
    from strata.storage.postgres import PostgresStore
    from strata.storage.shared import ON_ENGINE_HOST

    url = settings.metadata or ""
    sim = SharedSim(url)
    _shared.append(sim)
    clock.share(sim, asyncio.get_running_loop().call_soon_threadsafe)
    scheduler.share(sim, settle=meter.flush)
    events = PostgresStore(url, "meter", schema=METER_SCHEMA + shared_tallies.SCHEMA, pool_size=2)
    _shared.append(events)
    meter.share(events)
    # every gateway's requests in CloudWatch's request metrics, every gateway under FIS's faults
    tallies = shared_tallies.tallies = shared_tallies.SharedTallies(events)
    tallies.start()
    _shared.append(tallies)
    faults = shared_faults.sharing = shared_faults.FaultSharing(sim)
    faults.start()
    _shared.append(faults)
    log.warning(
        "--metadata: shared by every gateway on %s: S3, DynamoDB, IAM/STS, KMS, S3 Control, console "
        "sign-ins, the meter, the clock and the scheduler (one owner at a time); object bytes under --blob-dir",
        redact_url(url),
    )
    for service, why in ON_ENGINE_HOST.items():
        log.warning(
            "--metadata: %s runs on the engine host (one gateway at a time; the others forward to it), "
            "state under %s: %s",
            service,
            settings.engines_dir,
            why,
        )


def banner(settings: Settings) -> str:
    creds = settings.all_credentials()
    key = next(iter(creds), None)
    account = f"  account    {settings.account_id}"
    if settings.users_file:
        account += f" (accounts and keys from {settings.users_file})"
    if key is None:
        keys = "  access key see the users file\n"
        use = (
            f"  use it:    export AWS_ENDPOINT_URL={settings.endpoint} AWS_DEFAULT_REGION={settings.region}\n"
        )
    else:
        secret = "test" if creds[key] == "test" else "..."
        keys = f"  access key {key} / secret {'test' if creds[key] == 'test' else '(configured)'}\n"
        use = (
            f"  use it:    export AWS_ENDPOINT_URL={settings.endpoint} AWS_ACCESS_KEY_ID={key} "
            f"AWS_SECRET_ACCESS_KEY={secret} AWS_DEFAULT_REGION={settings.region}\n"
        )
    return (
        f"Strata is serving on {settings.endpoint}\n"
        f"  region     {settings.region}\n"
        f"{account}\n"
        f"{keys}"
        f"  data dir   {settings.data_dir}\n"
        f"{use}"
        f"  S3 virtual-hosted style: http://<bucket>.s3.localhost.localstack.cloud:{settings.port} "
        "(that name resolves to 127.0.0.1)"
        + (
            f"\n  https:     {settings.https_endpoint} (trust its CA: "
            f"AWS_CA_BUNDLE={settings.data_dir / 'tls' / 'ca.pem'})"
            if settings.https_endpoint
            else ""
        )
    )


async def serve_async(settings: Settings) -> int:
    """Serve until SIGINT/SIGTERM; the process's exit status (1: it could not start).

    A failure is returned, not raised as SystemExit: a SystemExit raised inside the loop's task
    left the loop waiting forever in the clean-up below (the scheduler's cancelled task was never
    stepped again), so a Strata whose port was taken logged the error and hung instead of exiting."""
    from strata.gateway.app import StrataApp
    from strata.gateway.http1 import HttpServer
    from strata.gateway.http_limits import HttpLimits
    from strata.gateway.https import HttpsServer, server_context

    try:
        prepare(settings)
    except (ConfigError, ClockStateError) as e:
        log.error("cannot start: %s", e)
        raise SystemExit(1) from None
    app = StrataApp(settings)
    # Everything built so far (service models, compiled codecs, providers) lives as long as the
    # server: move it out of the collector's view, so a full collection, when one comes, only
    # walks what requests allocate instead of pausing the loop for the whole model graph.
    gc.collect()
    gc.freeze()
    loop = asyncio.get_running_loop()
    if pin_serving_thread(settings.cpu_affinity) is not None:
        # run_blocking's work (file copies, slow SQL, engine commands) may use every CPU.
        loop.set_default_executor(
            ThreadPoolExecutor(thread_name_prefix="strata-blocking", initializer=unpin_thread)
        )
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    limits = HttpLimits(
        header_timeout=settings.http_header_timeout,
        body_timeout=settings.http_body_timeout,
        idle_timeout=settings.http_idle_timeout,
        send_timeout=settings.http_send_timeout,
        max_connections_per_ip=settings.max_connections_per_ip,
    )
    servers = [HttpServer(app.handle, settings.host, settings.port, backlog=1024, limits=limits)]
    if settings.tls_port is not None:
        https = HttpsServer(
            app.handle,
            settings.host,
            settings.tls_port,
            server_context(settings),
            backlog=1024,
            limits=limits,
        )
        https.per_ip = servers[0].per_ip  # one connection cap per client address, on both ports
        servers.append(https)
    try:
        try:
            await app.start()
        except Exception:
            log.exception("start-up failed")
            return 1
        started: list[HttpServer] = []
        for server in servers:  # every port bound before any is served: all or nothing
            try:
                await server.start(serving=False)
            except OSError as e:
                option = "--tls-port (0 or off: no HTTPS)" if server.ssl else "--port"
                log.error("cannot listen on %s:%s (%s): %s", settings.host, server.port, option, e)
                for other in started:
                    await other.stop()
                return 1
            started.append(server)
        for server in servers:
            await server.serve()
        print(banner(settings), flush=True)
        await stopping.wait()
        await asyncio.gather(*(server.stop() for server in servers))
        return 0
    finally:
        await app.stop()
        meter.close()
        while _shared:
            _shared.pop().close()


def serve(settings: Settings) -> None:
    # Everything Strata and its engines create is readable by its owner only (objects, items,
    # SQLite files, engine configs holding passwords); engines inherit the mask.
    os.umask(0o077)
    logging.basicConfig(
        level=logging.INFO if settings.access_log else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    if settings.metadata:  # reads in the PostgreSQL store's read threads: see GIL_SWITCH
        from strata.storage.postgres import GIL_SWITCH

        sys.setswitchinterval(GIL_SWITCH)
    import uvloop

    status = uvloop.run(serve_async(settings))
    if status:
        sys.exit(status)
