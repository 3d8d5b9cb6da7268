"""Storage and capacity AWS bills by the month, metered over simulated time from real resources:
DynamoDB table storage, KMS key-months (with rotations), RDS backup storage beyond the free
allowance, ElastiCache snapshots beyond the free one, and Aurora Serverless v2 ACU-hours; and
priced on the bill."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.services.elasticache.conftest import node_endpoints
from tests.services.rds.helpers import PASSWORD, USER, create_pg, pg_connect, wait_status
from tests.strata_process import StrataProcess

GB = 2**30


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrataProcess]:
    s = StrataProcess(tmp_path_factory.mktemp("stored") / "data").start()
    yield s
    s.stop()


def _metered(server: StrataProcess, service: str, event: str, **dims: str) -> float:
    events = server.admin(f"/_strata/meter?service={service}")["events"]
    return sum(
        e["quantity"]
        for e in events
        if e["event"] == event and all(e["dims"].get(k) == v for k, v in dims.items())
    )


def _bill_line(server: StrataProcess, service: str, usage_type: str) -> dict:
    doc = server.admin("/_strata/bill?from=2000-01-01")
    lines = {line["usage_type"]: line for line in doc["services"][service]["lines"]}
    return lines[usage_type]


def test_dynamodb_table_storage_with_its_per_item_overhead(server: StrataProcess, unique: str) -> None:
    ddb = server.client("dynamodb")
    table = f"stored-{unique}"
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "g", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
        GlobalSecondaryIndexes=[
            {
                "IndexName": "byg",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    for i in range(10):
        item = {"pk": {"S": f"k{i}"}, "v": {"S": "x" * 1000}}
        if i < 4:  # four items in the index too
            item["g"] = {"S": "x"}
        ddb.put_item(TableName=table, Item=item)
    described = ddb.describe_table(TableName=table)["Table"]
    size = described["TableSizeBytes"]
    index_size = described["GlobalSecondaryIndexes"][0]["IndexSizeBytes"]
    assert size > 10_000 and index_size > 4_000
    server.advance_clock("2h")
    byte_hours = _metered(server, "dynamodb", "TimedStorage-ByteHrs", table=table)
    billable = size + 100 * 10 + index_size + 100 * 4  # DynamoDB adds 100 bytes per item and entry
    assert 2 * billable <= byte_hours <= 2.05 * billable  # two hours and the seconds the test took
    line = _bill_line(server, "dynamodb", "TimedStorage-ByteHrs")
    assert line["unit"] == "GB-Mo"
    assert line["cost"] == pytest.approx(line["quantity"] * 0.25)  # $0.25 per GB-month


def test_kms_key_months_with_rotations_until_deletion_is_scheduled(server: StrataProcess) -> None:
    kms = server.client("kms")
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    managed = kms.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]["KeyId"]
    server.advance_clock("1h")
    first = _metered(server, "kms", "KeyHours", key=key)
    assert 1.0 <= first <= 1.05
    kms.rotate_key_on_demand(KeyId=key)
    server.advance_clock("1h")
    second = _metered(server, "kms", "KeyHours", key=key) - first
    assert 2.0 <= second <= 2.1  # the first rotation bills as a second key
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    before = _metered(server, "kms", "KeyHours", key=key)
    server.advance_clock("3h")
    assert _metered(server, "kms", "KeyHours", key=key) - before < 0.1  # pending deletion: not billed
    assert _metered(server, "kms", "KeyHours", key=managed) == 0  # AWS managed keys are free
    line = _bill_line(server, "kms", "KMS-Keys")
    assert line["unit"] == "Keys-Mo"
    assert line["cost"] == pytest.approx(line["quantity"] * 1.0)  # $1 per key-month


def test_rds_backup_storage_beyond_the_free_allowance(server: StrataProcess, unique: str) -> None:
    rds = server.client("rds")
    ident = f"bk-{unique}"
    create_pg(rds, ident)
    snap = f"keep-{unique}"
    rds.create_db_snapshot(DBInstanceIdentifier=ident, DBSnapshotIdentifier=snap)
    deadline = time.monotonic() + 180
    while rds.describe_db_snapshots(DBSnapshotIdentifier=snap)["DBSnapshots"][0]["Status"] != "available":
        assert time.monotonic() < deadline, "the snapshot never became available"
        time.sleep(0.2)
    server.advance_clock("1h")
    # the instance's 20 GiB of provisioned storage covers its backups: nothing charged
    assert _metered(server, "rds", "BackupStorage") == 0
    # its hours and its provisioned storage are (metered by the rule, or by the 30 s schedule)
    deadline = time.monotonic() + 90
    while _metered(server, "rds", "InstanceHours", instance=ident) < 1:
        assert time.monotonic() < deadline, "no instance hours"
        time.sleep(0.5)
    assert 20 <= _metered(server, "rds", "StorageGBHours", instance=ident) <= 21
    assert _bill_line(server, "rds", "InstanceUsage")["cost"] == pytest.approx(
        _metered(server, "rds", "InstanceHours", instance=ident) * 0.018,  # db.t3.micro, PostgreSQL
        rel=0.02,  # the 30 s schedule may meter a few more seconds between the two reads
    )
    storage = _bill_line(server, "rds", "RDS:GP2-Storage")
    assert storage["cost"] == pytest.approx(storage["quantity"] * 0.115)
    rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True)
    _wait_gone(rds, ident)
    server.advance_clock("2h")
    # no instance left: the manual snapshot's bytes are all chargeable, for (at least) two hours
    charged = _metered(server, "rds", "BackupStorage")
    assert charged >= 2 * 1_000_000  # a PostgreSQL base backup is tens of MB
    line = _bill_line(server, "rds", "RDS:ChargedBackupUsage")
    assert line["cost"] == pytest.approx(charged / GB / 730 * 0.095)


def _wait_gone(rds: Any, ident: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if not [i for i in rds.describe_db_instances()["DBInstances"] if i["DBInstanceIdentifier"] == ident]:
            return
        time.sleep(0.2)
    raise AssertionError(f"{ident} was not deleted")


def test_aurora_serverless_v2_is_billed_in_acu_hours_and_its_io(server: StrataProcess, unique: str) -> None:
    rds = server.client("rds")
    cid, ident = f"sl-{unique}", f"sl-w-{unique}"
    rds.create_db_cluster(
        DBClusterIdentifier=cid,
        Engine="aurora-postgresql",
        MasterUsername=USER,
        MasterUserPassword=PASSWORD,
        DatabaseName="app",
        ServerlessV2ScalingConfiguration={"MinCapacity": 2, "MaxCapacity": 8},
    )
    rds.create_db_instance(
        DBInstanceIdentifier=ident,
        DBClusterIdentifier=cid,
        Engine="aurora-postgresql",
        DBInstanceClass="db.serverless",
    )
    wait_status(rds, ident)
    before = _metered(server, "rds", "ServerlessV2ACUHours", instance=ident)
    server.advance_clock("1h")
    # metered by the rule, or (if its first backup kept it busy then) by the next 30 s schedule
    deadline = time.monotonic() + 90
    while (acu_hours := _metered(server, "rds", "ServerlessV2ACUHours", instance=ident) - before) < 2:
        assert time.monotonic() < deadline, acu_hours
        time.sleep(0.5)
    assert acu_hours <= 2.1  # MinCapacity 2 ACUs for an hour
    assert _metered(server, "rds", "InstanceHours", instance=ident) == 0
    line = _bill_line(server, "rds", "Aurora:ServerlessV2Usage")
    assert line["cost"] == pytest.approx(line["quantity"] * 0.12)

    # I/O requests, counted by the engine: a write, once the engine has counted it
    endpoint = wait_status(rds, ident)
    with pg_connect(endpoint) as conn, pg_connect(endpoint) as watcher:
        before_writes = _engine_writes(watcher)
        conn.execute("CREATE TABLE t AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 2000) g")
        deadline = time.monotonic() + 30
        while _engine_writes(watcher) <= before_writes:
            assert time.monotonic() < deadline, "the engine never counted the writes"
            time.sleep(0.2)
    deadline = time.monotonic() + 120
    while _metered(server, "rds", "AuroraIORequests", instance=ident) <= 0:
        assert time.monotonic() < deadline, "no Aurora I/O metered"
        server.advance_clock("30m")  # the rds.backups rule meters it (a busy instance on a later run)
    io = _bill_line(server, "rds", "Aurora:StorageIOUsage")
    assert io["quantity"] > 0 and io["cost"] == pytest.approx(io["quantity"] * 0.20 / 1e6)


def _engine_writes(conn: Any) -> int:
    """Writes PostgreSQL (18) has counted in its statistics so far."""
    row = conn.execute(
        "SELECT COALESCE(sum(writes), 0) + COALESCE(sum(extends), 0) FROM pg_stat_io"
    ).fetchone()
    return int(row[0])


def _snapshot(ec: Any, name: str, cluster: str) -> int:
    ec.create_snapshot(SnapshotName=name, CacheClusterId=cluster)
    deadline = time.monotonic() + 120
    while True:
        snap = ec.describe_snapshots(SnapshotName=name)["Snapshots"][0]
        if snap["SnapshotStatus"] == "available":
            return sum(int(n["CacheSize"].split()[0]) for n in snap["NodeSnapshots"]) * 2**20
        assert time.monotonic() < deadline, "the snapshot never became available"
        time.sleep(0.2)


def test_elasticache_backup_storage_beyond_one_free_snapshot(server: StrataProcess, unique: str) -> None:
    ec = server.client("elasticache")
    cluster = f"bk-{unique}"
    ec.create_cache_cluster(
        CacheClusterId=cluster, Engine="redis", CacheNodeType="cache.t3.micro", NumCacheNodes=1
    )
    node_endpoints(ec, cluster)  # waits until available
    first = _snapshot(ec, f"one-{unique}", cluster)
    before = _metered(server, "elasticache", "BackupStorage")
    server.advance_clock("1h")
    assert _metered(server, "elasticache", "BackupStorage") == before  # one per cluster is free
    _snapshot(ec, f"two-{unique}", cluster)
    server.advance_clock("1h")
    charged = _metered(server, "elasticache", "BackupStorage") - before
    assert first <= charged <= 1.1 * first  # the older one, for an hour (and the test's seconds)
    line = _bill_line(server, "elasticache", "BackupUsage")
    assert line["cost"] == pytest.approx(line["quantity"] * 0.085)
