"""The table of running services: each provider built once, started and stopped with the server.

With --metadata the engine services (strata.storage.shared.ON_ENGINE_HOST) are built only on the
engine host, when it becomes one (`host_engines`), with their state under the shared
`settings.engines_dir`: building one restores its engines, which one gateway at a time may run
(strata.gateway.engine_host). Without it they are built with the others, under --data-dir.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from strata.config import Settings
from strata.protocol.errors import ServiceError
from strata.protocol.spec import service_model
from strata.services.base import ServiceRuntime
from strata.services.registry import SERVICES, ServiceInfo, load_provider_class
from strata.sim.scheduler import scheduler
from strata.storage.shared import ON_ENGINE_HOST

log = logging.getLogger("strata")


class ServiceTable:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._providers: dict[str, Any] = {}
        # A service whose provider failed to load or start is reported (health, 503) while the
        # others keep serving.
        self._failed: dict[str, str] = {}
        self._protocols = {name: service_model(name).protocol for name in SERVICES}
        # engine services waiting for this gateway to become the engine host (with --metadata)
        self.deferred = [name for name in SERVICES if name in ON_ENGINE_HOST] if settings.metadata else []
        for name, info in SERVICES.items():
            if name not in self.deferred:
                self._build(name, info, settings)

    def _build(self, name: str, info: ServiceInfo, settings: Settings) -> None:
        try:
            cls = load_provider_class(info)
            if cls is not None:
                runtime = ServiceRuntime(
                    name=name,
                    settings=settings,
                    data_dir=settings.service_dir(name),
                    peer=self._providers.get,
                )
                self._providers[name] = cls(runtime)
        except Exception as e:  # noqa: BLE001 - isolate one broken service from the rest
            log.exception("service %s failed to load", name)
            self._failed[name] = f"failed: {e}"

    async def host_engines(self) -> None:
        """Build and start the engine services here (this gateway became the engine host): their
        normal restart path, from the state the last host left under `settings.engines_dir`. The
        settings they get name that directory as their data dir, so everything they keep (the
        engines' ports table and the TLS authority ElastiCache clients trust included) is there;
        so is the progress of the time-driven rules they register, which a new host goes on from."""
        deferred, self.deferred = self.deferred, []
        root = self.settings.engines_dir
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        # (blob_dir set: their engines_dir is then this tree too, where the engine address pool's
        # record is: Settings.engine_addresses_record)
        settings = dataclasses.replace(
            self.settings, data_dir=root, blob_dir=self.settings.blob_dir or self.settings.data_dir
        )
        progress = root / "scheduler.json"
        before = scheduler.rule_names()
        scheduler.adopt_progress(progress)
        for name in deferred:
            self._build(name, SERVICES[name], settings)
        await self._start([name for name in deferred if name in self._providers])
        scheduler.keep_progress(scheduler.rule_names() - before, progress)

    def protocol(self, service: str) -> str:
        return self._protocols[service]

    def provider(self, service: str) -> Any | None:
        if service in self._failed:
            raise ServiceError("ServiceUnavailable", f"The {service} service failed to start", 503)
        return self._providers.get(service)

    async def start(self) -> None:
        await self._start(list(self._providers))

    async def _start(self, names: list[str]) -> None:
        for name in names:
            provider = self._providers[name]
            start = getattr(provider, "start", None)
            if start is not None:
                log.debug("starting %s", name)
                try:
                    await start()
                except Exception as e:  # noqa: BLE001 - isolate one broken service from the rest
                    log.exception("service %s failed to start", name)
                    self._failed[name] = f"failed: {e}"
                    del self._providers[name]

    async def stop(self) -> None:
        for name, provider in reversed(list(self._providers.items())):
            stop = getattr(provider, "stop", None)
            if stop is not None:
                try:
                    await stop()
                except Exception:  # noqa: BLE001 - stop the others regardless
                    log.exception("stopping %s failed", name)

    def health(self, into: dict[str, str] | None = None) -> dict[str, str]:
        """Every service's state, by name. Each goes into `into` as soon as it is known, so one who
        stopped waiting for a slow check (strata.gateway.admin) still has those read before it.
        A check that fails is that service's state ("error: ..."), not the end of the others'."""
        states = {} if into is None else into
        for name in SERVICES:
            known = self.known_state(name)
            if known is not None:
                states[name] = known
                continue
            try:
                states[name] = self._providers[name].health()
            except Exception as e:  # noqa: BLE001 - reported as the service's state
                states[name] = f"error: {e}"
        return states

    def known_state(self, name: str) -> str | None:
        """A service's state when reading it runs no check (None: its provider's `health` says)."""
        provider = self._providers.get(name)
        if name in self._failed:
            return self._failed[name]
        if name in self.deferred:
            return "on the engine host"
        if provider is None:
            return "not implemented"
        return None if hasattr(provider, "health") else "running"
