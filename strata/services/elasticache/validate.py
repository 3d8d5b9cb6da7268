"""ElastiCache input rules: identifiers, engines, node types, auth tokens, counts.

The tables here are the one place each limit lives; validators raise the documented faults.
"""

from __future__ import annotations

import re

from strata.services.elasticache.errors import combination, fault, invalid

ENGINES = ("redis", "valkey", "memcached")
REDIS_LIKE = ("redis", "valkey")
DEFAULT_PORTS = {"redis": 6379, "valkey": 6379, "memcached": 11211}
DEFAULT_NODE_TYPE = "cache.t3.micro"

# Memory of a node type in MiB (AWS's published figures, rounded); unknown sizes fall back by size name.
NODE_MEMORY_MB = {
    "cache.t2.micro": 555,
    "cache.t2.small": 1550,
    "cache.t2.medium": 3220,
    "cache.t3.micro": 512,
    "cache.t3.small": 1400,
    "cache.t3.medium": 3160,
    "cache.t4g.micro": 512,
    "cache.t4g.small": 1400,
    "cache.t4g.medium": 3160,
    "cache.m5.large": 6530,
    "cache.m6g.large": 6530,
    "cache.m7g.large": 6530,
    "cache.r5.large": 13380,
    "cache.r6g.large": 13380,
    "cache.r7g.large": 13380,
}
SIZE_MEMORY_MB = {"micro": 512, "small": 1400, "medium": 3160, "large": 6530, "xlarge": 13380}
_NODE_TYPE = re.compile(r"^cache\.[a-z][a-z0-9]*\.(micro|small|medium|large|[0-9]*xlarge)$")

# Identifiers: 1-40 (clusters) letters, digits, hyphens; a letter first; no '--'; no trailing '-'.
_ID = re.compile(r"^[a-zA-Z](?:[a-zA-Z0-9]|-(?!-))*$")
# AUTH tokens: 16-128 printable characters; of the specials only these are allowed.
_TOKEN = re.compile(r"^[A-Za-z0-9!&#$^<>\-]{16,128}$")

MAX_MEMCACHED_NODES = 40
MAX_CLUSTERS_PER_GROUP = 6  # a primary and up to 5 replicas
MAX_NODE_GROUPS = 90
MAX_SNAPSHOT_RETENTION = 35
AZ_SUFFIXES = "abcdef"


def identifier(value: str | None, what: str, max_len: int) -> str:
    """A valid identifier, lower-cased as ElastiCache stores it."""
    if not value:
        raise invalid(f"The parameter {what} must be provided and must not be blank.")
    if len(value) > max_len or not _ID.match(value) or value.endswith("-"):
        raise invalid(
            f"The parameter {what} is not a valid identifier. Identifiers must begin with a letter; "
            f"must contain only ASCII letters, digits, and hyphens; and must not end with a hyphen or "
            f"contain two consecutive hyphens; and be 1 to {max_len} characters long."
        )
    return value.lower()


def engine(value: str | None, default: str = "redis") -> str:
    name = (value or default).lower()
    if name not in ENGINES:
        raise invalid(f"Invalid value for parameter Engine: {value}. Valid values are: {', '.join(ENGINES)}")
    return name


def node_type(value: str | None) -> str:
    name = value or DEFAULT_NODE_TYPE
    if not _NODE_TYPE.match(name):
        raise invalid(f"Invalid CacheNodeType: {name}")
    return name


def node_memory_mb(name: str) -> int:
    if name in NODE_MEMORY_MB:
        return NODE_MEMORY_MB[name]
    size = name.rsplit(".", 1)[-1]
    if size.endswith("xlarge"):
        factor = int(size[: -len("xlarge")] or 1)
        return SIZE_MEMORY_MB["xlarge"] * factor
    return SIZE_MEMORY_MB.get(size, 1024)


def engine_version(requested: str | None, installed: str, eng: str) -> str:
    """The installed version when `requested` is absent or names it ("7", "7.x", "7.2", "7.2.4").

    Strata runs the one server it has installed per engine, so any other version is refused with
    ElastiCache's error instead of being recorded and ignored.
    """
    if requested:
        want = [p for p in requested.split(".") if p != "x"]
        if not want or want != installed.split(".")[: len(want)]:
            raise combination(f"Cannot find version {requested} for {eng}")
    return installed


def auth_token(token: str | None, transit_encryption: bool, eng: str) -> str | None:
    if token is None:
        return None
    if eng not in REDIS_LIKE:
        raise combination("The AuthToken parameter is only supported for Valkey and Redis OSS engines.")
    if not transit_encryption:
        raise invalid("The AUTH token is only supported when encryption-in-transit is enabled")
    if not _TOKEN.match(token):
        raise invalid(
            "Invalid AuthToken provided. The AUTH token must be 16 to 128 printable characters; the only "
            "permitted special characters are !, &, #, $, ^, <, >, and -."
        )
    return token


def retention(value: int | None) -> int:
    if value is None:
        return 0
    if not 0 <= value <= MAX_SNAPSHOT_RETENTION:
        raise invalid(
            f"Invalid SnapshotRetentionLimit: {value}. It must be between 0 and {MAX_SNAPSHOT_RETENTION}."
        )
    return value


def snapshot_window(value: str | None) -> str:
    if value is None:
        return "05:00-06:00"
    if not re.match(r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$", value):
        raise invalid(f"Invalid SnapshotWindow: {value}. Use the format hh24:mi-hh24:mi.")
    return value


def tags(value: list | None) -> list[dict]:
    out = []
    for tag in value or []:
        if not tag.get("Key"):
            raise invalid("Tag keys must not be empty.")
        out.append({"Key": tag["Key"], "Value": tag.get("Value", "")})
    if len(out) > 50:
        raise fault_tags()
    return out


def fault_tags():
    return fault(
        "TagQuotaPerResourceExceeded",
        "The request cannot be processed because it would cause the resource "
        "to have more than the allowed number of tags. The maximum number of tags permitted on a resource is 50.",
    )


def availability_zone(region: str, value: str | None, index: int, zones: list[str] | None = None) -> str:
    """The requested zone, or the zones of the region in turn; `zones`: those of the deployment's
    cache subnet group (a requested zone must be one of them)."""
    if value:
        if not value.startswith(region) or len(value) != len(region) + 1 or value[-1] not in AZ_SUFFIXES:
            raise invalid(f"Invalid availability zone: {value}")
        if zones and value not in zones:
            raise invalid(f"The cache subnet group has no subnet in availability zone {value}.")
        return value
    if zones:
        return zones[index % len(zones)]
    return f"{region}{AZ_SUFFIXES[index % 3]}"


def daily_time(value: str | None) -> str:
    """A DailySnapshotTime ("hh:mm", UTC)."""
    try:
        hours, minutes = (value or "").split(":")
        if len(hours) == 2 and len(minutes) == 2 and 0 <= int(hours) < 24 and 0 <= int(minutes) < 60:
            return value  # type: ignore[return-value]
    except ValueError:
        pass
    raise invalid(f"Invalid DailySnapshotTime: {value}. It must be in the format hh:mm (UTC).")
