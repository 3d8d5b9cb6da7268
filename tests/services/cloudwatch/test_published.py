"""The AWS/* metrics Strata publishes: they appear after activity and a clock advance, and their
numbers are what the client did (counted on the client side)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import redis
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.services.cloudwatch.helpers import metric_points
from tests.services.efs.helpers import file_system_with_targets, needs_nfs
from tests.services.efs.libnfs import LibNfs
from tests.services.elasticache.conftest import eventually, node_endpoints
from tests.services.fis.conftest import runner_role
from tests.services.fis.test_experiments import DONE, assumed_dynamodb, make_table, session_client, wait_for
from tests.services.fis.test_templates import throttle_template
from tests.services.rds.helpers import PASSWORD, USER, create_pg, pg_connect, wait_status


def _sum(
    cw, namespace: str, name: str, dims: dict, stat: str = "Sum", period: int = 3600, days: int = 0
) -> list:
    return metric_points(cw, namespace, name, dims, [stat, "SampleCount"], period, days * 86400.0)


def _total(points: list, stat: str = "Sum") -> float:
    return sum(p[stat] for p in points)


def test_dynamodb_consumed_capacity(strata_factory, unique):
    server = strata_factory()
    ddb, cw = server.client("dynamodb"), server.client("cloudwatch")
    table = f"t-{unique}"
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for i in range(7):
        ddb.put_item(TableName=table, Item={"pk": {"S": str(i)}, "v": {"S": "x" * 10}})
    for i in range(4):
        ddb.get_item(TableName=table, Key={"pk": {"S": str(i)}})  # eventually consistent: 0.5 RCU
    for i in range(3):
        ddb.get_item(TableName=table, Key={"pk": {"S": str(i)}}, ConsistentRead=True)  # 1 RCU
    server.advance_clock("2m")
    dims = {"TableName": table}
    writes = _sum(cw, "AWS/DynamoDB", "ConsumedWriteCapacityUnits", dims)
    reads = _sum(cw, "AWS/DynamoDB", "ConsumedReadCapacityUnits", dims)
    assert _total(writes) == 7 and _total(writes, "SampleCount") == 7
    assert _total(reads) == 4 * 0.5 + 3 and _total(reads, "SampleCount") == 7
    for _ in range(2):
        assert (
            ddb.query(
                TableName=table,
                KeyConditionExpression="pk = :k",
                ExpressionAttributeValues={":k": {"S": "1"}},
            )["Count"]
            == 1
        )
    with pytest.raises(ClientError):
        ddb.get_item(TableName=f"missing-{unique}", Key={"pk": {"S": "1"}})
    provisioned = f"p-{unique}"
    ddb.create_table(
        TableName=provisioned,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        ProvisionedThroughput={"ReadCapacityUnits": 200, "WriteCapacityUnits": 150},
    )
    server.advance_clock("1m")
    read = _sum(cw, "AWS/DynamoDB", "ProvisionedReadCapacityUnits", {"TableName": provisioned}, "Maximum", 60)
    write = _sum(
        cw, "AWS/DynamoDB", "ProvisionedWriteCapacityUnits", {"TableName": provisioned}, "Maximum", 60
    )
    assert {p["Maximum"] for p in read} == {200.0} and {p["Maximum"] for p in write} == {150.0}
    put_latency = _sum(
        cw, "AWS/DynamoDB", "SuccessfulRequestLatency", {**dims, "Operation": "PutItem"}, "Maximum"
    )
    assert _total(put_latency, "SampleCount") == 7 and all(p["Maximum"] > 0 for p in put_latency)
    returned = _sum(cw, "AWS/DynamoDB", "ReturnedItemCount", {**dims, "Operation": "Query"})
    assert (_total(returned), _total(returned, "SampleCount")) == (2, 2)
    assert _total(_sum(cw, "AWS/DynamoDB", "UserErrors", {})) == 1  # the GetItem on a missing table
    listed = cw.list_metrics(Namespace="AWS/DynamoDB", Dimensions=[{"Name": "TableName", "Value": table}])
    assert sorted({m["MetricName"] for m in listed["Metrics"]}) == [
        "ConsumedReadCapacityUnits",
        "ConsumedWriteCapacityUnits",
        "ReturnedItemCount",
        "SuccessfulRequestLatency",
    ]


def test_dynamodb_throttle_events_and_index_consumption(strata_factory, unique):
    server = strata_factory()
    ddb, cw = (
        server.client("dynamodb", config=Config(retries={"total_max_attempts": 1})),
        server.client("cloudwatch"),
    )
    table = f"th-{unique}"
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "g", "AttributeType": "S"},
        ],
        ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 400},
        GlobalSecondaryIndexes=[
            {
                "IndexName": "byg",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
                "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 7},
            }
        ],
    )
    big = "x" * (399 * 1024)  # 100 read units a strongly consistent read
    ddb.put_item(TableName=table, Item={"pk": {"S": "big"}, "v": {"S": big}})
    for i in range(3):  # one index write unit each (the index keeps the keys only)
        ddb.put_item(TableName=table, Item={"pk": {"S": f"k{i}"}, "g": {"S": "x"}})
    throttled = 0
    for _ in range(6):  # 300 s of burst at 1 RCU: three or four admitted, the rest throttled
        try:
            ddb.get_item(TableName=table, Key={"pk": {"S": "big"}}, ConsistentRead=True)
        except ClientError as e:
            assert e.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
            throttled += 1
    assert throttled >= 2
    faulted = f"fault-{unique}"
    failed = _internal_errors_on_get_item(server, faulted)
    server.advance_clock("2m")
    by_op = {"TableName": table, "Operation": "GetItem"}
    assert _total(_sum(cw, "AWS/DynamoDB", "ThrottledRequests", by_op)) == throttled
    assert not _sum(cw, "AWS/DynamoDB", "SystemErrors", by_op)  # throttles are not system errors
    # the FIS experiment's injected 500s, per table and operation
    errors = _sum(cw, "AWS/DynamoDB", "SystemErrors", {"TableName": faulted, "Operation": "GetItem"})
    assert (_total(errors), _total(errors, "SampleCount")) == (failed, failed)
    assert _total(_sum(cw, "AWS/DynamoDB", "ReadThrottleEvents", {"TableName": table})) == throttled
    assert not _sum(cw, "AWS/DynamoDB", "WriteThrottleEvents", {"TableName": table})
    index = {"TableName": table, "GlobalSecondaryIndexName": "byg"}
    consumed = _sum(cw, "AWS/DynamoDB", "ConsumedWriteCapacityUnits", index)
    assert (_total(consumed), _total(consumed, "SampleCount")) == (3, 3)
    provisioned = _sum(cw, "AWS/DynamoDB", "ProvisionedWriteCapacityUnits", index, "Maximum", 60)
    assert {p["Maximum"] for p in provisioned} == {7.0}


def _internal_errors_on_get_item(server, table: str) -> int:
    """GetItems on `table` by a role that a FIS experiment fails half of (InternalServerError):
    how many failed."""
    make_table(server, table)
    runner_role(server)
    role_arn, _ = assumed_dynamodb(server, "cw-system-errors", None)
    fis = server.client("fis")
    template = throttle_template(role_arn, "PT10M", percentage="50", operations="GetItem")
    template["actions"]["throttle"]["actionId"] = "aws:fis:inject-api-internal-error"
    tid = fis.create_experiment_template(**template)["experimentTemplate"]["id"]
    exp_id = fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"]
    deadline = time.monotonic() + 60
    while fis.get_experiment(id=exp_id)["experiment"]["actions"]["throttle"]["state"]["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    single = session_client(server, role_arn, 1)
    failed = 0
    for _ in range(6):
        try:
            single.get_item(TableName=table, Key={"k": {"S": "k0"}})
        except ClientError as e:
            assert e.response["Error"]["Code"] == "InternalServerError"
            failed += 1
    fis.stop_experiment(id=exp_id)
    wait_for(fis, exp_id, DONE)
    assert failed == 3  # every second call, as the fault spreads its share evenly
    return failed


def test_s3_daily_storage_metrics(strata_factory, unique):
    server = strata_factory()
    s3, cw = server.client("s3"), server.client("cloudwatch")
    bucket = f"b-{unique}"
    s3.create_bucket(Bucket=bucket)
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"std/{i}", Body=b"a" * 100)
    s3.put_object(Bucket=bucket, Key="ia", Body=b"b" * 200, StorageClass="STANDARD_IA")
    server.advance_clock("1d")
    now = datetime.now(UTC) + timedelta(days=1)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)

    def daily(name: str, storage_type: str) -> list:
        return cw.get_metric_statistics(
            Namespace="AWS/S3",
            MetricName=name,
            Dimensions=[
                {"Name": "BucketName", "Value": bucket},
                {"Name": "StorageType", "Value": storage_type},
            ],
            StartTime=midnight - timedelta(days=1),
            EndTime=midnight + timedelta(days=1),
            Period=86400,
            Statistics=["Average"],
        )["Datapoints"]

    assert [p["Average"] for p in daily("BucketSizeBytes", "StandardStorage")] == [300.0]
    assert [p["Average"] for p in daily("BucketSizeBytes", "StandardIAStorage")] == [200.0]
    (objects,) = daily("NumberOfObjects", "AllStorageTypes")
    assert objects["Average"] == 4 and objects["Unit"] == "Count"
    assert objects["Timestamp"] == midnight  # the day simulated time entered, at 00:00 UTC


def test_elasticache_cache_hit_rate_matches_the_clients_count(strata_factory, unique):
    """The lab's CloudWatch step: a cache-aside loop, then the hit rate CloudWatch reports."""
    server = strata_factory()
    ec, cw = server.client("elasticache"), server.client("cloudwatch")
    cid = f"lab-{unique}"
    ec.create_cache_cluster(CacheClusterId=cid, Engine="redis", NumCacheNodes=1)
    (node,) = node_endpoints(ec, cid)
    cache = redis.Redis(node["Address"], node["Port"], decode_responses=True)
    eventually(cache.ping, what="the node answers")
    hits = misses = 0
    for i in range(60):
        key = f"user:{i % 8}"
        if cache.get(key) is None:
            misses += 1
            cache.set(key, f"loaded from the database {i}")  # cache-aside: fill on a miss
        else:
            hits += 1
    assert (hits, misses) == (52, 8)
    server.advance_clock("2m")
    dims = {"CacheClusterId": cid, "CacheNodeId": "0001"}
    assert _total(_sum(cw, "AWS/ElastiCache", "CacheHits", dims)) == hits
    assert _total(_sum(cw, "AWS/ElastiCache", "CacheMisses", dims)) == misses
    rate = _sum(cw, "AWS/ElastiCache", "CacheHitRate", dims, stat="Average", period=60)
    lookups = [p for p in rate if p["SampleCount"]]
    if len(lookups) == 1:  # the loop fell in one minute (a minute boundary may split it in two)
        assert lookups[0]["Average"] == 100.0 * hits / (hits + misses)
    assert all(0 <= p["Average"] <= 100 for p in lookups) and lookups
    used = _sum(cw, "AWS/ElastiCache", "BytesUsedForCache", dims, stat="Maximum", period=60)
    assert used and all(p["Maximum"] > 0 for p in used)
    connections = _sum(cw, "AWS/ElastiCache", "CurrConnections", dims, stat="Maximum", period=60)
    assert max(p["Maximum"] for p in connections) >= 1  # our client (the publisher's is not counted)
    assert not _total(_sum(cw, "AWS/ElastiCache", "Evictions", dims))

    # Past maxmemory (the node type's 512 MiB less the default group's 25% reserved-memory-percent),
    # the engine evicts keys with a TTL (volatile-lru, as ElastiCache's default): Evictions is its
    # evicted_keys, DatabaseMemoryUsagePercentage its used_memory of maxmemory.
    info = cache.info()
    maxmemory = info["maxmemory"]
    assert maxmemory == 512 * 1024 * 1024 * 3 // 4 and info["maxmemory_policy"] == "volatile-lru"
    value, written = b"v" * (1024 * 1024), 0
    while cache.info("stats")["evicted_keys"] == 0:
        assert written < 2 * maxmemory, "no eviction after writing twice maxmemory"
        with cache.pipeline(transaction=False) as pipe:
            for _ in range(32):
                pipe.set(f"fill:{written}", value, ex=3600)
                written += len(value)
            pipe.execute()
    info = cache.info()
    server.advance_clock("1m")
    evictions = _sum(cw, "AWS/ElastiCache", "Evictions", dims)
    assert _total(evictions) == info["evicted_keys"] == cache.info("stats")["evicted_keys"] > 0
    usage = _sum(cw, "AWS/ElastiCache", "DatabaseMemoryUsagePercentage", dims, stat="Maximum", period=60)
    assert usage[-1]["Unit"] == "Percent"
    assert usage[-1]["Maximum"] == pytest.approx(100.0 * info["used_memory"] / maxmemory, abs=1.0)
    assert 90 < usage[-1]["Maximum"] <= 101 and usage[0]["Maximum"] < 1  # full now; nearly empty before
    cache.delete(*(k for k in cache.scan_iter("fill:*", count=1000)))  # no 384 MiB dump at the end


def _engine_writes(conn) -> int:
    """Writes PostgreSQL (18) has counted in its statistics so far."""
    return conn.execute(
        "SELECT COALESCE(sum(writes), 0) + COALESCE(sum(extends), 0) FROM pg_stat_io"
    ).fetchone()[0]


def test_rds_connections_and_free_storage_from_the_engine(strata_factory, unique):
    server = strata_factory()
    rds, cw = server.client("rds"), server.client("cloudwatch")
    ident = f"db-{unique}"
    inst = create_pg(rds, ident)
    sessions = [pg_connect(inst) for _ in range(3)]
    for s in sessions:
        s.execute("SELECT 1")
    server.advance_clock("1m")  # a first sample: CPU and I/O rates need two
    before = _engine_writes(sessions[1])
    sessions[0].execute(
        "CREATE TABLE filler AS SELECT g, repeat('x', 500) AS pad FROM generate_series(1, 2000) g"
    )
    eventually(lambda: _engine_writes(sessions[1]) > before)  # a backend reports its I/O when idle
    size = sessions[0].execute("SELECT sum(pg_database_size(datname)) FROM pg_database").fetchone()[0]
    server.advance_clock("2m")
    dims = {"DBInstanceIdentifier": ident}
    connections = _sum(cw, "AWS/RDS", "DatabaseConnections", dims, stat="Maximum", period=60)
    assert max(p["Maximum"] for p in connections) >= 3
    free = _sum(cw, "AWS/RDS", "FreeStorageSpace", dims, stat="Minimum", period=60)
    lowest = min(p["Minimum"] for p in free)
    assert lowest < 20 * 1024**3 and lowest == pytest.approx(20 * 1024**3 - size, abs=16 * 1024**2)
    cpu = _sum(cw, "AWS/RDS", "CPUUtilization", dims, stat="Maximum", period=60)
    assert cpu and all(0 <= p["Maximum"] <= 100 for p in cpu) and cpu[0]["Unit"] == "Percent"
    written = _sum(cw, "AWS/RDS", "WriteThroughput", dims, stat="Maximum", period=60)
    assert written and all(p["Maximum"] >= 0 for p in written) and written[0]["Unit"] == "Bytes/Second"
    # the engine's own I/O counters: the CREATE TABLE wrote WAL and blocks
    write_iops = _sum(cw, "AWS/RDS", "WriteIOPS", dims, stat="Maximum", period=60)
    assert write_iops and max(p["Maximum"] for p in write_iops) > 0
    assert write_iops[0]["Unit"] == "Count/Second"
    read_iops = _sum(cw, "AWS/RDS", "ReadIOPS", dims, stat="Minimum", period=60)
    assert read_iops and all(p["Minimum"] >= 0 for p in read_iops)
    for s in sessions:
        s.close()


def test_aurora_cluster_metrics_by_cluster_and_role(strata_factory, unique):
    server = strata_factory()
    rds, cw = server.client("rds"), server.client("cloudwatch")
    cid, writer, reader = f"au-{unique}", f"au-w-{unique}", f"au-r-{unique}"
    rds.create_db_cluster(
        DBClusterIdentifier=cid,
        Engine="aurora-postgresql",
        MasterUsername=USER,
        MasterUserPassword=PASSWORD,
        DatabaseName="app",
        ServerlessV2ScalingConfiguration={"MinCapacity": 1, "MaxCapacity": 4},
    )
    for ident in (writer, reader):
        rds.create_db_instance(
            DBInstanceIdentifier=ident,
            DBClusterIdentifier=cid,
            Engine="aurora-postgresql",
            DBInstanceClass="db.serverless",
        )
        inst = wait_status(rds, ident)
    server.advance_clock("1m")  # a first sample: I/O rates need two
    endpoint = wait_status(rds, writer)
    with pg_connect(endpoint) as conn, pg_connect(endpoint) as watcher:
        before = _engine_writes(watcher)
        conn.execute("CREATE TABLE t AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 1000) g")
        eventually(lambda: _engine_writes(watcher) > before)
    assert inst["DBInstanceIdentifier"] == reader
    server.advance_clock("2m")
    cluster = {"DBClusterIdentifier": cid}
    used = _sum(cw, "AWS/RDS", "VolumeBytesUsed", cluster, stat="Maximum", period=60)
    assert used and used[-1]["Maximum"] > 1_000_000 and used[-1]["Unit"] == "Bytes"
    writes = _sum(cw, "AWS/RDS", "VolumeWriteIOPs", cluster, period=60)
    assert writes and _total(writes) > 0
    for role, members in (("WRITER", 1), ("READER", 1)):
        connections = _sum(
            cw, "AWS/RDS", "DatabaseConnections", {**cluster, "Role": role}, stat="Maximum", period=60
        )
        assert connections and max(p["SampleCount"] for p in connections) == members
    lag = _sum(cw, "AWS/RDS", "AuroraReplicaLag", {"DBInstanceIdentifier": reader}, stat="Maximum", period=60)
    assert lag and lag[0]["Unit"] == "Milliseconds" and all(p["Maximum"] >= 0 for p in lag)
    assert not _sum(cw, "AWS/RDS", "AuroraReplicaLag", {"DBInstanceIdentifier": writer}, period=60)
    acus = _sum(cw, "AWS/RDS", "ServerlessDatabaseCapacity", cluster, stat="Maximum", period=60)
    assert acus and {p["Maximum"] for p in acus} == {1.0}
    assert max(p["SampleCount"] for p in acus) == 2  # both members, in one statistic set
    # per instance too, and following the cluster's scaling configuration (its minimum while the
    # members are idle: rds/serverless.py scales with load)
    rds.modify_db_cluster(
        DBClusterIdentifier=cid,
        ServerlessV2ScalingConfiguration={"MinCapacity": 2, "MaxCapacity": 4},
        ApplyImmediately=True,
    )
    server.advance_clock("1m")
    for ident in (writer, reader):
        acus = _sum(
            cw, "AWS/RDS", "ServerlessDatabaseCapacity", {"DBInstanceIdentifier": ident}, "Maximum", 60
        )
        assert acus[0]["Maximum"] == 1.0 and acus[-1]["Maximum"] == 2.0 and acus[-1]["Unit"] == "Count"


def test_efs_storage_bytes_is_the_file_systems_size(strata_factory, unique):
    server = strata_factory()
    efs, cw = server.client("efs"), server.client("cloudwatch")
    fs = efs.create_file_system(CreationToken=f"cw-{unique}")["FileSystemId"]
    size = efs.describe_file_systems(FileSystemId=fs)["FileSystems"][0]["SizeInBytes"]
    server.advance_clock("1m")
    dims = {"FileSystemId": fs, "StorageClass": "Total"}
    points = _sum(cw, "AWS/EFS", "StorageBytes", dims, stat="Maximum", period=60)
    assert points and points[-1]["Maximum"] >= size["Value"] > 0
    standard = _sum(
        cw, "AWS/EFS", "StorageBytes", {**dims, "StorageClass": "Standard"}, stat="Maximum", period=60
    )
    assert standard and standard[-1]["Unit"] == "Bytes"


@needs_nfs
def test_efs_client_connections_and_permitted_throughput(strata_factory):
    server = strata_factory()
    cw = server.client("cloudwatch")
    _efs, fs, (a, b) = file_system_with_targets(
        server, ThroughputMode="provisioned", ProvisionedThroughputInMibps=8
    )
    clients = [LibNfs(a["IpAddress"]), LibNfs(b["IpAddress"]), LibNfs(b["IpAddress"])]
    server.advance_clock("1m")
    dims = {"FileSystemId": fs}
    connected = _sum(cw, "AWS/EFS", "ClientConnections", dims, stat="Maximum", period=60)
    assert connected and connected[-1]["Maximum"] == 3  # on both mount targets' servers
    for c in clients:
        c.close()
    deadline = time.monotonic() + 60
    while True:  # the server sees a closed connection go shortly after the client closed it
        server.advance_clock("1m")
        last = _sum(cw, "AWS/EFS", "ClientConnections", dims, stat="Minimum", period=60)[-1]
        if last["Minimum"] == 0:
            break
        assert time.monotonic() < deadline, last
    permitted = _sum(cw, "AWS/EFS", "PermittedThroughput", dims, stat="Maximum", period=60)
    assert permitted and permitted[-1]["Maximum"] == 8 * 1024 * 1024
    assert permitted[-1]["Unit"] == "Bytes/Second"
