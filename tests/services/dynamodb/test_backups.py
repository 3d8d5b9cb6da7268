"""Backups and point-in-time recovery (backups.py, pitr.py, backup_operations.py): a restore
returns exactly the data of the backup or of the chosen second, into a new table that is
CREATING on the simulated clock; everything survives a restart. The server is the package's
`clock_server`.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.services.dynamodb.conftest import key_schema
from tests.strata_process import StrataProcess


@pytest.fixture(scope="module")
def server(clock_server: StrataProcess) -> StrataProcess:
    return clock_server


@pytest.fixture
def ddb(server: StrataProcess) -> Any:
    return server.client("dynamodb")


def make(ddb: Any, name: str, gsi: bool = False) -> str:
    spec = key_schema(("id", "S"))
    kw: dict = {}
    if gsi:
        spec["AttributeDefinitions"].append({"AttributeName": "g", "AttributeType": "S"})
        kw["GlobalSecondaryIndexes"] = [
            {
                "IndexName": "byg",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ]
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **spec, **kw)
    return name


def items(ddb: Any, name: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    kw: dict = {"TableName": name, "ConsistentRead": True}
    while True:
        page = ddb.scan(**kw)
        out.update({i["id"]["S"]: i for i in page["Items"]})
        if "LastEvaluatedKey" not in page:
            return out
        kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def wait_active(server: StrataProcess, ddb: Any, name: str) -> dict:
    """Restores take RESTORE_SECONDS of simulated time: move the clock, poll until ACTIVE."""
    server.advance_clock("60s")
    deadline = time.monotonic() + 60
    while True:
        desc = ddb.describe_table(TableName=name)["Table"]
        if desc["TableStatus"] == "ACTIVE":
            return desc
        assert time.monotonic() < deadline, desc
        time.sleep(0.1)


def available(ddb: Any, arn: str) -> dict:
    """CreateBackup answers CREATING; the backup is AVAILABLE once written: poll for it."""
    deadline = time.monotonic() + 60
    while True:
        details = ddb.describe_backup(BackupArn=arn)["BackupDescription"]["BackupDetails"]
        if details["BackupStatus"] == "AVAILABLE":
            return details
        assert details["BackupStatus"] == "CREATING" and time.monotonic() < deadline, details
        time.sleep(0.05)


def put(ddb: Any, name: str, key: str, value: str, **extra: Any) -> None:
    ddb.put_item(TableName=name, Item={"id": {"S": key}, "v": {"S": value}, **extra})


def test_backup_and_restore_return_the_data_of_the_backup(
    server: StrataProcess, ddb: Any, unique: str
) -> None:
    src = make(ddb, f"src-{unique}", gsi=True)
    for i in range(30):
        put(ddb, src, f"k{i}", f"v{i}", g={"S": f"g{i % 3}"})
    expected = items(ddb, src)
    details = ddb.create_backup(TableName=src, BackupName="before")["BackupDetails"]
    assert details["BackupStatus"] == "CREATING" and details["BackupType"] == "USER"
    assert details["BackupArn"].startswith(f"arn:aws:dynamodb:us-east-1:000000000000:table/{src}/backup/")
    put(ddb, src, "k0", "changed")  # after the request: not in the backup, however long it takes
    ddb.delete_item(TableName=src, Key={"id": {"S": "k1"}})
    put(ddb, src, "new", "after")
    assert available(ddb, details["BackupArn"])["BackupSizeBytes"] > 0

    desc = ddb.describe_backup(BackupArn=details["BackupArn"])["BackupDescription"]
    assert desc["SourceTableDetails"]["ItemCount"] == 30
    assert desc["SourceTableFeatureDetails"]["GlobalSecondaryIndexes"][0]["IndexName"] == "byg"
    listed = ddb.list_backups(TableName=src)["BackupSummaries"]
    assert [b["BackupArn"] for b in listed] == [details["BackupArn"]]

    target = f"dst-{unique}"
    out = ddb.restore_table_from_backup(TargetTableName=target, BackupArn=details["BackupArn"])
    assert out["TableDescription"]["TableStatus"] == "CREATING"
    assert out["TableDescription"]["RestoreSummary"]["SourceBackupArn"] == details["BackupArn"]
    with pytest.raises(ClientError) as e:  # CREATING: no item operations yet
        ddb.get_item(TableName=target, Key={"id": {"S": "k0"}})
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        ddb.restore_table_from_backup(TargetTableName=target, BackupArn=details["BackupArn"])
    assert e.value.response["Error"]["Code"] == "TableAlreadyExistsException"
    active = wait_active(server, ddb, target)
    assert active["ItemCount"] == 30
    assert items(ddb, target) == expected
    by_g = ddb.query(
        TableName=target,
        IndexName="byg",
        KeyConditionExpression="g = :g",
        ExpressionAttributeValues={":g": {"S": "g0"}},
    )
    assert by_g["Count"] == 10

    deleted = ddb.delete_backup(BackupArn=details["BackupArn"])["BackupDescription"]
    assert deleted["BackupDetails"]["BackupStatus"] == "DELETED"
    with pytest.raises(ClientError) as e:
        ddb.describe_backup(BackupArn=details["BackupArn"])
    assert e.value.response["Error"]["Code"] == "BackupNotFoundException"


def test_backup_errors(ddb: Any, unique: str) -> None:
    with pytest.raises(ClientError) as e:
        ddb.create_backup(TableName=f"nope-{unique}", BackupName="bak1")
    assert e.value.response["Error"]["Code"] == "TableNotFoundException"
    with pytest.raises(ClientError) as e:
        ddb.restore_table_to_point_in_time(
            SourceTableName=make(ddb, f"np-{unique}"), TargetTableName=f"x-{unique}"
        )
    assert e.value.response["Error"]["Code"] == "PointInTimeRecoveryUnavailableException"
    with pytest.raises(ClientError) as e:
        ddb.describe_continuous_backups(TableName=f"nope-{unique}")
    assert e.value.response["Error"] == {
        "Code": "TableNotFoundException",
        "Message": f"Table not found: nope-{unique}",
    }


def test_point_in_time_restore_returns_that_second(server: StrataProcess, ddb: Any, unique: str) -> None:
    src = make(ddb, f"pitr-{unique}")
    before = ddb.describe_continuous_backups(TableName=src)["ContinuousBackupsDescription"]
    assert before["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "DISABLED"
    on = ddb.update_continuous_backups(
        TableName=src, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert on["PointInTimeRecoveryStatus"] == "ENABLED" and on["RecoveryPeriodInDays"] == 35
    snapshots = []  # (instant, items) after each round of changes, an hour apart
    for round_ in range(3):
        for i in range(10):
            put(ddb, src, f"k{i}", f"r{round_}-{i}")
        ddb.delete_item(TableName=src, Key={"id": {"S": f"k{round_}"}})
        put(ddb, src, f"extra{round_}", "x")
        server.advance_clock("1s")
        at = ddb.describe_continuous_backups(TableName=src)["ContinuousBackupsDescription"]
        snapshots.append(items(ddb, src))
        server.advance_clock("1h")
    desc = ddb.describe_continuous_backups(TableName=src)["ContinuousBackupsDescription"]
    pitr = desc["PointInTimeRecoveryDescription"]
    assert pitr["LatestRestorableDateTime"] > at["PointInTimeRecoveryDescription"]["LatestRestorableDateTime"]
    # The second after each round: the restore must be exactly that round's data.
    rounds_at = [pitr["EarliestRestorableDateTime"] + timedelta(hours=h, seconds=30) for h in (0, 1, 2)]
    # Rounds happened within the first seconds of each hour after PITR went on.
    for n, (when, expected) in enumerate(zip(rounds_at, snapshots, strict=True)):
        target = f"at{n}-{unique}"
        ddb.restore_table_to_point_in_time(SourceTableName=src, TargetTableName=target, RestoreDateTime=when)
        wait_active(server, ddb, target)
        assert items(ddb, target) == expected, n
    with pytest.raises(ClientError) as e:
        ddb.restore_table_to_point_in_time(
            SourceTableName=src,
            TargetTableName=f"early-{unique}",
            RestoreDateTime=pitr["EarliestRestorableDateTime"] - timedelta(seconds=10),
        )
    assert e.value.response["Error"]["Code"] == "InvalidRestoreTimeException"
    latest = f"latest-{unique}"
    ddb.restore_table_to_point_in_time(
        SourceTableName=src, TargetTableName=latest, UseLatestRestorableTime=True
    )
    wait_active(server, ddb, latest)
    assert items(ddb, latest) == items(ddb, src)


def test_point_in_time_restore_has_the_source_tables_current_indexes(
    server: StrataProcess, ddb: Any, unique: str
) -> None:
    """AWS: the GSIs, LSIs, capacity and encryption of a point-in-time restore "come from the
    current settings of the source table at the time of restore", whatever the instant chosen."""
    src = make(ddb, f"pix-{unique}", gsi=True)
    ddb.update_continuous_backups(
        TableName=src, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    put(ddb, src, "a", "1", g={"S": "x"}, h={"S": "y"})
    server.advance_clock("1h")
    when = ddb.describe_continuous_backups(TableName=src)["ContinuousBackupsDescription"][
        "PointInTimeRecoveryDescription"
    ]["LatestRestorableDateTime"]
    server.advance_clock("1h")
    ddb.update_table(
        TableName=src,
        AttributeDefinitions=[{"AttributeName": "h", "AttributeType": "S"}],
        GlobalSecondaryIndexUpdates=[
            {"Delete": {"IndexName": "byg"}},
            {
                "Create": {
                    "IndexName": "byh",
                    "KeySchema": [{"AttributeName": "h", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "ALL"},
                }
            },
        ],
    )
    target = f"pix-then-{unique}"
    ddb.restore_table_to_point_in_time(SourceTableName=src, TargetTableName=target, RestoreDateTime=when)
    desc = wait_active(server, ddb, target)
    assert [ix["IndexName"] for ix in desc["GlobalSecondaryIndexes"]] == ["byh"]
    found = ddb.query(
        TableName=target,
        IndexName="byh",
        KeyConditionExpression="h = :h",
        ExpressionAttributeValues={":h": {"S": "y"}},
    )["Items"]
    assert [i["id"]["S"] for i in found] == ["a"]


def test_backups_pitr_and_restores_survive_restart(server: StrataProcess, unique: str) -> None:
    ddb = server.client("dynamodb")
    src = make(ddb, f"rs-{unique}")
    ddb.update_continuous_backups(
        TableName=src, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    put(ddb, src, "a", "1")
    arn = ddb.create_backup(TableName=src, BackupName="keep")["BackupDetails"]["BackupArn"]
    available(ddb, arn)
    server.advance_clock("10m")
    put(ddb, src, "a", "2")
    mid = ddb.restore_table_from_backup(TargetTableName=f"mid-{unique}", BackupArn=arn)
    assert mid["TableDescription"]["TableStatus"] == "CREATING"
    server.restart()
    ddb = server.client("dynamodb")
    assert (
        ddb.describe_backup(BackupArn=arn)["BackupDescription"]["BackupDetails"]["BackupStatus"]
        == "AVAILABLE"
    )
    wait_active(server, ddb, f"mid-{unique}")
    assert items(ddb, f"mid-{unique}")["a"]["v"] == {"S": "1"}
    server.advance_clock("10m")
    pitr = ddb.describe_continuous_backups(TableName=src)["ContinuousBackupsDescription"]
    earliest = pitr["PointInTimeRecoveryDescription"]["EarliestRestorableDateTime"]
    target = f"after-{unique}"
    ddb.restore_table_to_point_in_time(
        SourceTableName=src, TargetTableName=target, RestoreDateTime=earliest + timedelta(minutes=5)
    )
    wait_active(server, ddb, target)
    assert items(ddb, target)["a"]["v"] == {"S": "1"}


def test_backup_and_pitr_storage_are_metered(server: StrataProcess, ddb: Any, unique: str) -> None:
    src = make(ddb, f"m-{unique}")
    put(ddb, src, "a", "x" * 1000)
    ddb.update_continuous_backups(
        TableName=src, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    arn = ddb.create_backup(TableName=src, BackupName="metered")["BackupDetails"]["BackupArn"]
    size = available(ddb, arn)["BackupSizeBytes"]
    server.advance_clock("2h")
    events = server.admin("/_strata/meter?service=dynamodb")["events"]
    backup = sum(
        e["quantity"] for e in events if e["event"] == "BackupStorage" and e["dims"].get("backup") == arn
    )
    assert size * 2 <= backup <= size * 2.1  # two hours (and the seconds the test took)
    table = sum(
        e["quantity"] for e in events if e["event"] == "PITRStorage" and e["dims"].get("table") == src
    )
    assert table >= 2 * 1000


def test_history_and_restore_survive_kill_9(server: StrataProcess, unique: str) -> None:
    """Acknowledged writes are in the history after a kill -9, and a restore acknowledged just
    before the kill finishes after the restart, with the data of its instant."""
    ddb = server.client("dynamodb")
    src = make(ddb, f"k9-{unique}")
    ddb.update_continuous_backups(
        TableName=src, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    for i in range(50):
        put(ddb, src, f"k{i}", "before")
    server.advance_clock("1s")
    at = datetime.fromisoformat(server.admin("/_strata/clock")["now"])
    expected = items(ddb, src)
    server.advance_clock("1s")
    for i in range(10):
        put(ddb, src, f"k{i}", "after")
    for i in range(10, 15):
        ddb.delete_item(TableName=src, Key={"id": {"S": f"k{i}"}})
    server.kill()
    server.start()
    ddb = server.client("dynamodb")
    server.advance_clock("10m")
    target = f"k9r-{unique}"
    ddb.restore_table_to_point_in_time(SourceTableName=src, TargetTableName=target, RestoreDateTime=at)
    server.kill()
    server.start()
    ddb = server.client("dynamodb")
    wait_active(server, ddb, target)
    assert items(ddb, target) == expected


def test_a_backup_cut_short_by_kill_9_is_made_again_with_the_data_of_its_instant(
    server: StrataProcess, unique: str
) -> None:
    """The kill lands during the export or after it, depending on the machine's speed: either
    way the acknowledged backup turns AVAILABLE after the restart with the data of its request
    (a table with PITR is exported again at that instant)."""
    ddb = server.client("dynamodb")
    src = make(ddb, f"bk9-{unique}")
    ddb.update_continuous_backups(
        TableName=src, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    for n in range(40):  # 1,000 items of 2 KB
        puts = [
            {"PutRequest": {"Item": {"id": {"S": f"k{n}-{i}"}, "v": {"S": "x" * 2000}}}} for i in range(25)
        ]
        ddb.batch_write_item(RequestItems={src: puts})
    expected = items(ddb, src)
    arn = ddb.create_backup(TableName=src, BackupName="cut")["BackupDetails"]["BackupArn"]
    put(ddb, src, "late", "after")
    server.kill()
    server.start()
    ddb = server.client("dynamodb")
    assert available(ddb, arn)["BackupSizeBytes"] > 0
    target = f"bk9r-{unique}"
    ddb.restore_table_from_backup(TargetTableName=target, BackupArn=arn)
    wait_active(server, ddb, target)
    assert items(ddb, target) == expected


def test_a_deleted_table_with_pitr_comes_back_from_its_system_backup_for_35_days(
    server: StrataProcess, ddb: Any, unique: str
) -> None:
    """AWS: deleting a table with PITR on keeps a system backup `<name>$DeletedTableBackup` for 35
    days; the deleted table can be restored to the moment before its deletion, and to no other."""
    src = make(ddb, f"gone-{unique}")
    ddb.update_continuous_backups(
        TableName=src, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    for i in range(5):
        put(ddb, src, f"k{i}", "last")
    expected = items(ddb, src)
    ddb.delete_table(TableName=src)
    system = ddb.list_backups(TableName=src, BackupType="SYSTEM")["BackupSummaries"]
    assert [b["BackupName"] for b in system] == [f"{src}$DeletedTableBackup"]
    assert system[0]["BackupExpiryDateTime"] - system[0]["BackupCreationDateTime"] == timedelta(days=35)
    assert ddb.list_backups(TableName=src)["BackupSummaries"] == []  # USER is the default type
    with pytest.raises(ClientError) as e:
        ddb.restore_table_to_point_in_time(
            SourceTableName=src, TargetTableName=f"{src}-pitr", UseLatestRestorableTime=True
        )
    assert e.value.response["Error"]["Code"] == "SourceTableNotFoundException"
    ddb.restore_table_from_backup(TargetTableName=src, BackupArn=system[0]["BackupArn"])
    wait_active(server, ddb, src)
    assert items(ddb, src) == expected
    server.advance_clock("36d")
    assert ddb.list_backups(TableName=src, BackupType="SYSTEM")["BackupSummaries"] == []
