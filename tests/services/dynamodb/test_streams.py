"""DynamoDB Streams through boto3: the consumer pattern (DescribeStream -> GetShardIterator ->
GetRecords loop) reads every change of every write path exactly once, in order; view types,
disabled streams, iterators, TTL deletions, retention and kill -9."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

KEY = {"AttributeName": "pk", "KeyType": "HASH"}
ATTR = {"AttributeName": "pk", "AttributeType": "S"}


def _table(ddb: Any, name: str, view: str | None = "NEW_AND_OLD_IMAGES") -> str:
    """Create a table (with a stream of `view` unless None); its LatestStreamArn or ''."""
    kw: dict = {}
    if view is not None:
        kw["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view}
    desc = ddb.create_table(
        TableName=name, KeySchema=[KEY], AttributeDefinitions=[ATTR], BillingMode="PAY_PER_REQUEST", **kw
    )["TableDescription"]
    return desc.get("LatestStreamArn", "")


def _consume(streams: Any, arn: str, kind: str = "TRIM_HORIZON", **kw: Any) -> list[dict]:
    """Every record of the stream from `kind`, read the way a boto3 consumer does."""
    shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    records: list[dict] = []
    for shard in shards:
        it = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType=kind, **kw
        )["ShardIterator"]
        while it:
            page = streams.get_records(ShardIterator=it, Limit=3)
            records.extend(page["Records"])
            if not page["Records"]:
                break
            it = page.get("NextShardIterator")
    return records


def _changes(records: list[dict]) -> list[tuple]:
    return [
        (
            r["eventName"],
            r["dynamodb"]["Keys"]["pk"]["S"],
            r["dynamodb"].get("OldImage"),
            r["dynamodb"].get("NewImage"),
        )
        for r in records
    ]


def _item(pk: str, v: str) -> dict:
    return {"pk": {"S": pk}, "v": {"S": v}}


def test_every_write_path_is_read_once_in_order(strata_server: Any, unique: str) -> None:
    ddb = strata_server.client("dynamodb")
    streams = strata_server.client("dynamodbstreams")
    t = f"st-{unique}"
    arn = _table(ddb, t)
    assert ddb.describe_table(TableName=t)["Table"]["LatestStreamArn"] == arn
    ddb.put_item(TableName=t, Item=_item("a", "1"))  # INSERT
    ddb.put_item(TableName=t, Item=_item("a", "2"))  # MODIFY
    ddb.put_item(TableName=t, Item=_item("a", "2"))  # no change: no record
    ddb.update_item(
        TableName=t,
        Key={"pk": {"S": "a"}},
        UpdateExpression="SET v = :v",
        ExpressionAttributeValues={":v": {"S": "3"}},
    )
    ddb.delete_item(TableName=t, Key={"pk": {"S": "a"}})  # REMOVE
    ddb.delete_item(TableName=t, Key={"pk": {"S": "a"}})  # missing: no record
    ddb.batch_write_item(
        RequestItems={
            t: [{"PutRequest": {"Item": _item("b", "1")}}, {"PutRequest": {"Item": _item("c", "1")}}]
        }
    )
    ddb.batch_write_item(RequestItems={t: [{"DeleteRequest": {"Key": {"pk": {"S": "c"}}}}]})
    ddb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": t, "Item": _item("d", "1")}},
            {
                "Update": {
                    "TableName": t,
                    "Key": {"pk": {"S": "b"}},
                    "UpdateExpression": "SET v = :v",
                    "ExpressionAttributeValues": {":v": {"S": "2"}},
                }
            },
            {"Delete": {"TableName": t, "Key": {"pk": {"S": "zz"}}}},  # missing: no record
        ]
    )
    ddb.execute_statement(Statement=f"INSERT INTO \"{t}\" VALUE {{'pk': 'e', 'v': '1'}}")
    ddb.execute_statement(Statement=f"UPDATE \"{t}\" SET v = '2' WHERE pk = 'e'")
    ddb.execute_statement(Statement=f"DELETE FROM \"{t}\" WHERE pk = 'd'")
    a1, a2, a3 = _item("a", "1"), _item("a", "2"), _item("a", "3")
    expected = [
        ("INSERT", "a", None, a1),
        ("MODIFY", "a", a1, a2),
        ("MODIFY", "a", a2, a3),
        ("REMOVE", "a", a3, None),
        ("INSERT", "b", None, _item("b", "1")),
        ("INSERT", "c", None, _item("c", "1")),
        ("REMOVE", "c", _item("c", "1"), None),
        ("INSERT", "d", None, _item("d", "1")),
        ("MODIFY", "b", _item("b", "1"), _item("b", "2")),
        ("INSERT", "e", None, _item("e", "1")),
        ("MODIFY", "e", _item("e", "1"), _item("e", "2")),
        ("REMOVE", "d", _item("d", "1"), None),
    ]
    records = _consume(streams, arn)
    assert _changes(records) == expected
    seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert len({r["eventID"] for r in records}) == len(records)
    first = records[0]
    assert first["eventSource"] == "aws:dynamodb" and first["eventVersion"] == "1.1"
    assert first["awsRegion"] == "us-east-1" and "userIdentity" not in first
    assert first["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert first["dynamodb"]["SizeBytes"] > 0 and first["dynamodb"]["ApproximateCreationDateTime"]
    # AT_/AFTER_SEQUENCE_NUMBER start at / after a record; LATEST sees only what follows.
    at = _consume(streams, arn, "AT_SEQUENCE_NUMBER", SequenceNumber=records[3]["dynamodb"]["SequenceNumber"])
    assert _changes(at) == expected[3:]
    after = _consume(
        streams, arn, "AFTER_SEQUENCE_NUMBER", SequenceNumber=records[3]["dynamodb"]["SequenceNumber"]
    )
    assert _changes(after) == expected[4:]
    when = records[0]["dynamodb"]["ApproximateCreationDateTime"]
    assert _changes(_consume(streams, arn, "AT_TIMESTAMP", Timestamp=when)) == expected
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    latest = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="LATEST")[
        "ShardIterator"
    ]
    page = streams.get_records(ShardIterator=latest)
    assert page["Records"] == [] and page["NextShardIterator"]
    ddb.put_item(TableName=t, Item=_item("f", "1"))
    page = streams.get_records(ShardIterator=page["NextShardIterator"])
    assert _changes(page["Records"]) == [("INSERT", "f", None, _item("f", "1"))]


@pytest.mark.parametrize(
    ("view", "old", "new"),
    [
        ("KEYS_ONLY", False, False),
        ("NEW_IMAGE", False, True),
        ("OLD_IMAGE", True, False),
        ("NEW_AND_OLD_IMAGES", True, True),
    ],
)
def test_view_types(strata_server: Any, unique: str, view: str, old: bool, new: bool) -> None:
    ddb = strata_server.client("dynamodb")
    streams = strata_server.client("dynamodbstreams")
    t = f"vt-{unique}"
    arn = _table(ddb, t, view)
    ddb.put_item(TableName=t, Item=_item("k", "1"))
    ddb.put_item(TableName=t, Item=_item("k", "2"))
    records = _consume(streams, arn)
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY"]
    modify = records[1]["dynamodb"]
    assert modify["Keys"] == {"pk": {"S": "k"}} and modify["StreamViewType"] == view
    assert ("OldImage" in modify) == old and ("NewImage" in modify) == new
    if new:
        assert modify["NewImage"] == _item("k", "2")
    if old:
        assert modify["OldImage"] == _item("k", "1")


def test_disabled_stream_and_errors(strata_server: Any, unique: str) -> None:
    ddb = strata_server.client("dynamodb")
    streams = strata_server.client("dynamodbstreams")
    t = f"ds-{unique}"
    assert _table(ddb, t, None) == ""
    assert "LatestStreamArn" not in ddb.describe_table(TableName=t)["Table"]
    assert streams.list_streams(TableName=t)["Streams"] == []
    ddb.put_item(TableName=t, Item=_item("before", "1"))  # no stream yet: no record
    with pytest.raises(ClientError) as e:
        ddb.update_table(TableName=t, StreamSpecification={"StreamEnabled": True})
    assert e.value.response["Error"]["Code"] == "ValidationException"
    arn = ddb.update_table(
        TableName=t, StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}
    )["TableDescription"]["LatestStreamArn"]
    with pytest.raises(ClientError) as e:
        ddb.update_table(
            TableName=t, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
        )
    assert e.value.response["Error"]["Message"] == f"Table already has an enabled stream: TableName: {t}"
    listed = streams.list_streams(TableName=t)["Streams"]
    assert listed == [{"StreamArn": arn, "TableName": t, "StreamLabel": arn.rsplit("/", 1)[1]}]
    desc = streams.describe_stream(StreamArn=arn)["StreamDescription"]
    assert desc["StreamStatus"] == "ENABLED" and desc["TableName"] == t and desc["KeySchema"] == [KEY]
    assert "EndingSequenceNumber" not in desc["Shards"][0]["SequenceNumberRange"]
    ddb.put_item(TableName=t, Item=_item("during", "1"))
    ddb.update_table(TableName=t, StreamSpecification={"StreamEnabled": False})
    ddb.put_item(TableName=t, Item=_item("after", "1"))  # disabled: no record
    table = ddb.describe_table(TableName=t)["Table"]
    assert "StreamSpecification" not in table and table["LatestStreamArn"] == arn
    desc = streams.describe_stream(StreamArn=arn)["StreamDescription"]
    assert (
        desc["StreamStatus"] == "DISABLED"
        and "EndingSequenceNumber" in desc["Shards"][0]["SequenceNumberRange"]
    )
    shard = desc["Shards"][0]["ShardId"]
    it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    page = streams.get_records(ShardIterator=it)
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in page["Records"]] == ["during"]
    assert "NextShardIterator" not in page  # the shard is closed and read to its end
    # Enabled again: a new stream beside the disabled one (readable for 24 hours).
    arn2 = ddb.update_table(
        TableName=t, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    )["TableDescription"]["LatestStreamArn"]
    assert arn2 != arn
    first = streams.list_streams(TableName=t, Limit=1)
    assert [s["StreamArn"] for s in first["Streams"]] == [arn] and first["LastEvaluatedStreamArn"] == arn
    rest = streams.list_streams(TableName=t, Limit=1, ExclusiveStartStreamArn=arn)
    assert [s["StreamArn"] for s in rest["Streams"]] == [arn2] and "LastEvaluatedStreamArn" not in rest
    ddb.put_item(TableName=t, Item=_item("again", "1"))
    assert _changes(_consume(streams, arn2)) == [("INSERT", "again", None, _item("again", "1"))]
    assert len(_consume(streams, arn)) == 1
    for call, kw, code in [
        (streams.describe_stream, {"StreamArn": arn + "x"}, "ResourceNotFoundException"),
        (
            streams.get_shard_iterator,
            {"StreamArn": arn, "ShardId": shard[:-1] + "z", "ShardIteratorType": "LATEST"},
            "ResourceNotFoundException",
        ),
        (
            streams.get_shard_iterator,
            {"StreamArn": arn, "ShardId": shard, "ShardIteratorType": "AT_SEQUENCE_NUMBER"},
            "ValidationException",
        ),
        (streams.get_records, {"ShardIterator": "not-an-iterator"}, "ValidationException"),
        (streams.get_records, {"ShardIterator": it, "Limit": 1001}, "ValidationException"),
    ]:
        with pytest.raises(ClientError) as e:
            call(**kw)
        assert e.value.response["Error"]["Code"] == code, (call, kw)


def test_ttl_records_iterator_expiry_and_retention(strata_factory: Any) -> None:
    server = strata_factory()
    ddb = server.client("dynamodb")
    streams = server.client("dynamodbstreams")
    arn = _table(ddb, "ttl", "OLD_IMAGE")
    ddb.update_time_to_live(
        TableName="ttl", TimeToLiveSpecification={"Enabled": True, "AttributeName": "exp"}
    )
    now = int(ddb.describe_table(TableName="ttl")["Table"]["CreationDateTime"].timestamp())
    ddb.put_item(TableName="ttl", Item={"pk": {"S": "x"}, "exp": {"N": str(now + 60)}})
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    server.advance_clock("2h")
    with pytest.raises(ClientError) as e:  # issued more than 15 minutes ago
        streams.get_records(ShardIterator=it)
    assert e.value.response["Error"]["Code"] == "ExpiredIteratorException"
    records = _consume(streams, arn)
    assert [r["eventName"] for r in records] == ["INSERT", "REMOVE"]
    assert "userIdentity" not in records[0]
    assert records[1]["userIdentity"] == {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"}
    assert records[1]["dynamodb"]["OldImage"]["pk"] == {"S": "x"}
    deadline = time.monotonic() + 30  # each GetRecords is a streams read request on the meter
    while True:
        events = server.admin("/_strata/meter?service=dynamodb")["events"]
        reads = sum(e["quantity"] for e in events if e["event"] == "StreamsReadRequests")
        if reads >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert reads >= 2
    ddb.update_table(TableName="ttl", StreamSpecification={"StreamEnabled": False})
    arn2 = ddb.update_table(
        TableName="ttl", StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}
    )["TableDescription"]["LatestStreamArn"]
    assert len(streams.list_streams(TableName="ttl")["Streams"]) == 2
    ddb.put_item(TableName="ttl", Item={"pk": {"S": "y"}})
    (y,) = _consume(streams, arn2)
    gone = _table(ddb, "gone", "NEW_IMAGE")
    ddb.put_item(TableName="gone", Item=_item("g", "1"))
    ddb.delete_table(TableName="gone")
    server.advance_clock("23h")  # a deleted table's stream stays readable for 24 hours
    assert streams.describe_stream(StreamArn=gone)["StreamDescription"]["StreamStatus"] == "DISABLED"
    assert [r["eventName"] for r in _consume(streams, gone)] == ["INSERT"]
    server.advance_clock("2h")  # records are kept 24 hours, disabled streams listed as long
    assert _consume(streams, arn2) == []
    # Past the trim horizon: the pruned record cannot be asked for, what follows it can.
    shard = streams.describe_stream(StreamArn=arn2)["StreamDescription"]["Shards"][0]["ShardId"]  # y's
    seq = y["dynamodb"]["SequenceNumber"]
    with pytest.raises(ClientError) as e:
        streams.get_shard_iterator(
            StreamArn=arn2, ShardId=shard, ShardIteratorType="AT_SEQUENCE_NUMBER", SequenceNumber=seq
        )
    assert e.value.response["Error"]["Code"] == "TrimmedDataAccessException"
    ddb.put_item(TableName="ttl", Item={"pk": {"S": "z"}})
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in _consume(streams, arn2)] == ["z"]
    it = streams.get_shard_iterator(
        StreamArn=arn2, ShardId=shard, ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=seq
    )["ShardIterator"]
    assert streams.get_records(ShardIterator=it)["Records"] == []
    assert [s["StreamArn"] for s in streams.list_streams(TableName="ttl")["Streams"]] == [arn2]
    assert gone not in [s["StreamArn"] for s in streams.list_streams()["Streams"]]
    with pytest.raises(ClientError) as e:
        streams.describe_stream(StreamArn=gone)
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        streams.describe_stream(StreamArn=arn)
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_kill9_keeps_records_of_acknowledged_writes(strata_factory: Any) -> None:
    server = strata_factory()
    ddb = server.client("dynamodb")
    arn = _table(ddb, "crash", "NEW_IMAGE")
    for i in range(20):
        ddb.put_item(TableName="crash", Item=_item(f"k{i:02d}", "1"))
    deleted = _table(ddb, "deleted", "KEYS_ONLY")
    ddb.put_item(TableName="deleted", Item=_item("d", "1"))
    ddb.delete_table(TableName="deleted")
    server.kill()
    server.restart()
    ddb = server.client("dynamodb")
    streams = server.client("dynamodbstreams")
    assert [r["dynamodb"]["Keys"] for r in _consume(streams, deleted)] == [{"pk": {"S": "d"}}]
    assert deleted in [s["StreamArn"] for s in streams.list_streams()["Streams"]]
    ddb.put_item(TableName="crash", Item=_item("k00", "2"))  # after the restart: numbered after
    records = _consume(streams, arn)
    assert _changes(records) == [
        ("INSERT", f"k{i:02d}", None, _item(f"k{i:02d}", "1")) for i in range(20)
    ] + [("MODIFY", "k00", None, _item("k00", "2"))]


def test_a_page_of_records_holds_about_one_megabyte(strata_server: Any, unique: str) -> None:
    ddb = strata_server.client("dynamodb")
    streams = strata_server.client("dynamodbstreams")
    t = f"mb-{unique}"
    arn = _table(ddb, t, "NEW_IMAGE")
    for i in range(5):
        ddb.put_item(TableName=t, Item=_item(f"big{i}", "x" * 300_000))
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    first = streams.get_records(ShardIterator=it, Limit=1000)
    assert 1 <= len(first["Records"]) < 5
    rest = streams.get_records(ShardIterator=first["NextShardIterator"], Limit=1000)["Records"]
    keys = [r["dynamodb"]["Keys"]["pk"]["S"] for r in first["Records"] + rest]
    assert keys == [f"big{i}" for i in range(5)]


def test_shards_roll_over_and_a_consumer_reads_parent_then_child(strata_factory: Any) -> None:
    server = strata_factory()
    ddb = server.client("dynamodb")
    streams = server.client("dynamodbstreams")
    arn = _table(ddb, "roll", "NEW_IMAGE")
    ddb.put_item(TableName="roll", Item=_item("a", "1"))
    server.advance_clock("5h")  # shards roll over after about four hours
    ddb.put_item(TableName="roll", Item=_item("a", "2"))
    shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    assert len(shards) == 2
    parent, child = shards
    assert child["ParentShardId"] == parent["ShardId"] and "ParentShardId" not in parent
    assert "EndingSequenceNumber" in parent["SequenceNumberRange"]
    assert "EndingSequenceNumber" not in child["SequenceNumberRange"]
    children = streams.describe_stream(
        StreamArn=arn, ShardFilter={"Type": "CHILD_SHARDS", "ShardId": parent["ShardId"]}
    )["StreamDescription"]["Shards"]
    assert [s["ShardId"] for s in children] == [child["ShardId"]]
    it = streams.get_shard_iterator(
        StreamArn=arn, ShardId=parent["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    page = streams.get_records(ShardIterator=it)
    assert _changes(page["Records"]) == [("INSERT", "a", None, _item("a", "1"))]
    assert "NextShardIterator" not in page  # the parent is closed and read to its end
    assert _changes(_consume(streams, arn)) == [
        ("INSERT", "a", None, _item("a", "1")),
        ("MODIFY", "a", None, _item("a", "2")),
    ]
