"""Run Strata: one process, one uvloop event loop serving HTTP (strata.gateway.http1).

One process: engines supervised by providers are children of this process, and start-up/shutdown
hooks run in the same loop as requests. The HTTP server was chosen by measurement with the serving
thread pinned (see strata.gateway.http1 for the numbers).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from concurrent.futures import ThreadPoolExecutor

from strata.affinity import pin_serving_thread, unpin_thread
from strata.config import Settings
from strata.sim.clock import clock
from strata.sim.meter import meter

log = logging.getLogger("strata")


def prepare(settings: Settings) -> None:
    """Open the data directory's shared state (clock offset, meter) before serving."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.all_credentials()  # refuses a public bind with default credentials, before any work
    clock.use_state_file(settings.data_dir / "clock.json")
    meter.open(settings.data_dir / "meter.db")


def banner(settings: Settings) -> str:
    creds = settings.all_credentials()
    key = next(iter(creds), None)
    account = f"  account    {settings.account_id}"
    if settings.users_file:
        account += f" (accounts and keys from {settings.users_file})"
    if key is None:
        keys = "  access key see the users file\n"
        use = f"  use it:    export AWS_ENDPOINT_URL={settings.endpoint} AWS_DEFAULT_REGION={settings.region}\n"
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
    )


async def serve_async(settings: Settings) -> None:
    from strata.gateway.app import StrataApp
    from strata.gateway.http1 import HttpServer

    prepare(settings)
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
    server = HttpServer(app.handle, settings.host, settings.port, backlog=1024)
    try:
        try:
            await app.start()
        except Exception:
            log.exception("start-up failed")
            raise SystemExit(1) from None
        try:
            await server.start()
        except OSError as e:
            log.error("cannot listen on %s:%s: %s", settings.host, settings.port, e)
            raise SystemExit(1) from None
        print(banner(settings), flush=True)
        await stopping.wait()
        await server.stop()
    finally:
        await app.stop()
        meter.close()


def serve(settings: Settings) -> None:
    logging.basicConfig(
        level=logging.INFO if settings.access_log else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    import uvloop

    uvloop.run(serve_async(settings))
