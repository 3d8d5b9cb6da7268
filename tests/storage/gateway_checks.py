"""Checks the two-gateway tests (test_gateways_postgres.py) share: waiting for a condition across
gateways, finding the engine host, and the parts of the engine host's takeover test that check one
forwarded service each (kept here so that test reads as its story: host, kill, take over, fence).
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
import uuid

import pytest
import redis
from botocore.exceptions import ClientError

from tests.strata_process import StrataProcess


def error_code(e: pytest.ExceptionInfo[ClientError]) -> str:
    return e.value.response["Error"]["Code"]


def until(check, what: str, timeout: float = 20.0):  # noqa: ANN001, ANN202 - a predicate
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.05)


def host_and_other(gateways: list[StrataProcess]) -> tuple[StrataProcess, StrataProcess]:
    """The engine host (CloudWatch and FIS run there) and the gateway that forwards to it."""
    hosts = until(
        lambda: [g for g in gateways if g.health()["engine_host"]["self"]] or None,
        "a gateway is the engine host",
        60,
    )
    other = gateways[1] if hosts[0] is gateways[0] else gateways[0]
    until(lambda: other.health()["engine_host"]["url"] == hosts[0].endpoint, "the other knows the host")
    return hosts[0], other


def a_snapshot_restores_beside_the_aof(gateway: StrataProcess, cid: str) -> None:
    """A snapshot of a node that keeps an AOF (a BGSAVE beside it), copied and restored into a new
    cache: the new node loads the RDB (a start with the AOF on would ignore it) and then keeps an
    AOF of its own."""
    ec = gateway.client("elasticache")
    ec.create_snapshot(CacheClusterId=cid, SnapshotName=f"{cid}-s")
    ec.copy_snapshot(SourceSnapshotName=f"{cid}-s", TargetSnapshotName=f"{cid}-c")
    ec.create_cache_cluster(CacheClusterId=f"{cid}-r", NumCacheNodes=1, SnapshotName=f"{cid}-c")

    def available() -> dict | None:
        (c,) = ec.describe_cache_clusters(CacheClusterId=f"{cid}-r", ShowCacheNodeInfo=True)["CacheClusters"]
        return c if c["CacheClusterStatus"] == "available" else None

    endpoint = until(available, "the restored cache", 60)["CacheNodes"][0]["Endpoint"]
    restored = redis.Redis(endpoint["Address"], endpoint["Port"], decode_responses=True)
    assert restored.mget([f"late-{i}" for i in range(100)]) == [str(i) for i in range(100)]
    until(lambda: restored.info("persistence")["aof_enabled"] == 1, "the restored node keeps an AOF")
    ec.delete_cache_cluster(CacheClusterId=f"{cid}-r")
    for name in (f"{cid}-s", f"{cid}-c"):
        ec.delete_snapshot(SnapshotName=name)


def ebs_blocks_stream_both_ways_through_the_forwarding_gateway(gateway: StrataProcess) -> None:
    """The EBS direct APIs (signing name "ebs"): a block's body up, and down again, forwarded."""
    ebs = gateway.client("ebs")
    snap = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    block = os.urandom(512 * 1024)
    digest = base64.b64encode(hashlib.sha256(block).digest()).decode()
    ebs.put_snapshot_block(
        SnapshotId=snap,
        BlockIndex=3,
        BlockData=block,
        DataLength=len(block),
        Checksum=digest,
        ChecksumAlgorithm="SHA256",
    )
    assert ebs.complete_snapshot(SnapshotId=snap, ChangedBlocksCount=1)["Status"] == "completed"
    listed = ebs.list_snapshot_blocks(SnapshotId=snap)["Blocks"]
    got = ebs.get_snapshot_block(SnapshotId=snap, BlockIndex=3, BlockToken=listed[0]["BlockToken"])
    assert got["BlockData"].read() == block and got["Checksum"] == digest


def the_host_judges_a_forwarded_request_by_its_client(gateway: StrataProcess, cid: str) -> None:
    """aws:SecureTransport on the host is the client's connection to the forwarding gateway (the
    gateways' own headers say so), never what a client's headers claim."""
    iam = gateway.client("iam")
    user = f"tls-{uuid.uuid4().hex[:6]}"
    iam.create_user(UserName=user)
    iam.put_user_policy(
        UserName=user,
        PolicyName="tls-only",
        PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":'
        '"elasticache:DescribeCacheClusters","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}',
    )
    key = iam.create_access_key(UserName=user)["AccessKey"]
    creds = {"access_key": key["AccessKeyId"], "secret_key": key["SecretAccessKey"]}
    over_tls = gateway.client("elasticache", https=True, **creds)
    assert over_tls.describe_cache_clusters(CacheClusterId=cid)["CacheClusters"][0]["CacheClusterId"] == cid
    plain = gateway.client("elasticache", **creds)
    plain.meta.events.register(
        "before-send.elasticache.*",
        lambda request, **_: request.headers.__setitem__("x-strata-forwarded-proto", "https"),
    )
    with pytest.raises(ClientError) as denied:
        plain.describe_cache_clusters(CacheClusterId=cid)
    assert error_code(denied) == "AccessDenied"


TERMINATE_HOST = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = "
    "'strata-engine-host/beat' AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory')"
)


def redis_info(endpoint: dict) -> dict | None:
    try:
        return redis.Redis(endpoint["Address"], endpoint["Port"]).info("server")
    except redis.RedisError:
        return None


def answers(client: redis.Redis, key: str) -> str | None:
    try:
        return client.get(key)
    except redis.RedisError:
        return None
