"""Faults injected by FIS experiments that the request paths consult: API faults (calls made with an
IAM role's sessions answered with the service's throttling, internal or unavailable error for a
share of them), paused EBS volume I/O (`IoPauses`, below) and services whose endpoint does not
answer (`ServiceOutages`, below).

The gateway asks `api_faults.error_for(...)` only while `api_faults.rules` is non-empty, so a
Strata with no experiment running pays one truthiness test per request. The share is spread
evenly rather than drawn at random: with `percentage` 50, every second matching call fails, so a
client's retries absorb it deterministically (and a test of that cannot flake).

Several gateways on one PostgreSQL (strata.storage.shared_faults): FIS runs on the engine host,
which injects faults here (`add`, `cut`: this gateway's own); `on_change` then publishes them, and
every gateway `adopt`s the faults published by the host (`rules` and `out` are both sets, read as
one dict by the hot path). Each gateway spreads a fault's percentage over the calls it serves.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# (code, message, HTTP status) per fault kind and service, as each service answers on AWS.
_QUERY = ("rds", "iam", "sts", "elasticache", "cloudwatch")
ERRORS: dict[str, dict[str, tuple[str, str, int]]] = {
    "throttle": {
        "s3": ("SlowDown", "Please reduce your request rate.", 503),
        "ec2": ("RequestLimitExceeded", "Request limit exceeded.", 503),
        "dynamodb": ("ThrottlingException", "Rate of requests exceeds the allowed throughput.", 400),
        **{s: ("Throttling", "Rate exceeded", 400) for s in _QUERY},
        "*": ("ThrottlingException", "Rate exceeded", 400),
    },
    "internal": {
        "s3": ("InternalError", "We encountered an internal error. Please try again.", 500),
        "ec2": ("InternalError", "An internal error has occurred.", 500),
        "dynamodb": ("InternalServerError", "Internal server error", 500),
        "*": ("InternalFailure", "The request processing has failed because of an unknown error.", 500),
    },
    "unavailable": {
        "s3": ("ServiceUnavailable", "Service is unable to handle request.", 503),
        "ec2": ("Unavailable", "The server is overloaded and can't handle the request.", 503),
        "*": ("ServiceUnavailable", "The service is unavailable. Please try again later.", 503),
    },
}


@dataclass
class ApiFault:
    """One injected fault: calls to `service` (any operation when `operations` is empty) signed
    with a session of one of `roles` fail `percentage` times in a hundred."""

    kind: str  # throttle | internal | unavailable
    service: str
    operations: frozenset[str]
    percentage: int
    roles: frozenset[str]
    _calls: int = field(default=0, repr=False)

    def matches(self, role_arn: str, service: str, operation: str) -> bool:
        return (
            service == self.service
            and role_arn in self.roles
            and (not self.operations or operation in self.operations)
        )

    def fails_next(self) -> bool:
        """Whether the next matching call fails: exactly `percentage` of every 100, evenly spread."""
        self._calls += 1
        n = self._calls
        return (n * self.percentage) // 100 > ((n - 1) * self.percentage) // 100

    def to_doc(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "service": self.service,
            "operations": sorted(self.operations),
            "percentage": self.percentage,
            "roles": sorted(self.roles),
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ApiFault:
        return cls(
            kind=str(doc["kind"]),
            service=str(doc["service"]),
            operations=frozenset(doc["operations"]),
            percentage=int(doc["percentage"]),
            roles=frozenset(doc["roles"]),
        )


def _no_change() -> None:
    return None


class ApiFaults:
    def __init__(self) -> None:
        self.rules: dict[str, ApiFault] = {}  # what applies: this gateway's own and the adopted
        self.own: dict[str, ApiFault] = {}
        self._adopted: dict[str, ApiFault] = {}
        self._lock = threading.Lock()
        self.on_change: Callable[[], None] = _no_change  # own faults changed (see the docstring)

    def add(self, key: str, fault: ApiFault) -> None:
        with self._lock:
            self.own = {**self.own, key: fault}
            self._combine()
        self.on_change()

    def remove(self, key: str) -> None:
        with self._lock:
            self.own = {k: v for k, v in self.own.items() if k != key}
            self._combine()
        self.on_change()

    def adopt(self, docs: dict[str, dict[str, Any]]) -> None:
        """The faults another gateway (the engine host) injects now, as published; a fault
        already applied keeps its count of calls (its percentage stays evenly spread)."""
        with self._lock:
            before = self._adopted
            self._adopted = {k: before.get(k) or ApiFault.from_doc(d) for k, d in docs.items()}
            self._combine()

    def _combine(self) -> None:
        self.rules = {**self._adopted, **self.own}

    def error_for(self, role_arn: str, service: str, operation: str) -> tuple[str, str, int] | None:
        """The (code, message, status) this call must fail with, or None to serve it."""
        for fault in self.rules.values():
            if fault.matches(role_arn, service, operation) and fault.fails_next():
                table = ERRORS[fault.kind]
                return table.get(service) or table["*"]
        return None


api_faults = ApiFaults()


class IoPauses:
    """EBS volumes whose I/O is paused (FIS aws:ebs:pause-volume-io): the NBD data path holds
    every request on such a volume until no pause names it any more.

    The data path asks `wait(volume)` only while `paused` is non-empty, so with no experiment
    running a request pays one truthiness test."""

    def __init__(self) -> None:
        self.paused: dict[str, frozenset[str]] = {}  # pause key -> volume ids
        self._changed = threading.Condition()

    def pause(self, key: str, volumes: frozenset[str]) -> None:
        with self._changed:
            self.paused = {**self.paused, key: volumes}

    def resume(self, key: str) -> None:
        with self._changed:
            self.paused = {k: v for k, v in self.paused.items() if k != key}
            self._changed.notify_all()

    def holds(self, volume: str) -> bool:
        return any(volume in volumes for volumes in self.paused.values())

    def wait(self, volume: str, gone: Callable[[], bool]) -> bool:
        """Block the calling (data path) thread while the volume's I/O is paused; False if
        `gone()` (the connection was shut down meanwhile) ended the wait instead."""
        with self._changed:
            while self.holds(volume):
                if gone():
                    return False
                self._changed.wait(0.25)
        return True


io_pauses = IoPauses()


class ServiceOutages:
    """Services whose endpoint is cut off (FIS aws:network:disrupt-connectivity, scope dynamodb or
    s3): the gateway holds each request to such a service until the outage ends, then drops its
    connection unanswered, so a client sees what a denied network path gives it: no answer (its
    timeout), and a request that never reached the service.

    The gateway asks only while `out` is non-empty: one truthiness test per request otherwise."""

    def __init__(self) -> None:
        self.out: dict[str, frozenset[str]] = {}  # outage key -> service names (own and adopted)
        self.own: dict[str, frozenset[str]] = {}
        self._adopted: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()
        self.on_change: Callable[[], None] = _no_change  # own outages changed (see the docstring)

    def cut(self, key: str, services: frozenset[str]) -> None:
        with self._lock:
            self.own = {**self.own, key: services}
            self.out = {**self._adopted, **self.own}
        self.on_change()

    def restore(self, key: str) -> None:
        with self._lock:
            self.own = {k: v for k, v in self.own.items() if k != key}
            self.out = {**self._adopted, **self.own}
        self.on_change()

    def adopt(self, outages: dict[str, list[str]]) -> None:
        """The outages another gateway (the engine host) has cut now, as published."""
        with self._lock:
            self._adopted = {k: frozenset(v) for k, v in outages.items()}
            self.out = {**self._adopted, **self.own}

    def down(self, service: str) -> bool:
        return any(service in services for services in self.out.values())

    async def wait_out(self, service: str) -> None:
        """Return once `service` answers again (polled: an outage lasts seconds to hours)."""
        while self.down(service):
            await asyncio.sleep(0.2)


service_outages = ServiceOutages()
