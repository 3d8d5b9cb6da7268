"""Serverless caches' metering (a mixin of ElastiCacheProvider; the API is in serverless.py).

On every clock advance and at delete: `ServerlessStorageGBHours`, the engine's used memory (at
least the minimum: 1 GB, 100 MB for Valkey) times the hours; `ServerlessECPUs`, the proxy's
count when the cache has one, else the commands the engine processed or the kilobytes it moved,
whichever is more (AWS: 1 ECPU per simple command per KB transferred, at least 1).
DataStorage.Minimum and ECPUPerSecond.Minimum are billing floors.
"""

from __future__ import annotations

import logging
from datetime import datetime

import redis

from strata.engines.process import EngineError
from strata.engines.redis import RedisServer
from strata.services.elasticache.serverless_ecpu import ServerlessEcpuOperations
from strata.services.elasticache.serverless_nodes import GIB, engine_id, lead_node
from strata.sim.clock import clock
from strata.sim.meter import meter

log = logging.getLogger("strata.elasticache")

MIN_BILLED_GB = {"valkey": 0.1, "redis": 1.0, "memcached": 1.0}


class ServerlessMeterOperations(ServerlessEcpuOperations):
    """A mixin of ElastiCacheProvider."""

    def _meter_serverless(self, doc: dict) -> None:
        """Record storage GB-hours and ECPUs since the cache was last metered (the caller saves it)."""
        now = clock.now()
        since = datetime.fromisoformat(doc.get("metered_at") or doc["created"])
        seconds = max(0.0, (now - since).total_seconds())
        doc["metered_at"] = now.isoformat()
        if seconds <= 0:
            return
        server = self.engines.get(engine_id(doc["id"]), lead_node(doc))
        used, commands, moved = 0, 0, 0
        if server is not None and server.running():
            try:
                if isinstance(server, RedisServer):
                    used = server.used_memory()
                    stats = server.info("stats")
                    commands = int(stats.get("total_commands_processed", 0))
                    moved = int(stats.get("total_net_input_bytes", 0)) + int(
                        stats.get("total_net_output_bytes", 0)
                    )
                else:
                    stats = server.stats()
                    used = int(stats.get("bytes", 0))
                    commands = int(stats.get("cmd_get", 0)) + int(stats.get("cmd_set", 0))
                    moved = int(stats.get("bytes_read", 0)) + int(stats.get("bytes_written", 0))
            except (redis.RedisError, OSError, EngineError):
                log.warning("serverless cache %s: could not read its usage", doc["id"], exc_info=True)
        limits = doc.get("limits") or {}
        floor_gb = limits.get("DataStorage", {}).get("Minimum") or MIN_BILLED_GB[doc["engine"]]
        dims = {"engine": doc["engine"], "serverless_cache": doc["id"]}
        gb = max(used / GIB, float(floor_gb))
        meter.record("elasticache", "ServerlessStorageGBHours", gb * seconds / 3600, "GB-hour", **dims)
        base_commands, base_moved = doc.get("ecpu_base") or (0, 0)
        if commands < base_commands or moved < base_moved:  # the engine restarted: its counters too
            base_commands, base_moved = 0, 0
        doc["ecpu_base"] = [commands, moved]
        used_ecpus = max(commands - base_commands, (moved - base_moved) / 1024)
        counted = self._unmetered_ecpus(doc["id"])
        if counted is not None:  # the proxy counted them
            used_ecpus = counted
        floor_ecpu = limits.get("ECPUPerSecond", {}).get("Minimum", 0) * seconds
        ecpus = max(used_ecpus, floor_ecpu)
        if ecpus > 0:
            meter.record("elasticache", "ServerlessECPUs", ecpus, "ECPU", **dims)

    def _meter_all_serverless(self) -> None:
        """Every serverless cache's usage since it was last metered (the scheduler's rule; blocking)."""
        for doc in self.store.list_docs("serverless"):
            with self.store.acting_for(doc):
                if doc["status"] == "available":
                    self._meter_serverless(doc)
                    self.store.put_doc("serverless", doc["id"], doc)
