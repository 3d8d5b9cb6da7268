"""ElastiCache errors: the code and HTTP status of each fault come from the service model.

`fault("CacheClusterNotFoundFault", "CacheCluster c1 not found.")` raises with the wire code the
model names (here `CacheClusterNotFound`, 404), so no code or status is retyped by hand.
"""

from __future__ import annotations

from functools import cache

from strata.protocol.errors import ServiceError
from strata.protocol.spec import service_model


@cache
def _wire(shape: str) -> tuple[str, int]:
    meta = service_model("elasticache").shape_for(shape).metadata.get("error", {})
    return meta.get("code", shape), int(meta.get("httpStatusCode", 400))


def fault(shape: str, message: str) -> ServiceError:
    """The ServiceError for an error shape of the ElastiCache model."""
    code, status = _wire(shape)
    return ServiceError(code, message, status)


def invalid(message: str) -> ServiceError:
    return fault("InvalidParameterValueException", message)


def combination(message: str) -> ServiceError:
    return fault("InvalidParameterCombinationException", message)
