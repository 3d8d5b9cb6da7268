"""Run the Strata ASGI app under granian, embedded in our own asyncio (uvloop) event loop.

Embedding keeps one process: engines supervised by providers are children of this process, and
start-up/shutdown hooks run in the same loop as requests. granian was chosen by measurement
(DESIGN.md performance notes): fastest small-request rate and zero-copy file responses (pathsend).
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
    key = next(iter(creds))
    return (
        f"Strata is serving on {settings.endpoint}\n"
        f"  region     {settings.region}\n"
        f"  account    {settings.account_id}\n"
        f"  access key {key} / secret {'test' if creds[key] == 'test' else '(configured)'}\n"
        f"  data dir   {settings.data_dir}\n"
        f"  use it:    export AWS_ENDPOINT_URL={settings.endpoint} AWS_ACCESS_KEY_ID={key} "
        f"AWS_SECRET_ACCESS_KEY={'test' if creds[key] == 'test' else '...'} AWS_DEFAULT_REGION={settings.region}\n"
        f"  S3 virtual-hosted style: http://<bucket>.s3.localhost.localstack.cloud:{settings.port} "
        "(that name resolves to 127.0.0.1)"
    )


async def serve_async(settings: Settings) -> None:
    from granian.constants import Interfaces
    from granian.server.embed import Server

    from strata.gateway.app import StrataApp

    prepare(settings)
    app = StrataApp(settings)
    # Everything built so far (service models, compiled codecs, providers) lives as long as the
    # server: move it out of the collector's view, so a full collection, when one comes, only
    # walks what requests allocate instead of pausing the loop for the whole model graph.
    gc.collect()
    gc.freeze()
    # Before granian starts its threads, so they inherit the pin (see strata.affinity).
    if pin_serving_thread(settings.cpu_affinity) is not None:
        # run_blocking's work (file copies, slow SQL, engine commands) may use every CPU.
        loop = asyncio.get_running_loop()
        loop.set_default_executor(
            ThreadPoolExecutor(thread_name_prefix="strata-blocking", initializer=unpin_thread)
        )
    server = Server(
        app,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        log_enabled=False,
        backlog=1024,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.stop)
    print(banner(settings), flush=True)
    try:
        await server.serve()
    finally:
        meter.close()


def serve(settings: Settings) -> None:
    logging.basicConfig(
        level=logging.INFO if settings.access_log else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("granian").setLevel(logging.WARNING)
    import uvloop

    uvloop.run(serve_async(settings))
