"""Serverless caches: real engines behind Endpoint/ReaderEndpoint, the storage maximum enforced by
the engine, a killed primary replaced by its replica, usage metered, AWS's errors. One server and one cache are shared by the module's tests;
the server counts a GB of DataStorage as 16 MiB (STRATA_LIMIT_ELASTICACHE_SERVERLESS_GB_BYTES), so
the maximum is reached in megabytes."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import botocore.exceptions
import pytest
import redis
from pymemcache.client.base import Client as MemcacheClient
from pymemcache.exceptions import MemcacheUnexpectedCloseError

from strata.storage.encrypted_volumes import unsupported
from tests.services.elasticache.conftest import eventually, memcached_exchange
from tests.storage.at_rest import files_holding, mounts_under, unmount_all
from tests.strata_process import StrataProcess

GB = 16 * 1024 * 1024  # one "GB" of DataStorage on this module's server
CHUNK = 512 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = StrataProcess(
        tmp_path_factory.mktemp("serverless") / "data",
        extra_env={"STRATA_LIMIT_ELASTICACHE_SERVERLESS_GB_BYTES": str(GB)},
    ).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def ca_file(server) -> str:
    return str(Path(server.data_dir) / "tls" / "ca.pem")


@pytest.fixture(scope="module")
def cache(server):
    """One Valkey serverless cache with a 1 GB storage maximum: (client, name, create response)."""
    ec = server.client("elasticache")
    name = "sls-shared"
    created = ec.create_serverless_cache(
        ServerlessCacheName=name,
        Engine="valkey",
        Description="first",
        CacheUsageLimits={"DataStorage": {"Maximum": 1, "Unit": "GB"}},
        Tags=[{"Key": "team", "Value": "cache"}],
    )["ServerlessCache"]
    yield ec, name, created
    try:
        ec.delete_serverless_cache(ServerlessCacheName=name)
    except botocore.exceptions.ClientError:
        pass  # deleted by a test


def connect(ca_file: str, ep: dict, **kw) -> redis.Redis:
    return redis.Redis(
        host=ep["Address"], port=ep["Port"], ssl=True, ssl_ca_certs=ca_file, socket_timeout=30, **kw
    )


def error_code(call, **kw) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call(**kw)
    return info.value.response["Error"]["Code"]


def test_endpoint_writes_and_reader_endpoint_reads_from_the_replica(cache, ca_file) -> None:
    ec, name, created = cache
    assert created["Status"] == "creating"
    assert created["ARN"].endswith(f":serverlesscache:{name}")
    found = ec.describe_serverless_caches(ServerlessCacheName=name)["ServerlessCaches"][0]
    assert found["Status"] == "available"
    assert (
        found["Engine"] == "valkey"
        and found["MajorEngineVersion"] == found["FullEngineVersion"].split(".")[0]
    )
    assert found["CacheUsageLimits"] == {"DataStorage": {"Maximum": 1, "Unit": "GB"}}
    assert found["SubnetIds"] and found["SecurityGroupIds"]
    writer = connect(ca_file, found["Endpoint"])
    reader = connect(ca_file, found["ReaderEndpoint"], single_connection_client=True)
    assert found["ReaderEndpoint"] != found["Endpoint"]
    writer.set("greeting", "hello")
    reader.execute_command("READONLY")  # a cluster replica serves reads to a READONLY connection
    eventually(lambda: reader.get("greeting") == b"hello", what="the replica behind the reader endpoint")
    with pytest.raises(redis.exceptions.MovedError):  # writes go to the primary
        reader.set("greeting", "from the reader")
    # cluster mode enabled, as AWS's serverless caches: cluster clients work, SELECT and
    # multi-key commands across slots do not
    cluster = redis.RedisCluster(
        host=found["Endpoint"]["Address"], port=found["Endpoint"]["Port"], ssl=True, ssl_ca_certs=ca_file
    )
    cluster.mset({"{user1}:a": "1", "{user1}:b": "2"})
    assert cluster.get("greeting") == b"hello" and cluster.get("{user1}:b") == b"2"
    cluster.close()
    with pytest.raises(redis.ResponseError, match="hash to the same slot"):  # CROSSSLOT
        writer.mset({"a": "1", "b": "2"})
    with pytest.raises(redis.ResponseError, match="SELECT"):
        writer.select(1)
    # in-transit encryption is always on: a plain connection gets no answer
    with pytest.raises(redis.ConnectionError):
        redis.Redis(
            host=found["Endpoint"]["Address"], port=found["Endpoint"]["Port"], socket_timeout=5
        ).ping()
    arn = found["ARN"]
    assert ec.list_tags_for_resource(ResourceName=arn)["TagList"] == [{"Key": "team", "Value": "cache"}]


def test_storage_maximum_is_the_engines_memory_cap(cache, ca_file) -> None:
    """At the maximum, keys with a TTL are evicted first; then writes get the engine's OOM error."""
    ec, name, _ = cache
    found = ec.describe_serverless_caches(ServerlessCacheName=name)["ServerlessCaches"][0]
    client = connect(ca_file, found["Endpoint"])
    memory = client.info("memory")
    assert memory["maxmemory"] == GB and memory["maxmemory_policy"] == "volatile-lru"
    client.set("expiring", "x", ex=3600)
    written = 0
    with pytest.raises(redis.ResponseError, match="maxmemory"):
        for i in range(2 * GB // CHUNK):
            client.set(f"fill:{i}", b"x" * CHUNK)
            written += CHUNK
    assert GB // 2 <= written <= GB
    assert client.get("expiring") is None  # evicted before writes were refused
    # a larger maximum takes the next write
    modified = ec.modify_serverless_cache(
        ServerlessCacheName=name,
        Description="second",
        CacheUsageLimits={"DataStorage": {"Maximum": 2, "Minimum": 1, "Unit": "GB"}},
    )["ServerlessCache"]
    assert modified["Description"] == "second"
    assert client.info("memory")["maxmemory"] == 2 * GB
    client.set("fill:after", b"x" * CHUNK)
    for key in list(client.scan_iter("fill:*")):
        client.delete(key)


def test_a_killed_primary_node_loses_no_replicated_write(cache, ca_file) -> None:
    """kill -9 of the primary's process: its replica takes over the endpoint with every write it
    had; the killed node comes back as the replica behind the reader endpoint."""
    ec, name, _ = cache
    found = ec.describe_serverless_caches(ServerlessCacheName=name)["ServerlessCaches"][0]
    writer = connect(ca_file, found["Endpoint"])
    for i in range(200):
        writer.set(f"kill:{i}", i)
    assert writer.execute_command("WAIT", 1, 30000) == 1  # the replica has them all
    pid = int(writer.info("server")["process_id"])
    os.kill(pid, signal.SIGKILL)

    def taken_over() -> bool:
        client = connect(ca_file, found["Endpoint"])
        return (
            int(client.info("server")["process_id"]) != pid and client.info("replication")["role"] == "master"
        )

    eventually(taken_over, 60, "the replica to take over the endpoint")
    client = connect(ca_file, found["Endpoint"])
    assert [client.get(f"kill:{i}") for i in range(200)] == [str(i).encode() for i in range(200)]
    client.set("after-kill", "1")

    def replica_has_it() -> bool:  # a new connection each time: the reader endpoint moves back
        with connect(ca_file, found["ReaderEndpoint"], single_connection_client=True) as reader:
            reader.execute_command("READONLY")
            return reader.info("replication")["role"] == "slave" and reader.get("after-kill") == b"1"

    eventually(replica_has_it, 60, "the restarted node to serve reads as the replica")
    for i in range(200):
        client.delete(f"kill:{i}")


def test_errors_are_aws_faults(cache) -> None:
    ec, name, _ = cache
    assert error_code(ec.create_serverless_cache, ServerlessCacheName=name, Engine="valkey") == (
        "ServerlessCacheAlreadyExistsFault"
    )
    assert (
        error_code(ec.describe_serverless_caches, ServerlessCacheName="nope")
        == "ServerlessCacheNotFoundFault"
    )
    assert (
        error_code(ec.delete_serverless_cache, ServerlessCacheName="nope") == "ServerlessCacheNotFoundFault"
    )
    assert (
        error_code(ec.modify_serverless_cache, ServerlessCacheName="nope") == "ServerlessCacheNotFoundFault"
    )
    bad = [
        {"Engine": "mysql"},
        {"Engine": "valkey", "MajorEngineVersion": "5"},
        {"Engine": "valkey", "CacheUsageLimits": {"DataStorage": {"Maximum": 0, "Unit": "GB"}}},
        {"Engine": "valkey", "CacheUsageLimits": {"DataStorage": {"Minimum": 5, "Maximum": 2, "Unit": "GB"}}},
        {"Engine": "valkey", "CacheUsageLimits": {"ECPUPerSecond": {"Minimum": 10}}},
        {"Engine": "valkey", "CacheUsageLimits": {"ECPUPerSecond": {"Maximum": 999}}},
        {"Engine": "valkey", "CacheUsageLimits": {"ECPUPerSecond": {"Maximum": 15_000_001}}},
        {"Engine": "valkey", "CacheUsageLimits": {"ECPUPerSecond": {"Minimum": 5000, "Maximum": 2000}}},
        {"Engine": "valkey", "KmsKeyId": "alias/no-such-key"},
        {"Engine": "valkey", "SnapshotRetentionLimit": 99},
        {"Engine": "valkey", "DailySnapshotTime": "25:00"},
        {"Engine": "memcached", "SnapshotRetentionLimit": 1},
        {
            "Engine": "valkey",
            "SnapshotArnsToRestore": [
                "arn:aws:elasticache:us-east-1:000000000000:serverlesscachesnapshot:nope"
            ],
        },
        {"Engine": "valkey", "SubnetIds": ["subnet-00000000000000000"]},
        {"Engine": "valkey", "SecurityGroupIds": ["sg-00000000000000000"]},
        {"Engine": "memcached", "UserGroupId": "nosuch"},
    ]
    for extra in bad:
        code = error_code(ec.create_serverless_cache, ServerlessCacheName="sls-bad", **extra)
        assert code in (
            "InvalidParameterValue",
            "InvalidParameterCombination",
            "UserGroupNotFound",
            "ServerlessCacheSnapshotNotFoundFault",
        ), (extra, code)
    assert (
        error_code(ec.describe_serverless_caches, ServerlessCacheName="sls-bad")
        == "ServerlessCacheNotFoundFault"
    )


def test_memcached_serverless_cache_is_metered_and_deleted(server, ca_file) -> None:
    ec = server.client("elasticache")
    name = "sls-memcached"
    ec.create_serverless_cache(ServerlessCacheName=name, Engine="memcached")
    found = ec.describe_serverless_caches(ServerlessCacheName=name)["ServerlessCaches"][0]
    assert found["MajorEngineVersion"] == "1.6"
    tls = ssl.create_default_context(cafile=ca_file)
    ep = (found["Endpoint"]["Address"], found["Endpoint"]["Port"])
    assert memcached_exchange(ep, b"set k 0 0 2\r\nhi\r\n", 1, tls) == b"STORED\r\n"
    reader = (found["ReaderEndpoint"]["Address"], found["ReaderEndpoint"]["Port"])
    assert memcached_exchange(reader, b"get k\r\n", 1, tls) == b"VALUE k 0 2\r\nhi\r\nEND\r\n"
    server.advance_clock("2h")  # two simulated hours of at least 1 GB (memcached's minimum)
    deleted = ec.delete_serverless_cache(ServerlessCacheName=name)["ServerlessCache"]
    assert deleted["Status"] == "deleting"
    assert (
        error_code(ec.describe_serverless_caches, ServerlessCacheName=name) == "ServerlessCacheNotFoundFault"
    )
    with pytest.raises(OSError):
        memcached_exchange(ep, b"get k\r\n", 1, tls)
    told = ec.describe_events(SourceIdentifier=name, SourceType="serverless-cache", Duration=180)["Events"]
    assert [e["Message"] for e in told] == [
        f"Serverless cache {name} created",
        f"Serverless cache {name} deleted",
    ]
    events = server.admin("/_strata/meter?service=elasticache")["events"]
    mine = [e for e in events if e["dims"].get("serverless_cache") == name]
    storage = sum(e["quantity"] for e in mine if e["event"] == "ServerlessStorageGBHours")
    assert 2 <= storage < 2.1
    assert any(e["event"] == "ServerlessECPUs" and e["quantity"] >= 2 for e in mine)
    # CloudWatch: the cache as one whole, by its name, as AWS publishes a serverless cache's metrics
    cw = server.client("cloudwatch")
    listed = cw.list_metrics(Namespace="AWS/ElastiCache", Dimensions=[{"Name": "clusterId", "Value": name}])
    assert {"BytesUsedForCache", "CacheHits", "CurrConnections"} <= {
        m["MetricName"] for m in listed["Metrics"]
    }
    assert not [
        m for m in cw.list_metrics(Namespace="AWS/ElastiCache")["Metrics"] if "~" in str(m["Dimensions"])
    ]  # no engine-side names


def test_user_group_is_enforced_on_every_node(cache, ca_file) -> None:
    ec, name, _ = cache
    ec.create_user(
        UserId="sls-admin",
        UserName="default",
        Engine="redis",
        AccessString="on ~* +@all",
        Passwords=["a" * 16],
    )
    ec.create_user(
        UserId="sls-app",
        UserName="app",
        Engine="redis",
        AccessString="on ~app:* +get +readonly",
        Passwords=["b" * 16],
    )
    ec.create_user_group(UserGroupId="sls-users", Engine="redis", UserIds=["sls-admin", "sls-app"])
    found = ec.modify_serverless_cache(ServerlessCacheName=name, UserGroupId="sls-users")["ServerlessCache"]
    assert found["UserGroupId"] == "sls-users"
    assert ec.describe_user_groups(UserGroupId="sls-users")["UserGroups"][0]["ServerlessCaches"] == [name]
    assert error_code(ec.delete_user_group, UserGroupId="sls-users") == "InvalidUserGroupState"
    admin = connect(ca_file, found["Endpoint"], password="a" * 16)
    admin.set("app:kept", "v")

    def check_app() -> None:
        app = connect(ca_file, found["Endpoint"], username="app", password="b" * 16)
        assert app.get("app:kept") == b"v"
        with pytest.raises(redis.exceptions.NoPermissionError):
            app.set("app:kept", "w")
        with pytest.raises(redis.exceptions.NoPermissionError):
            app.get("other")

    check_app()
    with pytest.raises(redis.AuthenticationError):
        connect(ca_file, found["Endpoint"], username="app", password="wrong" * 4).ping()
    # the replica behind the reader endpoint has the same users
    reader = connect(
        ca_file, found["ReaderEndpoint"], username="app", password="b" * 16, single_connection_client=True
    )
    reader.execute_command("READONLY")
    eventually(lambda: reader.get("app:kept") == b"v", what="the key on the replica")
    with pytest.raises(redis.exceptions.NoPermissionError):
        reader.get("other")
    ec.modify_serverless_cache(ServerlessCacheName=name, RemoveUserGroup=True)
    assert connect(ca_file, found["Endpoint"]).get("other") is None  # the default user is open again
    ec.delete_user_group(UserGroupId="sls-users")


def test_snapshots_restore_copy_and_daily_automatic_ones(server, cache, ca_file) -> None:
    ec, name, _ = cache
    found = ec.describe_serverless_caches(ServerlessCacheName=name)["ServerlessCaches"][0]
    connect(ca_file, found["Endpoint"]).set("snapped", "yes")
    made = ec.create_serverless_cache_snapshot(
        ServerlessCacheSnapshotName="sls-snap", ServerlessCacheName=name
    )["ServerlessCacheSnapshot"]
    assert made["Status"] == "creating" and made["SnapshotType"] == "manual"
    assert made["ServerlessCacheConfiguration"]["ServerlessCacheName"] == name
    assert (
        error_code(
            ec.create_serverless_cache_snapshot,
            ServerlessCacheSnapshotName="sls-snap",
            ServerlessCacheName=name,
        )
        == "ServerlessCacheSnapshotAlreadyExistsFault"
    )
    ec.copy_serverless_cache_snapshot(
        SourceServerlessCacheSnapshotName="sls-snap", TargetServerlessCacheSnapshotName="sls-copy"
    )
    listed = ec.describe_serverless_cache_snapshots(ServerlessCacheName=name)["ServerlessCacheSnapshots"]
    assert {s["ServerlessCacheSnapshotName"]: s["Status"] for s in listed} == {
        "sls-snap": "available",
        "sls-copy": "available",
    }
    copy_arn = next(s["ARN"] for s in listed if s["ServerlessCacheSnapshotName"] == "sls-copy")
    restored = ec.create_serverless_cache(
        ServerlessCacheName="sls-restored",
        Engine="valkey",
        SnapshotArnsToRestore=[copy_arn],
        SnapshotRetentionLimit=1,
        DailySnapshotTime="03:00",
    )["ServerlessCache"]
    assert restored["SnapshotRetentionLimit"] == 1 and restored["DailySnapshotTime"] == "03:00"
    ep = ec.describe_serverless_caches(ServerlessCacheName="sls-restored")["ServerlessCaches"][0]["Endpoint"]
    assert connect(ca_file, ep).get("snapped") == b"yes"

    def automated() -> list[dict]:
        return ec.describe_serverless_cache_snapshots(
            ServerlessCacheName="sls-restored", SnapshotType="automated"
        )["ServerlessCacheSnapshots"]

    assert automated() == []
    server.advance_clock("1d")
    eventually(lambda: len(automated()) == 1, what="the daily automatic snapshot")
    ec.delete_serverless_cache(ServerlessCacheName="sls-restored", FinalSnapshotName="sls-final")
    final = ec.describe_serverless_cache_snapshots(ServerlessCacheSnapshotName="sls-final")[
        "ServerlessCacheSnapshots"
    ]
    assert final[0]["SnapshotType"] == "manual"
    assert automated() == []  # automatic snapshots go with their cache
    for snap in ("sls-snap", "sls-copy", "sls-final"):
        assert (
            ec.delete_serverless_cache_snapshot(ServerlessCacheSnapshotName=snap)["ServerlessCacheSnapshot"][
                "Status"
            ]
            == "deleting"
        )
    assert error_code(ec.delete_serverless_cache_snapshot, ServerlessCacheSnapshotName="sls-snap") == (
        "ServerlessCacheSnapshotNotFoundFault"
    )


def test_snapshot_exports_to_a_bucket_that_grants_elasticache(server, cache, ca_file, tmp_path) -> None:
    """The exported object is the snapshot's RDB file (the engine's checker loads it), written only
    to a bucket of the snapshot's region whose policy grants ElastiCache's service principal."""
    ec, name, _ = cache
    found = ec.describe_serverless_caches(ServerlessCacheName=name)["ServerlessCaches"][0]
    connect(ca_file, found["Endpoint"]).set("exported:key", "exported-value")
    # the snapshot is encrypted under a key of its own (in its own volume): the export reads it
    key = server.client("kms").create_key(Description="export")["KeyMetadata"]
    encrypted = {"KmsKeyId": key["KeyId"]} if unsupported() is None else {}
    snap = ec.create_serverless_cache_snapshot(
        ServerlessCacheSnapshotName="sls-export", ServerlessCacheName=name, **encrypted
    )["ServerlessCacheSnapshot"]
    if encrypted:
        assert snap["KmsKeyId"] == key["Arn"]
        assert (Path(server.data_dir) / "elasticache" / "volumes" / "sls-snapshot-sls-export.img").exists()
    assert (
        error_code(
            ec.copy_serverless_cache_snapshot,
            SourceServerlessCacheSnapshotName="sls-export",
            TargetServerlessCacheSnapshotName="sls-export-copy",
            KmsKeyId="alias/no-such-key",
        )
        == "InvalidParameterValue"
    )
    s3 = server.client("s3")
    bucket, elsewhere = "sls-export-bucket", "sls-export-west"
    s3.create_bucket(Bucket=bucket)
    server.client("s3", region="us-west-2").create_bucket(
        Bucket=elsewhere, CreateBucketConfiguration={"LocationConstraint": "us-west-2"}
    )

    def export(to: str, snapshot: str = "sls-export") -> dict:
        return ec.export_serverless_cache_snapshot(ServerlessCacheSnapshotName=snapshot, S3BucketName=to)

    def refused(to: str, snapshot: str = "sls-export") -> tuple[str, str]:
        with pytest.raises(botocore.exceptions.ClientError) as info:
            export(to, snapshot)
        return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]

    assert refused(bucket, "nope")[0] == "ServerlessCacheSnapshotNotFoundFault"
    assert refused("sls-no-such-bucket")[0] == "InvalidParameterValue"
    assert refused(elsewhere)[0] == "InvalidParameterValue"  # another region
    code, message = refused(bucket)  # no grant to ElastiCache yet
    assert code == "InvalidParameterValue" and "permissions" in message

    def grant(actions: list[str], account: str = "000000000000") -> None:
        statement = {
            "Effect": "Allow",
            "Principal": {"Service": "us-east-1.elasticache-snapshot.amazonaws.com"},
            "Action": actions,
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            "Condition": {"StringEquals": {"aws:SourceAccount": account}},
        }
        s3.put_bucket_policy(
            Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]})
        )

    grant(["s3:ListBucket", "s3:GetBucketAcl"])  # no s3:PutObject
    assert "WRITE" in refused(bucket)[1]
    everything = ["s3:PutObject", "s3:GetObject", "s3:ListBucket", "s3:GetBucketAcl"]
    grant(everything, account="111111111111")  # for another account's exports only
    assert refused(bucket)[0] == "InvalidParameterValue"
    grant(everything)
    made = export(bucket)["ServerlessCacheSnapshot"]
    assert made["ServerlessCacheSnapshotName"] == "sls-export" and made["Status"] == "exporting"
    body = s3.get_object(Bucket=bucket, Key="sls-export-0001.rdb")["Body"].read()
    assert body.startswith(b"REDIS") and b"exported:key" in body
    rdb = tmp_path / "exported.rdb"
    rdb.write_bytes(body)
    checked = subprocess.run(["redis-check-rdb", str(rdb)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and "RDB looks OK" in checked.stdout, checked.stdout
    listed = ec.describe_serverless_cache_snapshots(ServerlessCacheSnapshotName="sls-export")
    assert listed["ServerlessCacheSnapshots"][0]["Status"] == "available"
    ec.delete_serverless_cache_snapshot(ServerlessCacheSnapshotName="sls-export")


MARKER = "strata-serverless-at-rest-marker-9d3a"


@pytest.mark.skipif(unsupported() is not None, reason=f"encrypted volumes: {unsupported()}")
def test_kms_key_encrypts_the_cache_and_its_snapshots_at_rest(strata_factory) -> None:
    """With KmsKeyId the cache's RDB files and its snapshots are ciphertext on disk; with the key
    disabled, the cache stays locked after a restart."""
    server = strata_factory()
    try:
        ec, kms = server.client("elasticache"), server.client("kms")
        ca = str(Path(server.data_dir) / "tls" / "ca.pem")
        key = kms.create_key(Description="serverless cache")["KeyMetadata"]
        made = ec.create_serverless_cache(
            ServerlessCacheName="sls-enc", Engine="valkey", KmsKeyId=key["KeyId"]
        )
        assert made["ServerlessCache"]["KmsKeyId"] == key["Arn"]

        def endpoint(name: str) -> dict:
            return ec.describe_serverless_caches(ServerlessCacheName=name)["ServerlessCaches"][0]["Endpoint"]

        connect(ca, endpoint("sls-enc")).mset(
            {f"{{m}}{MARKER}-{i}": f"{MARKER}-value" for i in range(100)}
        )  # one slot
        snap = ec.create_serverless_cache_snapshot(
            ServerlessCacheSnapshotName="sls-enc-snap", ServerlessCacheName="sls-enc"
        )["ServerlessCacheSnapshot"]
        assert snap["KmsKeyId"] == key["Arn"]
        copy = ec.copy_serverless_cache_snapshot(
            SourceServerlessCacheSnapshotName="sls-enc-snap", TargetServerlessCacheSnapshotName="sls-enc-copy"
        )["ServerlessCacheSnapshot"]
        assert copy["KmsKeyId"] == key["Arn"]
        restored = ec.create_serverless_cache(
            ServerlessCacheName="sls-enc-restored", Engine="valkey", SnapshotArnsToRestore=[copy["ARN"]]
        )["ServerlessCache"]
        assert restored["KmsKeyId"] == key["Arn"]  # a restore keeps its snapshot's key
        assert connect(ca, endpoint("sls-enc-restored")).get(f"{{m}}{MARKER}-5") == f"{MARKER}-value".encode()
        ec.delete_serverless_cache(ServerlessCacheName="sls-enc-restored")

        server.stop()  # the engines save their RDB files; the volumes are unmounted
        data = Path(server.data_dir) / "elasticache"
        assert not mounts_under(Path(server.data_dir))
        assert sorted(p.name for p in (data / "volumes").glob("*.img")) == [
            "serverless-sls-enc.img",
            "sls-snapshot-sls-enc-copy.img",
            "sls-snapshot-sls-enc-snap.img",
        ]
        assert files_holding(data, MARKER.encode()) == []

        server.start()  # the volumes open again with the key
        ec, kms = server.client("elasticache"), server.client("kms")
        assert connect(ca, endpoint("sls-enc")).get(f"{{m}}{MARKER}-7") == f"{MARKER}-value".encode()
        kms.disable_key(KeyId=key["KeyId"])
        server.stop()
        server.start()  # without its key the data stays locked: no engine starts on it
        ec = server.client("elasticache")
        assert not mounts_under(Path(server.data_dir))
        with pytest.raises(redis.ConnectionError):
            connect(ca, endpoint("sls-enc")).ping()
        # nor are its snapshots: copying or exporting one is refused, not a server error
        assert (
            error_code(
                ec.copy_serverless_cache_snapshot,
                SourceServerlessCacheSnapshotName="sls-enc-snap",
                TargetServerlessCacheSnapshotName="sls-enc-copy2",
            )
            == "InvalidParameterValue"  # its KMS key is disabled
        )
        s3 = server.client("s3")
        s3.create_bucket(Bucket="sls-enc-exports")
        grant = {
            "Effect": "Allow",
            "Principal": {"Service": "us-east-1.elasticache-snapshot.amazonaws.com"},
            "Action": ["s3:PutObject", "s3:ListBucket", "s3:GetBucketAcl"],
            "Resource": ["arn:aws:s3:::sls-enc-exports", "arn:aws:s3:::sls-enc-exports/*"],
        }
        s3.put_bucket_policy(Bucket="sls-enc-exports", Policy=json.dumps({"Statement": [grant]}))
        assert (
            error_code(
                ec.export_serverless_cache_snapshot,
                ServerlessCacheSnapshotName="sls-enc-snap",
                S3BucketName="sls-enc-exports",
            )
            == "InvalidServerlessCacheSnapshotStateFault"
        )
        ec.delete_serverless_cache(ServerlessCacheName="sls-enc")
        for name in ("sls-enc-snap", "sls-enc-copy"):
            ec.delete_serverless_cache_snapshot(ServerlessCacheSnapshotName=name)
        assert not list((data / "volumes").glob("*.img"))
    finally:
        server.stop()
        unmount_all(Path(server.data_dir))


def ecpu_sums(server, name: str) -> dict[str, float]:
    """CloudWatch's ElastiCacheProcessingUnits and ThrottledCmds of a serverless cache, summed over
    all time (the clock is moved a minute first, so the publisher samples what happened)."""
    server.advance_clock("1m")
    cw = server.client("cloudwatch")
    out = {}
    for metric in ("ElastiCacheProcessingUnits", "ThrottledCmds"):
        points = cw.get_metric_statistics(
            Namespace="AWS/ElastiCache",
            MetricName=metric,
            Dimensions=[{"Name": "clusterId", "Value": name}],
            StartTime=datetime(2000, 1, 1, tzinfo=UTC),
            EndTime=datetime(2099, 1, 1, tzinfo=UTC),
            Period=60 * 60 * 24 * 30,
            Statistics=["Sum"],
        )["Datapoints"]
        out[metric] = sum(p["Sum"] for p in points)
    return out


def test_ecpu_maximum_throttles_commands_and_changes_live(server, cache, ca_file) -> None:
    """ECPUPerSecond.Maximum puts the ECPU proxy on the endpoint (same address and port): a
    pipeline above the rate is held, not refused; removing the maximum gives the endpoint back to
    the engine. Throttling is observed by the proxy's counts (ThrottledCmds), never by timings."""
    ec, name, _ = cache
    found = ec.describe_serverless_caches(ServerlessCacheName=name)["ServerlessCaches"][0]
    storage = {"DataStorage": {"Maximum": 2, "Unit": "GB"}}
    direct = connect(ca_file, found["Endpoint"])
    direct.set("ecpu:k", "v")
    endpoint = f"{found['Endpoint']['Address']}:{found['Endpoint']['Port']}"
    assert direct.client_info()["laddr"] == endpoint  # no limit: the engine itself on the endpoint
    modified = ec.modify_serverless_cache(
        ServerlessCacheName=name,
        CacheUsageLimits={**storage, "ECPUPerSecond": {"Maximum": 1000, "Minimum": 1000}},
    )["ServerlessCache"]
    assert modified["CacheUsageLimits"]["ECPUPerSecond"] == {"Maximum": 1000, "Minimum": 1000}
    assert (modified["Endpoint"], modified["ReaderEndpoint"]) == (found["Endpoint"], found["ReaderEndpoint"])
    before = ecpu_sums(server, name)
    client = connect(ca_file, found["Endpoint"])
    assert client.client_info()["laddr"] != endpoint  # the proxy's connection, to the node
    pipe = client.pipeline(transaction=False)
    for _ in range(3000):  # 3,000 ECPUs at 1,000 a second: the proxy must hold some
        pipe.get("ecpu:k")
    assert pipe.execute() == [b"v"] * 3000
    with connect(ca_file, found["ReaderEndpoint"], single_connection_client=True) as reader:
        reader.execute_command("READONLY")  # the reader endpoint is proxied too
        eventually(lambda: reader.get("ecpu:k") == b"v", what="the key on the replica")
    # a cluster client is told the nodes are at the endpoint, so it stays behind the proxy
    cluster = redis.RedisCluster(
        host=found["Endpoint"]["Address"], port=found["Endpoint"]["Port"], ssl=True, ssl_ca_certs=ca_file
    )
    assert {(n.host, n.port) for n in cluster.get_nodes()} == {
        (found["Endpoint"]["Address"], found["Endpoint"]["Port"])
    }
    assert cluster.get("ecpu:k") == b"v"
    assert cluster.get_default_node().redis_connection.client_info()["laddr"] != endpoint
    cluster.close()
    # a killed primary: the proxy follows the replica that takes over, then reads the restarted node
    assert client.execute_command("WAIT", 1, 30000) == 1
    pid = int(client.info("server")["process_id"])
    os.kill(pid, signal.SIGKILL)

    def taken_over() -> bool:
        with connect(ca_file, found["Endpoint"], single_connection_client=True) as c:
            return int(c.info("server")["process_id"]) != pid and c.get("ecpu:k") == b"v"

    eventually(taken_over, 60, "the replica to take over behind the proxy")

    def replica_reads() -> bool:
        with connect(ca_file, found["ReaderEndpoint"], single_connection_client=True) as r:
            r.execute_command("READONLY")
            return r.info("replication")["role"] == "slave" and r.get("ecpu:k") == b"v"

    eventually(replica_reads, 60, "the restarted node behind the reader endpoint")
    after = ecpu_sums(server, name)
    assert after["ElastiCacheProcessingUnits"] - before["ElastiCacheProcessingUnits"] >= 3000
    assert after["ThrottledCmds"] > before["ThrottledCmds"]
    # removed: the engine is on the endpoint again, and nothing is counted or held
    ec.modify_serverless_cache(ServerlessCacheName=name, CacheUsageLimits=storage)
    plain = connect(ca_file, found["Endpoint"])
    assert plain.client_info()["laddr"] == endpoint
    pipe = plain.pipeline(transaction=False)
    for _ in range(3000):
        pipe.get("ecpu:k")
    assert pipe.execute() == [b"v"] * 3000
    assert ecpu_sums(server, name) == after
    plain.delete("ecpu:k")


def test_memcached_ecpu_maximum_holds_a_pipelined_burst(server, ca_file) -> None:
    """A memcached serverless cache with a maximum is behind the proxy (text and meta commands,
    pymemcache); without one the endpoint's kernel route leads to memcached itself, and a maximum
    added live cuts the clients connected directly, which reconnect through the proxy."""
    ec = server.client("elasticache")
    name = "sls-mc-ecpu"
    ec.create_serverless_cache(
        ServerlessCacheName=name, Engine="memcached", CacheUsageLimits={"ECPUPerSecond": {"Maximum": 1000}}
    )
    try:
        found = ec.describe_serverless_caches(ServerlessCacheName=name)["ServerlessCaches"][0]
        ep = (found["Endpoint"]["Address"], found["Endpoint"]["Port"])
        tls = ssl.create_default_context(cafile=ca_file)
        client = MemcacheClient(ep, tls_context=tls, timeout=30)
        assert client.set("k", b"x" * 3000, noreply=False)
        assert client.get_many([f"k{i}" for i in range(50)] + ["k"]) == {"k": b"x" * 3000}
        meta = memcached_exchange(ep, b"ms m 2 T0\r\nhi\r\nmg m v\r\nmn\r\n", 1, tls)
        assert meta == b"HD\r\nVA 2\r\nhi\r\nMN\r\n"
        assert client.set("s", b"hi", noreply=False)
        first = ecpu_sums(server, name)
        big = memcached_exchange(ep, b"get k\r\n" * 100, 100, tls)  # 3,025 B answers: ~2.95 ECPUs each
        assert big.count(b"VALUE k 0 3000\r\n") == 100
        second = ecpu_sums(server, name)
        assert 290 <= second["ElastiCacheProcessingUnits"] - first["ElastiCacheProcessingUnits"] <= 310
        burst = memcached_exchange(ep, b"get s\r\n" * 1500, 1500, tls)  # 1 ECPU each, over 1,000/s
        assert burst.count(b"VALUE s 0 2\r\n") == 1500
        third = ecpu_sums(server, name)
        assert third["ElastiCacheProcessingUnits"] - second["ElastiCacheProcessingUnits"] >= 1500
        assert third["ThrottledCmds"] > second["ThrottledCmds"]
        # a higher maximum, live: the same burst is no longer held
        ec.modify_serverless_cache(
            ServerlessCacheName=name, CacheUsageLimits={"ECPUPerSecond": {"Maximum": 15_000_000}}
        )
        assert memcached_exchange(ep, b"get s\r\n" * 1500, 1500, tls).count(b"VALUE s 0 2\r\n") == 1500
        fourth = ecpu_sums(server, name)
        assert fourth["ElastiCacheProcessingUnits"] - third["ElastiCacheProcessingUnits"] >= 1500
        assert fourth["ThrottledCmds"] == third["ThrottledCmds"]
        storage_only = {"DataStorage": {"Maximum": 5000, "Unit": "GB"}}  # no ECPU maximum any more
        limits = ec.modify_serverless_cache(ServerlessCacheName=name, CacheUsageLimits=storage_only)
        assert limits["ServerlessCache"]["CacheUsageLimits"] == storage_only
        # the proxy is gone with its connections: the client reconnects, to memcached itself
        with pytest.raises((MemcacheUnexpectedCloseError, OSError)):
            client.get("k")
        assert client.get("k") == b"x" * 3000  # the same data: the limit changed, not the engine
        assert served_directly(client)
        fifth = ecpu_sums(server, name)
        assert memcached_exchange(ep, b"get s\r\n" * 1500, 1500, tls).count(b"VALUE s 0 2\r\n") == 1500
        assert ecpu_sums(server, name) == fifth  # nothing proxied: nothing counted nor held
        # a maximum again, live: the direct connection is cut; reconnected, the client is proxied
        ec.modify_serverless_cache(
            ServerlessCacheName=name, CacheUsageLimits={"ECPUPerSecond": {"Maximum": 1000}}
        )
        with pytest.raises((MemcacheUnexpectedCloseError, OSError)):
            client.get("k")
        for _ in range(10):  # ~2.95 ECPUs each, counted by the proxy
            assert client.get("k") == b"x" * 3000
        sixth = ecpu_sums(server, name)
        assert sixth["ElastiCacheProcessingUnits"] - fifth["ElastiCacheProcessingUnits"] >= 25
        assert memcached_exchange(ep, b"get s\r\n" * 1500, 1500, tls).count(b"VALUE s 0 2\r\n") == 1500
        assert ecpu_sums(server, name)["ThrottledCmds"] > sixth["ThrottledCmds"]
    finally:
        ec.delete_serverless_cache(ServerlessCacheName=name)


def served_directly(client: MemcacheClient) -> bool:
    """Is the client's connection memcached's own (memcached lists the client's address among its
    connections), or the proxy's?"""
    assert client.sock is not None
    host, port = client.sock.getsockname()[:2]
    conns = client.raw_command(b"stats conns", b"END\r\n")
    return f"{host}:{port}".encode() in conns
