"""The AWS/* metrics Strata publishes, gathered once a simulated minute by the `cloudwatch.publish`
rule — never on a request's path: requests only feed the meter's in-memory tally, as they do
anyway, and this rule reads what the meter wrote.

- AWS/DynamoDB  ConsumedReadCapacityUnits, ConsumedWriteCapacityUnits per TableName (and per
  TableName and GlobalSecondaryIndexName) and a global table's ReplicationLatency (per TableName
  and ReceivingRegion, in the sending replica's region): from the meter's events (one statistic set per metered second: Sum and SampleCount exact,
  Minimum/Maximum those of the second's average); ProvisionedRead/WriteCapacityUnits of each
  provisioned table (TableName) and global secondary index (TableName, GlobalSecondaryIndexName)
  once a minute, from the table's settings; per (TableName, Operation) SuccessfulRequestLatency,
  ReturnedItemCount (Query, Scan), ThrottledRequests, SystemErrors, and ReadThrottleEvents /
  WriteThrottleEvents per TableName and UserErrors for the account, from the gateway's in-memory
  request tally (strata.sim.request_stats).
- AWS/S3        BucketSizeBytes per BucketName and StorageType, NumberOfObjects (AllStorageTypes):
  daily, stamped at 00:00 UTC of each day simulated time enters, from the bucket's objects then
  (every version, as S3 counts them); request metrics per BucketName and FilterId for buckets with
  a metrics configuration (AllRequests, GetRequests ..., 4xxErrors, 5xxErrors, BytesDownloaded,
  BytesUploaded, FirstByteLatency, TotalRequestLatency), from the gateway's in-memory tally
  (strata.sim.bucket_requests): both latencies are the time the gateway took to answer (a
  streamed body's transfer is not in TotalRequestLatency).
- Several gateways on one PostgreSQL: each moves its request tallies and meter events there once
  a second (strata.storage.shared_tallies), and this rule, on the engine host, publishes every
  gateway's: the request tallies taken from PostgreSQL, the meter's DynamoDB events read by row
  (after the last one published, `METER_MARK`) rather than by simulated time, since a gateway's
  events of a minute may arrive after the minute was published.
- AWS/ElastiCache per CacheClusterId and CacheNodeId, from each engine's own counters (redis
  INFO, memcached `stats`): CacheHits, CacheMisses, Evictions (increases since the last sample),
  CacheHitRate (percent of this minute's lookups), CurrConnections (without the publisher's own),
  BytesUsedForCache, DatabaseMemoryUsagePercentage (of maxmemory); ReplicationLag on replicas:
  0 while the replica has everything its primary had sent when the primary was sampled (read
  first), else the seconds since it last heard from its primary (redis' master_last_io_seconds_ago),
  or since its link went down. A serverless cache is one whole (clusterId), from its primary; one
  behind an ECPU proxy also gets ElastiCacheProcessingUnits and ThrottledCmds, the proxy's counts.
- AWS/EFS       per FileSystemId: StorageBytes, ClientConnections, BurstCreditBalance,
  PermittedThroughput, the I/O metrics (DataReadIOBytes ... MeteredIOBytes) and PercentIOLimit
  from the NFS servers' counters (publish_efs).

- AWS/RDS         per DBInstanceIdentifier and Aurora cluster, from the engine: see publish_rds.
- AWS/EBS         per VolumeId, from the NBD data path: see publish_ebs.

Counters are differenced against the last sample, kept durably per engine run (redis run_id /
memcached pid), so a restart of Strata neither loses nor double-counts a minute's hits.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from strata.services.base import ServiceRuntime, run_blocking
from strata.services.cloudwatch.publish_ebs import EbsSampler
from strata.services.cloudwatch.publish_efs import EfsSampler
from strata.services.cloudwatch.publish_rds import RdsSampler
from strata.services.cloudwatch.store import Bucket, MetricStore, Point, dims_key, scope_of
from strata.services.elasticache.serverless import SUFFIX as SERVERLESS
from strata.sim import bucket_requests as br
from strata.sim import request_stats as rs
from strata.sim.bucket_requests import bucket_requests
from strata.sim.meter import meter
from strata.sim.request_stats import request_stats
from strata.storage import shared_tallies

log = logging.getLogger("strata.cloudwatch")
DAY = 86400
METER_MARK = "meter/dynamodb"  # state: the last meter row published (several gateways)

_DYNAMODB = {
    "ReadCapacityUnits": "ConsumedReadCapacityUnits",
    "WriteCapacityUnits": "ConsumedWriteCapacityUnits",
    "IndexReadCapacityUnits": "ConsumedReadCapacityUnits",  # per GlobalSecondaryIndexName
    "IndexWriteCapacityUnits": "ConsumedWriteCapacityUnits",
    "ReplicationLatency": "ReplicationLatency",  # global tables (dynamodb/replication.py)
}
_READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems", "ExecuteStatement"})
STORAGE_TYPES = {
    "STANDARD": "StandardStorage",
    "STANDARD_IA": "StandardIAStorage",
    "ONEZONE_IA": "OneZoneIAStorage",
    "REDUCED_REDUNDANCY": "ReducedRedundancyStorage",
    "GLACIER": "GlacierStorage",
    "GLACIER_IR": "GlacierInstantRetrievalStorage",
    "DEEP_ARCHIVE": "DeepArchiveStorage",
    "INTELLIGENT_TIERING": "IntelligentTieringFAStorage",
    "EXPRESS_ONEZONE": "ExpressOneZoneStorage",
}
# (metric, redis INFO field, memcached stats field): counters published as their increase
_COUNTERS = (
    ("CacheHits", "keyspace_hits", "get_hits"),
    ("CacheMisses", "keyspace_misses", "get_misses"),
    ("Evictions", "evicted_keys", "evictions"),
)


def _dims(**pairs: str) -> str:
    return dims_key({"Name": k, "Value": v} for k, v in pairs.items())


def _one(
    scope: str, namespace: str, name: str, dims: str, at: float, v: float, unit: str, width: int = 60
) -> Point:
    return Point(scope, namespace, name, dims, at, unit, Bucket(v, 1.0, v, v, [v]), width)


class Publisher:
    """Gathers the AWS/* metrics of (since, until] into the store; see the module docstring."""

    def __init__(self, store: MetricStore, runtime: ServiceRuntime) -> None:
        self.store = store
        self.runtime = runtime
        self.account = runtime.settings.account_id
        self.region = runtime.settings.region
        self.scope = scope_of(self.account, self.region)  # of records from before accounts and regions
        self.rds = RdsSampler()
        self.ebs = EbsSampler()
        self.efs = EfsSampler()
        self._mark: int | None = None  # the last meter row read, to store once published

    async def close(self) -> None:
        return None

    async def run(self, since: float, until: float) -> dict[str, int]:
        shared = shared_tallies.tallies
        if shared is not None:
            requests, buckets = await shared.collect()
        else:
            requests, buckets = request_stats.drain(), bucket_requests.drain()
        points = await run_blocking(self._from_meter, since, until)
        points += self._provisioned(until)
        points += self._requests(requests)
        points += _bucket_request_points(buckets)
        points += await self._s3_storage(since, until)
        points += await run_blocking(self._elasticache, until)
        efs = self.runtime.peer("efs")
        if efs is not None:
            points += await run_blocking(self.efs.points, efs, self.account, self.region, until)
        rds = self.runtime.peer("rds")
        if rds is not None:
            points += await run_blocking(self.rds.points, rds, until)
        ec2 = self.runtime.peer("ec2")
        if ec2 is not None:
            points += await run_blocking(self.ebs.points, ec2, until)
        await run_blocking(self.store.add, points)
        if self._mark is not None:
            await run_blocking(self.store.set_state, METER_MARK, str(self._mark))
        return {"datapoints": len(points)}

    # -- from the meter --------------------------------------------------------------------------

    def _meter_events(self, since: float, until: float) -> list:
        """The DynamoDB events to publish now (see the module docstring)."""
        if not meter.shared:
            return meter.between(since, until, ("dynamodb",))
        mark = self.store.get_state(METER_MARK)
        if mark is None:  # the first publication: by time, and by row from now on
            events = meter.between(since, until, ("dynamodb",))
            self._mark = meter.after(None, ("dynamodb",))[1]
            return events
        events, self._mark = meter.after(int(mark), ("dynamodb",))
        return events

    def _from_meter(self, since: float, until: float) -> list[Point]:
        points = []
        for e in self._meter_events(since, until):
            name = _DYNAMODB.get(e.event)
            table = e.dims.get("table")
            if name is None or not table or e.count <= 0:
                continue
            mean = e.quantity / e.count
            bucket = Bucket(e.quantity, float(e.count), mean, mean, None)
            scope = self._table_scope(str(e.dims.get("scope") or ""))
            if name == "ReplicationLatency":  # in the sending replica's region, per receiving one
                dims = _dims(TableName=str(table), ReceivingRegion=str(e.dims.get("receiving_region")))
                points.append(Point(scope, "AWS/DynamoDB", name, dims, e.at, "Milliseconds", bucket))
                continue
            index = e.dims.get("index")
            dims = _dims(TableName=str(table), **({"GlobalSecondaryIndexName": str(index)} if index else {}))
            points.append(Point(scope, "AWS/DynamoDB", name, dims, e.at, "Count", bucket))
        return points

    def _requests(self, tally: dict) -> list[Point]:
        points = []
        user_errors: dict[tuple[int, str], float] = {}
        for (minute, _service, account, region, table, operation), t in tally.items():
            scope = scope_of(account, region)
            user_errors[minute, scope] = user_errors.get((minute, scope), 0.0) + t[rs.USER_ERRORS]
            if not table:
                continue
            dims = _dims(TableName=table, Operation=operation)
            if t[rs.OK]:
                latency = Bucket(t[rs.SUM_MS], t[rs.OK], t[rs.MIN_MS], t[rs.MAX_MS], None)
                points.append(
                    Point(
                        scope,
                        "AWS/DynamoDB",
                        "SuccessfulRequestLatency",
                        dims,
                        minute,
                        "Milliseconds",
                        latency,
                    )
                )
                if operation in ("Query", "Scan"):
                    mean = t[rs.RETURNED] / t[rs.OK]
                    returned = Bucket(t[rs.RETURNED], t[rs.OK], mean, mean, None)
                    points.append(
                        Point(scope, "AWS/DynamoDB", "ReturnedItemCount", dims, minute, "Count", returned)
                    )
            for name, n in (("ThrottledRequests", t[rs.THROTTLED]), ("SystemErrors", t[rs.SYSTEM_ERRORS])):
                if n:
                    points.append(
                        Point(
                            scope,
                            "AWS/DynamoDB",
                            name,
                            dims,
                            minute,
                            "Count",
                            Bucket(n, n, 1, 1, None),
                        )
                    )
            if t[rs.THROTTLED]:
                kind = "ReadThrottleEvents" if operation in _READS else "WriteThrottleEvents"
                n = t[rs.THROTTLED]
                table_dims = _dims(TableName=table)
                points.append(
                    Point(
                        scope,
                        "AWS/DynamoDB",
                        kind,
                        table_dims,
                        minute,
                        "Count",
                        Bucket(n, n, 1, 1, None),
                    )
                )
        for (minute, scope), n in user_errors.items():
            if n:
                points.append(
                    Point(
                        scope,
                        "AWS/DynamoDB",
                        "UserErrors",
                        "[]",
                        minute,
                        "Count",
                        Bucket(n, n, 1, 1, None),
                    )
                )
        return points

    def _table_scope(self, scope: str) -> str:
        """A DynamoDB table's `account:region` (a part left empty by older records: the default)."""
        account, _, region = scope.partition(":")
        return scope_of(account or self.account, region or self.region)

    def _provisioned(self, at: float) -> list[Point]:
        ddb = self.runtime.peer("dynamodb")
        if ddb is None:
            return []
        points = []
        for (scope, name), meta in list(ddb.state.tables.items()):
            if meta.billing_mode != "PROVISIONED":
                continue
            targets = [({"TableName": name}, meta.throughput)]
            targets += [
                ({"TableName": name, "GlobalSecondaryIndexName": ix.name}, ix.throughput)
                for ix in meta.indexes
                if ix.is_global and ix.throughput
            ]
            for dims, throughput in targets:
                key = _dims(**dims)
                for kind in ("Read", "Write"):
                    units = float(throughput.get(f"{kind}CapacityUnits", 0))
                    name_ = f"Provisioned{kind}CapacityUnits"
                    points.append(
                        _one(self._table_scope(scope), "AWS/DynamoDB", name_, key, at, units, "Count")
                    )
        return points

    # -- S3 storage, daily ---------------------------------------------------------------------

    async def _s3_storage(self, since: float, until: float) -> list[Point]:
        day = math.floor(until / DAY) * DAY
        s3 = self.runtime.peer("s3")
        if s3 is None or day <= since:
            return []
        return await run_blocking(self._s3_day, s3, day)

    def _s3_day(self, s3: Any, day: float) -> list[Point]:
        points = []
        # a read snapshot of S3's metadata (its writer's connection belongs to its writer)
        with s3.store.db.snapshot() as db:
            buckets = {
                name: scope_of(json.loads(config or "{}").get("owner") or self.account, region)
                for name, region, config in db.execute(
                    "SELECT name, region, config FROM buckets ORDER BY name"
                )
            }
            sums = {
                name: db.execute(
                    "SELECT storage_class, SUM(size), COUNT(*) FROM objects WHERE bucket = ? AND dm = 0 "
                    "GROUP BY storage_class",
                    [name],
                ).fetchall()
                for name in buckets
            }
        for name, rows in sums.items():
            scope = buckets[name]
            total = 0
            for storage_class, size, count in rows:
                total += count
                kind = STORAGE_TYPES.get(storage_class, storage_class)
                dims = _dims(BucketName=name, StorageType=kind)
                points.append(
                    _one(scope, "AWS/S3", "BucketSizeBytes", dims, day, float(size or 0), "Bytes", DAY)
                )
            dims = _dims(BucketName=name, StorageType="AllStorageTypes")
            points.append(_one(scope, "AWS/S3", "NumberOfObjects", dims, day, float(total), "Count", DAY))
        return points

    # -- ElastiCache engines -------------------------------------------------------------------

    def _elasticache(self, until: float) -> list[Point]:
        provider = self.runtime.peer("elasticache")
        if provider is None:
            return []
        points = []
        # primaries first: a replica sampled after its primary has all the primary had sent then
        servers = sorted(
            provider.engines.servers.items(),
            key=lambda item: bool(getattr(getattr(item[1], "config", None), "replica_of", None)),
        )
        offsets: dict[tuple[str, int], float] = {}  # a primary's (address, port) -> its offset
        for (key, node_id), server in servers:
            account, region, cluster = provider.store.split_engine_key(key)
            try:
                sample = _sample(server)
            except Exception as e:  # noqa: BLE001 - a node down or restarting has no sample this minute
                log.debug("no metrics from %s/%s: %s", cluster, node_id, e)
                continue
            if cluster.endswith(SERVERLESS):
                # a serverless cache is measured as one whole, by its name (`clusterId`), as on
                # AWS: its primary's figures (the replica holds the same data)
                if sample.get("replication") is None:
                    dims = _dims(clusterId=cluster.removesuffix(SERVERLESS))
                    scope = scope_of(account, region)
                    points += self._cache_points(scope, cluster, node_id, sample, until, dims)
                    counted = provider._ecpu_unpublished(key)  # its ECPU proxy's counts, if it has one
                    if counted is not None:
                        for metric, value in zip(
                            ("ElastiCacheProcessingUnits", "ThrottledCmds"), counted, strict=True
                        ):
                            points.append(_one(scope, "AWS/ElastiCache", metric, dims, until, value, "Count"))
                continue
            if sample.get("replication") is not None:
                sample["lag"] = _replication_lag(sample["replication"], offsets)
            elif "offset" in sample:
                offsets[server.config.address, server.config.port] = sample["offset"]
            points += self._cache_points(scope_of(account, region), cluster, node_id, sample, until)
        return points

    def _cache_points(
        self, scope: str, cluster: str, node: str, sample: dict, at: float, dims: str | None = None
    ) -> list[Point]:
        dims = dims or _dims(CacheClusterId=cluster, CacheNodeId=node)
        account, region = scope.split(":", 1)
        # the default region's nodes keep their key from before regions (their last sample)
        state_key = f"elasticache/{account}/{cluster}/{node}" + (
            "" if region == self.region else f"/{region}"
        )
        last = json.loads(self.store.get_state(state_key) or "{}")
        # a new engine run (restart) counts from zero; the same run from the last sample
        base = last if last.get("run") == sample["run"] else {}
        out = []
        increases = {}
        for metric, _r, _m in _COUNTERS:
            now_value = sample.get(metric, 0.0)
            increases[metric] = max(0.0, now_value - base.get(metric, 0.0))
            out.append(_one(scope, "AWS/ElastiCache", metric, dims, at, increases[metric], "Count"))
        lookups = increases["CacheHits"] + increases["CacheMisses"]
        if lookups:
            rate = 100.0 * increases["CacheHits"] / lookups
            out.append(_one(scope, "AWS/ElastiCache", "CacheHitRate", dims, at, rate, "Percent"))
        out.append(
            _one(scope, "AWS/ElastiCache", "CurrConnections", dims, at, sample["connections"], "Count")
        )
        out.append(_one(scope, "AWS/ElastiCache", "BytesUsedForCache", dims, at, sample["bytes"], "Bytes"))
        if sample.get("lag") is not None:
            out.append(_one(scope, "AWS/ElastiCache", "ReplicationLag", dims, at, sample["lag"], "Seconds"))
        if sample.get("maxmemory"):
            usage = 100.0 * sample["bytes"] / sample["maxmemory"]
            out.append(
                _one(scope, "AWS/ElastiCache", "DatabaseMemoryUsagePercentage", dims, at, usage, "Percent")
            )
        self.store.set_state(
            state_key,
            json.dumps({"run": sample["run"], **{m: sample.get(m, 0.0) for m, _r, _m in _COUNTERS}}),
        )
        return out


def _sample(server: Any) -> dict:
    """The counters and gauges of one engine node (redis/valkey INFO or memcached stats)."""
    if hasattr(server, "stats"):  # memcached
        stats = server.stats()
        out = {m: float(stats.get(field, 0)) for m, _r, field in _COUNTERS}
        return {
            **out,
            "run": f"{stats.get('pid')}-{int(float(stats.get('time', 0))) - int(float(stats.get('uptime', 0)))}",
            "connections": max(0.0, float(stats.get("curr_connections", 0)) - 1),
            "bytes": float(stats.get("bytes", 0)),
            "maxmemory": float(stats.get("limit_maxbytes", 0)),
        }
    with server.client(timeout=2, retry=False) as c:
        info = c.info()
    out = {m: float(info.get(field, 0)) for m, field, _m in _COUNTERS}
    replica = info.get("role") == "slave"
    return {
        **out,
        "run": str(info.get("run_id", "")),
        "offset": float(info.get("master_repl_offset", 0)),
        "replication": {k: info.get(k) for k in _REPLICA_FIELDS} if replica else None,
        "connections": max(0.0, float(info.get("connected_clients", 0)) - 1),
        "bytes": float(info.get("used_memory", 0)),
        "maxmemory": float(info.get("maxmemory", 0)),
    }


_REPLICA_FIELDS = (
    "master_host",
    "master_port",
    "master_link_status",
    "slave_repl_offset",
    "master_last_io_seconds_ago",
    "master_link_down_since_seconds",
)


def _replication_lag(replica: dict, offsets: dict[tuple[str, int], float]) -> float | None:
    """A replica's ReplicationLag in seconds (None before it ever reached its primary)."""
    if replica.get("master_link_status") != "up":
        down = float(replica.get("master_link_down_since_seconds") or -1)
        return down if down >= 0 else None
    primary = offsets.get((str(replica.get("master_host")), int(replica.get("master_port") or 0)))
    if primary is None or float(replica.get("slave_repl_offset") or 0) >= primary:
        return 0.0  # linked, and nothing the primary had sent is missing
    return max(0.0, float(replica.get("master_last_io_seconds_ago") or 0))


def _bucket_request_points(tally: dict) -> list[Point]:
    """AWS/S3 request metrics from the gateway's per-filter tally (see bucket_requests)."""
    points = []
    for (minute, scope, bucket, filter_id), t in tally.items():
        dims = _dims(BucketName=bucket, FilterId=filter_id)
        stats = [("AllRequests", _counted(t[br.ALL]), "Count")]
        stats += [(name, _counted(t[i]), "Count") for i, name in enumerate(br.KINDS) if t[i]]
        for name, n in (("4xxErrors", t[br.ERRORS_4XX]), ("5xxErrors", t[br.ERRORS_5XX])):
            # one value per request (1 for an error, 0 otherwise): Average is the error rate
            stats.append((name, Bucket(n, t[br.ALL], float(n == t[br.ALL]), float(n > 0), None), "Count"))
        for name, total, n in (
            ("BytesDownloaded", t[br.DOWN], t[br.DOWN_N]),
            ("BytesUploaded", t[br.UP], t[br.UP_N]),
        ):
            if n:
                stats.append((name, Bucket(total, n, total / n, total / n, None), "Bytes"))
        for name in ("FirstByteLatency", "TotalRequestLatency"):
            latency = Bucket(t[br.LAT_SUM], t[br.ALL], t[br.LAT_MIN], t[br.LAT_MAX], None)
            stats.append((name, latency, "Milliseconds"))
        points += [Point(scope, "AWS/S3", name, dims, minute, unit, b) for name, b, unit in stats]
    return points


def _counted(n: float) -> Bucket:
    """`n` events as one statistic set (each event a 1)."""
    return Bucket(n, n, 1.0, 1.0, None)
