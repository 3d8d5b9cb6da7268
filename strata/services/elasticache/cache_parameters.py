"""ElastiCache's cache parameters per parameter group family, and how each reaches the engine.

The names, defaults, types, allowed values and change types are ElastiCache's (its user guide,
"Engine specific parameters"), limited to the families of the engines Strata runs (redis7,
valkey7, valkey8, memcached1.6) and to what Strata can honour:

- `config`: a Redis/Valkey setting of the same name, written to redis.conf and changed on the
  running nodes with CONFIG SET (ChangeType immediate);
- `output-buffer`: one number of Redis's composite `client-output-buffer-limit <class> h s sec`;
- `memory`: ElastiCache's reserved memory (`reserved-memory-percent`, `reserved-memory`), applied
  as the engine's `maxmemory` (node memory less the reservation, as AWS's INFO shows it);
- `creation`: fixed when the group is first used (`databases`, `cluster-enabled`): modifiable
  while no cluster uses the group, as on ElastiCache;
- `fixed`: listed with the value Strata runs; any other value is refused, since the engine
  cannot do it here (e.g. `activedefrag`: the installed servers have no defragmenting jemalloc);
- `fixed-config`: as `fixed`, and written to redis.conf so the engine runs that value
  (`maxclients`: AWS's 65000, or fewer where the machine's open-file limit allows fewer);
- `flag`: a memcached command-line option (every memcached change waits for a reboot, as on AWS).

A name outside the table is answered as ElastiCache answers an unknown parameter.
"""

from __future__ import annotations

import re
import resource
from dataclasses import dataclass

from strata.services.elasticache.errors import combination, invalid

IMMEDIATE = "immediate"
REBOOT = "requires-reboot"
YES_NO = "yes,no"
MAX_CHANGES = 20  # per ModifyCacheParameterGroup request


@dataclass(frozen=True)
class CacheParameter:
    name: str
    default: str
    data_type: str  # integer | string | boolean | float
    allowed: str  # AWS's AllowedValues text ("" when any)
    description: str
    apply: str = "config"
    change: str = IMMEDIATE
    minimum_version: str = "2.6.13"

    @property
    def modifiable(self) -> bool:
        return self.apply not in ("fixed", "fixed-config")


def _p(name, default, data_type, allowed, description, apply="config", change=IMMEDIATE, version="2.6.13"):
    return CacheParameter(name, default, data_type, allowed, description, apply, change, version)


_POLICIES = (
    "volatile-lru,allkeys-lru,volatile-lfu,allkeys-lfu,volatile-random,allkeys-random,volatile-ttl,noeviction"
)

_REDIS_COMMON = [
    _p(
        "acllog-max-len",
        "128",
        "integer",
        "1-10000",
        "The maximum number of entries in the ACL log.",
        version="6.0.0",
    ),
    _p("active-defrag-cycle-max", "75", "integer", "1-75", "Maximal effort for defrag in CPU percentage."),
    _p("active-defrag-cycle-min", "5", "integer", "1-75", "Minimal effort for defrag in CPU percentage."),
    _p(
        "active-defrag-ignore-bytes",
        "104857600",
        "integer",
        "1048576-",
        "Minimum amount of fragmentation waste to start active defrag.",
    ),
    _p(
        "active-defrag-max-scan-fields",
        "1000",
        "integer",
        "1-1000000",
        "Maximum number of set/hash/zset/list fields processed from the main dictionary scan.",
    ),
    _p(
        "active-defrag-threshold-lower",
        "10",
        "integer",
        "1-100",
        "Minimum percentage of fragmentation to start active defrag.",
    ),
    _p(
        "active-defrag-threshold-upper",
        "100",
        "integer",
        "1-100",
        "Maximum percentage of fragmentation at which maximum effort is used.",
    ),
    _p(
        "active-expire-effort",
        "1",
        "integer",
        "1-10",
        "The amount of effort spent expiring keys in the periodic job.",
        version="6.0.0",
    ),
    _p("activedefrag", "no", "string", YES_NO, "Enables active defragmentation.", apply="fixed"),
    _p("activerehashing", "yes", "string", YES_NO, "Apply rehashing or not.", apply="fixed"),
    _p(
        "client-output-buffer-limit-normal-hard-limit",
        "0",
        "integer",
        "0-",
        "Normal clients are disconnected when their output buffer reaches this many bytes.",
        apply="output-buffer",
    ),
    _p(
        "client-output-buffer-limit-normal-soft-limit",
        "0",
        "integer",
        "0-",
        "Normal clients are disconnected when their output buffer stays at this many bytes for the soft seconds.",
        apply="output-buffer",
    ),
    _p(
        "client-output-buffer-limit-normal-soft-seconds",
        "0",
        "integer",
        "0-",
        "Seconds a normal client's output buffer may stay at the soft limit.",
        apply="output-buffer",
    ),
    _p(
        "client-output-buffer-limit-pubsub-hard-limit",
        "33554432",
        "integer",
        "0-",
        "Pub/sub clients are disconnected when their output buffer reaches this many bytes.",
        apply="output-buffer",
    ),
    _p(
        "client-output-buffer-limit-pubsub-soft-limit",
        "8388608",
        "integer",
        "0-",
        "Pub/sub clients are disconnected when their output buffer stays at this many bytes for the soft seconds.",
        apply="output-buffer",
    ),
    _p(
        "client-output-buffer-limit-pubsub-soft-seconds",
        "60",
        "integer",
        "0-",
        "Seconds a pub/sub client's output buffer may stay at the soft limit.",
        apply="output-buffer",
    ),
    _p(
        "client-query-buffer-limit",
        "1073741824",
        "integer",
        "1048576-1073741824",
        "Max size of a single client query buffer.",
        version="4.0.10",
    ),
    _p(
        "cluster-allow-pubsubshard-when-down",
        "yes",
        "string",
        YES_NO,
        "Serve shard pub/sub while the cluster is down, for slots the node owns.",
        version="7.0.0",
    ),
    _p(
        "cluster-allow-reads-when-down",
        "no",
        "string",
        YES_NO,
        "Serve reads while the cluster is down.",
        version="6.0.0",
    ),
    _p(
        "cluster-enabled",
        "no",
        "string",
        YES_NO,
        "Whether this is a cluster-mode-enabled replication group.",
        apply="creation",
        change=REBOOT,
        version="3.2.4",
    ),
    _p(
        "cluster-require-full-coverage",
        "no",
        "string",
        YES_NO,
        "Stop accepting queries when a hash slot is not covered.",
        version="3.2.4",
    ),
    _p(
        "databases",
        "16",
        "integer",
        "1-1200000",
        "Set the number of databases.",
        apply="creation",
        change=REBOOT,
    ),
    _p(
        "hll-sparse-max-bytes",
        "3000",
        "integer",
        "1-16000",
        "HyperLogLog sparse representation bytes limit.",
        version="3.2.4",
    ),
    _p(
        "hash-max-listpack-entries",
        "512",
        "integer",
        "0-",
        "The maximum number of hash entries for the compact encoding.",
        version="7.0.0",
    ),
    _p(
        "hash-max-listpack-value",
        "64",
        "integer",
        "0-",
        "The largest hash entry, in bytes, for the compact encoding.",
        version="7.0.0",
    ),
    _p(
        "latency-tracking",
        "no",
        "string",
        YES_NO,
        "Track per-command latencies for INFO latencystats.",
        version="7.0.0",
    ),
    _p(
        "lfu-decay-time",
        "1",
        "integer",
        "0-",
        "The minutes after which the LFU key counter is decremented.",
        version="4.0.10",
    ),
    _p("lfu-log-factor", "10", "integer", "1-", "The log factor of the LFU key counter.", version="4.0.10"),
    _p(
        "list-compress-depth",
        "0",
        "integer",
        "0-",
        "Number of list nodes at each end left uncompressed.",
        version="3.2.4",
    ),
    _p(
        "list-max-listpack-size",
        "-2",
        "integer",
        "-5-",
        "The number of entries allowed per internal list node.",
        version="7.0.0",
    ),
    _p(
        "lua-time-limit",
        "5000",
        "integer",
        "5000",
        "Max execution time of a Lua script in milliseconds.",
        apply="fixed",
    ),
    _p("maxmemory-policy", "volatile-lru", "string", _POLICIES, "Max memory policy."),
    _p("maxmemory-samples", "3", "integer", "1-64", "Max memory samples."),
    _p(
        "min-replicas-max-lag",
        "10",
        "integer",
        "0-",
        "The seconds within which a replica must ping the primary to count.",
        version="5.0.0",
    ),
    _p(
        "min-replicas-to-write",
        "0",
        "integer",
        "0-",
        "The replicas that must be connected for the primary to accept writes.",
        version="5.0.0",
    ),
    _p(
        "notify-keyspace-events",
        "",
        "string",
        "",
        "The keyspace events for Redis to notify Pub/Sub clients about.",
        version="2.8.6",
    ),
    _p(
        "proto-max-bulk-len",
        "536870912",
        "integer",
        "1048576-536870912",
        "Max size of a single element request.",
        version="4.0.10",
    ),
    _p(
        "repl-backlog-size",
        "1048576",
        "integer",
        "16384-",
        "The replication backlog size in bytes.",
        version="2.8.6",
    ),
    _p(
        "repl-backlog-ttl",
        "3600",
        "integer",
        "0-",
        "The seconds the primary keeps the backlog after the last replica disconnected.",
        version="2.8.6",
    ),
    _p(
        "reserved-memory",
        "0",
        "integer",
        "0-",
        "The bytes of a node's memory reserved for nondata use.",
        apply="memory",
    ),
    _p(
        "reserved-memory-percent",
        "25",
        "integer",
        "0-100",
        "The percent of a node's memory reserved for nondata use.",
        apply="memory",
        version="3.2.4",
    ),
    _p(
        "set-max-intset-entries",
        "512",
        "integer",
        "0-",
        "The maximum number of set entries for the integer-set encoding.",
    ),
    _p(
        "slowlog-log-slower-than",
        "10000",
        "integer",
        "0-",
        "The execution time, in microseconds, over which commands are logged.",
    ),
    _p("slowlog-max-len", "128", "integer", "0-", "The maximum length of the slow log."),
    _p(
        "stream-node-max-bytes",
        "4096",
        "integer",
        "0-",
        "The maximum size in bytes of a single stream node.",
        version="5.0.0",
    ),
    _p(
        "stream-node-max-entries",
        "100",
        "integer",
        "0-",
        "The maximum number of items a single stream node holds.",
        version="5.0.0",
    ),
    _p(
        "tcp-keepalive",
        "300",
        "integer",
        "0-",
        "Close the connection if the client is idle for the given seconds (keepalive probes).",
    ),
    _p(
        "timeout",
        "0",
        "integer",
        "0,20-",
        "Close the connection if a client is idle for this many seconds (0: never).",
    ),
    _p(
        "tracking-table-max-keys",
        "1000000",
        "integer",
        "1-100000000",
        "The keys tracked for client-side caching.",
        version="6.0.0",
    ),
    _p(
        "zset-max-listpack-entries",
        "128",
        "integer",
        "0-",
        "The maximum number of sorted set entries for the compact encoding.",
        version="7.0.0",
    ),
    _p(
        "zset-max-listpack-value",
        "64",
        "integer",
        "0-",
        "The largest sorted set entry, in bytes, for the compact encoding.",
        version="7.0.0",
    ),
]
_LAZYFREE = [
    _p(
        "lazyfree-lazy-eviction",
        "no",
        "string",
        YES_NO,
        "Perform an asynchronous delete on evictions.",
        version="4.0.10",
    ),
    _p(
        "lazyfree-lazy-expire",
        "no",
        "string",
        YES_NO,
        "Perform an asynchronous delete on expired keys.",
        version="4.0.10",
    ),
    _p(
        "lazyfree-lazy-server-del",
        "no",
        "string",
        YES_NO,
        "Perform an asynchronous delete for commands which update values.",
        version="4.0.10",
    ),
    _p("lazyfree-lazy-user-del", "no", "string", YES_NO, "DEL acts like UNLINK.", version="6.0.0"),
    _p(
        "lazyfree-lazy-user-flush",
        "no",
        "string",
        YES_NO,
        "FLUSHDB and FLUSHALL without a flag free memory asynchronously.",
        version="6.2.0",
    ),
]


def _max_clients() -> str:
    """AWS's maxclients (65000), or what the engines can open here: they run unprivileged and
    cannot raise their open-file limit, of which redis keeps 32 descriptors for itself."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return str(65000 if hard == resource.RLIM_INFINITY else min(65000, hard - 32))


# settings Strata's engines run with, which no parameter group can change
_ENGINE_FIXED = [
    _p(
        "maxclients",
        _max_clients(),
        "integer",
        "1-65000",
        "The maximum number of connected clients.",
        "fixed-config",
    ),
    _p("appendonly", "no", "string", YES_NO, "Append-only file persistence (AOF).", "fixed"),
    _p(
        "appendfsync",
        "everysec",
        "string",
        "always,everysec,no",
        "How often the AOF is written to disk.",
        "fixed",
    ),
    _p(
        "rename-commands",
        "",
        "string",
        "",
        "A space-separated list of renamed commands: Strata's engines rename none.",
        "fixed",
        version="5.0.3",
    ),
]
_VALKEY8 = [
    _p(
        "extended-redis-compatibility",
        "yes",
        "string",
        YES_NO,
        "Valkey pretends to be Redis OSS 7.2 to clients.",
        version="8.0.0",
    ),
]

_MEMCACHED = [
    _p("binding_protocol", "auto", "string", "ascii,auto", "Binding protocol.", "flag", REBOOT, "1.4.5"),
    _p(
        "cas_disabled",
        "0",
        "boolean",
        "0,1",
        "If 1, check and set (CAS) operations are disabled.",
        "flag",
        REBOOT,
        "1.4.5",
    ),
    _p(
        "chunk_size",
        "48",
        "integer",
        "1-",
        "The minimum bytes allocated for the smallest item's key, value and flags.",
        "flag",
        REBOOT,
        "1.4.5",
    ),
    _p(
        "chunk_size_growth_factor",
        "1.25",
        "float",
        "1-2",
        "The growth factor of each successive chunk size.",
        "flag",
        REBOOT,
        "1.4.5",
    ),
    _p("disable_flush_all", "0", "boolean", "0,1", "Disable flush_all.", "flag", REBOOT, "1.4.24"),
    _p(
        "error_on_memory_exhausted",
        "0",
        "boolean",
        "0,1",
        "Return an error instead of evicting when memory is full.",
        "flag",
        REBOOT,
        "1.4.5",
    ),
    _p(
        "hash_algorithm",
        "jenkins",
        "string",
        "jenkins,murmur3",
        "The hash algorithm.",
        "flag",
        REBOOT,
        "1.4.24",
    ),
    _p(
        "idle_timeout",
        "0",
        "integer",
        "0-86400",
        "Seconds a client may idle before being asked to close (0: never).",
        "flag",
        REBOOT,
        "1.4.33",
    ),
    _p(
        "lru_crawler",
        "0",
        "boolean",
        "0,1",
        "Run the LRU crawler background thread.",
        "flag",
        REBOOT,
        "1.4.24",
    ),
    _p(
        "lru_maintainer",
        "0",
        "boolean",
        "0,1",
        "Run the LRU maintainer background thread.",
        "flag",
        REBOOT,
        "1.4.24",
    ),
    _p(
        "max_item_size",
        "1048576",
        "integer",
        "1048576-134217728",
        "The size, in bytes, of the largest item.",
        "flag",
        REBOOT,
        "1.4.5",
    ),
    _p(
        "maxconns_fast",
        "0",
        "boolean",
        "0,1",
        "Close new connections at once when over the connection limit.",
        "flag",
        REBOOT,
        "1.4.14",
    ),
    _p(
        "memcached_connections_overhead",
        "100",
        "integer",
        "0-",
        "Megabytes reserved for connections and other overhead.",
        "flag",
        REBOOT,
        "1.4.5",
    ),
    _p("slab_automove", "0", "integer", "0-2", "The slab automove algorithm.", "flag", REBOOT, "1.4.14"),
    _p(
        "slab_chunk_max",
        "524288",
        "integer",
        "1024-",
        "The maximum size of a slab chunk in bytes.",
        "flag",
        REBOOT,
        "1.4.33",
    ),
    _p("slab_reassign", "0", "boolean", "0,1", "Enable slab reassignment.", "flag", REBOOT, "1.4.14"),
    _p(
        "track_sizes",
        "0",
        "boolean",
        "0,1",
        "Track the sizes each slab group has consumed.",
        "flag",
        REBOOT,
        "1.4.33",
    ),
    _p(
        "watcher_logbuf_size",
        "256",
        "integer",
        "0-",
        "Kilobytes of each watcher's log buffer.",
        "flag",
        REBOOT,
        "1.4.33",
    ),
    _p(
        "worker_logbuf_size",
        "64",
        "integer",
        "0-",
        "Kilobytes of each worker thread's log buffer.",
        "flag",
        REBOOT,
        "1.4.33",
    ),
]

CATALOGUES: dict[str, dict[str, CacheParameter]] = {
    "redis7": {p.name: p for p in _REDIS_COMMON + _LAZYFREE + _ENGINE_FIXED},
    "valkey7": {p.name: p for p in _REDIS_COMMON + _LAZYFREE + _ENGINE_FIXED},
    "valkey8": {p.name: p for p in _REDIS_COMMON + _VALKEY8 + _ENGINE_FIXED},
    "memcached1.6": {p.name: p for p in _MEMCACHED},
}
FAMILY_ENGINE = {"redis7": "redis", "valkey7": "valkey", "valkey8": "valkey", "memcached1.6": "memcached"}


def family_of(engine: str, version: str) -> str:
    """The parameter group family of an engine version (redis 7.0.15 -> redis7, memcached 1.6.18 ->
    memcached1.6)."""
    parts = version.split(".")
    return f"memcached{'.'.join(parts[:2])}" if engine == "memcached" else f"{engine}{parts[0]}"


def catalogue(family: str) -> dict[str, CacheParameter]:
    return CATALOGUES[family]


def check_value(param: CacheParameter, value: str) -> str:
    """`value` if the parameter may take it, else ElastiCache's InvalidParameterValue."""
    allowed = param.allowed
    if param.apply in ("fixed", "fixed-config") and value != param.default:
        raise invalid(
            f"Strata does not support value {value} for parameter {param.name}: "
            f"its engines run with {param.name} {param.default!r}."
        )
    if param.data_type in ("integer", "float"):
        try:
            number = float(value) if param.data_type == "float" else int(value)
        except ValueError:
            raise invalid(
                f"Invalid value {value!r} for parameter {param.name}: not an {param.data_type}."
            ) from None
        if allowed and not any(_in_range(number, r) for r in allowed.split(",")):
            raise invalid(f"Invalid value {value} for parameter {param.name}. Allowed values: {allowed}")
    elif allowed and value not in allowed.split(","):
        raise invalid(f"Invalid value {value} for parameter {param.name}. Allowed values: {allowed}")
    if param.name == "notify-keyspace-events" and set(value) - set("KEg$lshzxeAtmdn"):
        raise invalid(f"Invalid value {value} for parameter notify-keyspace-events.")
    return value


_RANGE = re.compile(r"^(-?[0-9.]+)(?:(-)(-?[0-9.]+)?)?$")


def _in_range(number: float, rule: str) -> bool:
    """Whether `number` fits one AllowedValues rule: "5000", "1-75", "0-" (no upper bound), "-5-"."""
    m = _RANGE.match(rule.strip())
    if m is None:
        return False
    low, dash, high = m.groups()
    if not dash:
        return number == float(low)
    return number >= float(low) and (high is None or number <= float(high))


def changes(family: str, entries: list[dict], reset: bool) -> dict[str, str | None]:
    """Validated `ParameterNameValues`: name -> new value (None: back to the default)."""
    if len(entries) > MAX_CHANGES:
        raise combination(f"Cannot modify more than {MAX_CHANGES} parameters in a single request")
    known = catalogue(family)
    out: dict[str, str | None] = {}
    for entry in entries:
        name = entry.get("ParameterName")
        if not name:
            raise invalid("The parameter ParameterName must be provided and must not be blank.")
        param = known.get(name)
        if param is None:
            raise invalid(f"Unknown parameter for family {family}: {name}")
        if reset:
            out[name] = None
            continue
        if entry.get("ParameterValue") is None:
            raise invalid(f"The parameter ParameterValue of {name} must be provided.")
        out[name] = check_value(param, str(entry["ParameterValue"]))
    return out


def effective(family: str, params: dict[str, str]) -> dict[str, str]:
    """Every parameter of the family, the group's values over the defaults."""
    return {name: params.get(name, p.default) for name, p in catalogue(family).items()}


def redis_directives(values: dict[str, str]) -> dict[str, str]:
    """redis.conf / CONFIG SET settings for a redis-like family's effective values (without
    maxmemory, see `redis_maxmemory`)."""
    known = CATALOGUES["valkey8"] | CATALOGUES["redis7"]
    out = {
        n: v for n, v in values.items() if known[n].apply in ("config", "fixed-config") or n == "databases"
    }
    limits = []
    for kind in ("normal", "pubsub"):
        prefix = f"client-output-buffer-limit-{kind}-"
        parts = [values.get(prefix + x) for x in ("hard-limit", "soft-limit", "soft-seconds")]
        if all(p is not None for p in parts):
            limits.append(f"{kind} {' '.join(parts)}")  # type: ignore[arg-type]
    if limits:
        out["client-output-buffer-limit"] = " ".join(limits)
    return out


def redis_maxmemory(node_memory_bytes: int, values: dict[str, str]) -> int:
    """The engine's maxmemory: the node's memory less ElastiCache's reservation."""
    reserved_bytes = int(values.get("reserved-memory", "0") or 0)
    if reserved_bytes:
        return max(node_memory_bytes - reserved_bytes, 1)
    percent = int(values.get("reserved-memory-percent", "25") or 0)
    return node_memory_bytes * (100 - percent) // 100


def memcached_options(values: dict[str, str]) -> list[str]:
    """memcached command-line options for a memcached family's effective values (memory: see
    `memcached_memory_mb`)."""
    args: list[str] = []
    extended: list[str] = []
    flags = {"cas_disabled": "-C", "disable_flush_all": "-F", "error_on_memory_exhausted": "-M"}
    for name, flag in flags.items():
        if values.get(name) == "1":
            args.append(flag)
    args += ["-B", values.get("binding_protocol", "auto")]
    args += ["-n", values.get("chunk_size", "48"), "-f", values.get("chunk_size_growth_factor", "1.25")]
    args += ["-I", values.get("max_item_size", "1048576")]
    for name in ("lru_crawler", "lru_maintainer", "maxconns_fast"):
        extended.append(name if values.get(name) == "1" else f"no_{name}")
    if values.get("slab_reassign") == "1":
        extended.append("slab_reassign")
    if values.get("track_sizes") == "1":
        extended.append("track_sizes")
    extended += [
        f"hash_algorithm={values.get('hash_algorithm', 'jenkins')}",
        f"slab_automove={values.get('slab_automove', '0')}",
        f"idle_timeout={values.get('idle_timeout', '0')}",
        f"slab_chunk_max={max(1, int(values.get('slab_chunk_max', '524288')) // 1024)}",
        f"watcher_logbuf_size={values.get('watcher_logbuf_size', '256')}",
        f"worker_logbuf_size={values.get('worker_logbuf_size', '64')}",
    ]
    return args + ["-o", ",".join(extended)]


def memcached_memory_mb(node_memory_mb: int, values: dict[str, str]) -> int:
    """Item memory: the node's max_cache_memory less memcached_connections_overhead."""
    return max(node_memory_mb - int(values.get("memcached_connections_overhead", "100")), 1)
