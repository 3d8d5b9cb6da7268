"""One line per request: service, operation, status, duration."""

from __future__ import annotations

import logging

access_log = logging.getLogger("strata.access")


def log_request(service: str, operation: str, status: int, duration_ms: float, request_id: str) -> None:
    if access_log.isEnabledFor(logging.INFO):
        access_log.info("%s %s %d %.1fms %s", service, operation, status, duration_ms, request_id)
