"""FIS faults on every gateway: what the engine host injects, every gateway applies.

FIS runs on the engine host (strata.gateway.engine_host), so its experiments inject API faults
and service outages there (strata.sim.faults: `add`, `cut`). With several gateways on one
PostgreSQL a client's requests reach any of them, so the host publishes the faults it injects
now, as one document of the `sim` store, whenever they change (a thread of its own writes it:
the FIS runner, on the event loop, never waits for PostgreSQL), and NOTIFYs; every other gateway's
follower connection (strata.storage.coordination) hears it and `adopt`s the document within
milliseconds. The request path reads memory only, as on one gateway.

An action's end (its duration, StopExperiment, a failure) removes its fault on the host, which
publishes again: gone everywhere. A host that dies leaves its last document behind: the gateway
that takes the engines over publishes its own faults (none yet) at once (`claim`), which ends the
dead host's everywhere, as its experiments ended with it. The host adopts no document (it is the
one that publishes; its own faults are in memory already), nor does a gateway adopt the one it
published itself.
"""

from __future__ import annotations

import logging
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from strata.sim.faults import api_faults, service_outages

log = logging.getLogger("strata")


class FaultSharing:
    """This gateway's part: publish its own faults, adopt the host's (see the module docstring)."""

    def __init__(self, sim: Any) -> None:
        self.sim = sim  # strata.storage.coordination.SharedSim
        self.me = secrets.token_hex(8)  # this process, as the publisher of a document
        # one writer, each write taking the faults as they are when it runs: the last write
        # published is always the current state, however quickly they changed
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="strata-faults")
        self.hosting = False  # this gateway is the engine host (`claim`): it adopts nothing
        self.lock = threading.Lock()  # an adoption (the follower's thread) against `claim`

    def start(self) -> None:
        api_faults.on_change = service_outages.on_change = self.publish
        self.sim.watch_faults(self._adopt)

    def publish(self) -> None:
        """This gateway's own faults changed: publish them (soon, in the writer thread)."""
        self._writer.submit(self._write)

    def _write(self) -> None:
        body = {
            "by": self.me,
            "api": {key: fault.to_doc() for key, fault in api_faults.own.items()},
            "outages": {key: sorted(services) for key, services in service_outages.own.items()},
        }
        try:
            self.sim.publish_faults(body)
        except Exception as e:  # noqa: BLE001 - the database is away: the next change publishes
            log.warning("cannot publish the injected faults to the other gateways: %s", e)

    def _adopt(self, body: dict) -> None:
        with self.lock:
            if self.hosting or body.get("by") == self.me:
                return
            api_faults.adopt(dict(body.get("api") or {}))
            service_outages.adopt(dict(body.get("outages") or {}))

    def close(self) -> None:
        api_faults.on_change = service_outages.on_change = _nothing
        self._writer.shutdown(wait=True)


def _nothing() -> None:
    return None


sharing: FaultSharing | None = None  # with --metadata (strata.server.share)


def claim() -> None:
    """This gateway just became the engine host: its faults (none yet) are the ones that apply."""
    if sharing is not None:
        with sharing.lock:
            sharing.hosting = True
            api_faults.adopt({})  # the last host's, adopted while this gateway forwarded: ended too
            service_outages.adopt({})
        sharing.publish()
