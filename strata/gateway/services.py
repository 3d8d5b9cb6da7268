"""The table of running services: each provider built once, started and stopped with the server."""

from __future__ import annotations

import logging
from typing import Any

from strata.config import Settings
from strata.protocol.errors import ServiceError
from strata.protocol.spec import service_model
from strata.services.base import ServiceRuntime
from strata.services.registry import SERVICES, load_provider_class

log = logging.getLogger("strata")


class ServiceTable:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._providers: dict[str, Any] = {}
        # A service whose provider failed to load or start is reported (health, 503) while the
        # others keep serving.
        self._failed: dict[str, str] = {}
        self._protocols = {name: service_model(name).protocol for name in SERVICES}
        for name, info in SERVICES.items():
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

    def protocol(self, service: str) -> str:
        return self._protocols[service]

    def provider(self, service: str) -> Any | None:
        if service in self._failed:
            raise ServiceError("ServiceUnavailable", f"The {service} service failed to start", 503)
        return self._providers.get(service)

    async def start(self) -> None:
        for name, provider in list(self._providers.items()):
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

    def health(self) -> dict[str, str]:
        states = {}
        for name in SERVICES:
            provider = self._providers.get(name)
            if name in self._failed:
                states[name] = self._failed[name]
            elif provider is None:
                states[name] = "not implemented"
            else:
                health = getattr(provider, "health", None)
                states[name] = health() if health else "running"
        return states
