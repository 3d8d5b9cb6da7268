"""S3 Intelligent-Tiering: access tiers by access pattern on the simulated clock, the opt-in
archive tiers and their configurations (private servers: the tests move their clocks)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.services.s3.test_lifecycle import to_noon

BODY = b"i" * (200 * 1024)  # monitored: objects below 128 KiB always stay in Frequent Access
ARCHIVE_CONFIG = {
    "Id": "archive",
    "Status": "Enabled",
    "Filter": {"Prefix": "arch/"},
    "Tierings": [{"Days": 90, "AccessTier": "ARCHIVE_ACCESS"}],
}


def moves(server: Any, duration: str) -> dict[str, int]:
    return {
        k: v
        for k, v in server.advance_clock(duration)["ran"]["s3.lifecycle"].items()
        if k.startswith("tiered")
    }


def test_configurations_round_trip_and_are_checked(strata_server: Any, unique: str) -> None:
    s3 = strata_server.client("s3")
    bucket = f"it-{unique}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_intelligent_tiering_configuration(
        Bucket=bucket, Id="archive", IntelligentTieringConfiguration=ARCHIVE_CONFIG
    )
    got = s3.get_bucket_intelligent_tiering_configuration(Bucket=bucket, Id="archive")
    assert got["IntelligentTieringConfiguration"] == ARCHIVE_CONFIG
    listed = s3.list_bucket_intelligent_tiering_configurations(Bucket=bucket)
    assert listed["IntelligentTieringConfigurationList"] == [ARCHIVE_CONFIG] and not listed["IsTruncated"]
    for tierings, code in (
        ([{"Days": 80, "AccessTier": "ARCHIVE_ACCESS"}], "InvalidArgument"),
        ([{"Days": 800, "AccessTier": "DEEP_ARCHIVE_ACCESS"}], "InvalidArgument"),
        ([{"Days": 100, "AccessTier": "FREQUENT_ACCESS"}], "MalformedXML"),
    ):
        with pytest.raises(ClientError) as e:
            s3.put_bucket_intelligent_tiering_configuration(
                Bucket=bucket,
                Id="bad",
                IntelligentTieringConfiguration={**ARCHIVE_CONFIG, "Id": "bad", "Tierings": tierings},
            )
        assert e.value.response["Error"]["Code"] == code
    s3.delete_bucket_intelligent_tiering_configuration(Bucket=bucket, Id="archive")
    with pytest.raises(ClientError) as e:
        s3.get_bucket_intelligent_tiering_configuration(Bucket=bucket, Id="archive")
    assert e.value.response["Error"]["Code"] == "NoSuchConfiguration"


def test_objects_move_between_tiers_by_access_and_archived_ones_need_a_restore(strata_factory: Any) -> None:
    server = strata_factory()
    to_noon(server)
    s3 = server.client("s3")
    s3.create_bucket(Bucket="it-tiers")
    s3.put_bucket_intelligent_tiering_configuration(
        Bucket="it-tiers", Id="archive", IntelligentTieringConfiguration=ARCHIVE_CONFIG
    )
    for key in ("hot", "cold", "arch/x"):
        s3.put_object(Bucket="it-tiers", Key=key, Body=BODY, StorageClass="INTELLIGENT_TIERING")
    s3.put_object(Bucket="it-tiers", Key="tiny", Body=b"small", StorageClass="INTELLIGENT_TIERING")
    assert moves(server, "20d") == {}
    s3.get_object(Bucket="it-tiers", Key="hot")["Body"].read()  # an access: its 30 days start again
    server.restart()  # the access is kept across a restart
    assert moves(server, "20d") == {"tiered_to_INFREQUENT_ACCESS": 2}  # day 40: cold, arch/x
    assert moves(server, "60d") == {  # day 100
        "tiered_to_INFREQUENT_ACCESS": 1,  # hot, 80 days after its read
        "tiered_to_ARCHIVE_INSTANT_ACCESS": 1,  # cold
        "tiered_to_ARCHIVE_ACCESS": 1,  # arch/x, opted in after 90 days
    }
    assert s3.get_object(Bucket="it-tiers", Key="cold")["Body"].read() == BODY  # Archive Instant: readable
    assert s3.get_object(Bucket="it-tiers", Key="tiny")["Body"].read() == b"small"
    assert "ArchiveStatus" not in s3.head_object(Bucket="it-tiers", Key="cold")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="it-tiers", Key="arch/x")
    assert e.value.response["Error"]["Code"] == "InvalidObjectState"
    assert e.value.response["Error"]["AccessTier"] == "ARCHIVE_ACCESS"
    assert s3.head_object(Bucket="it-tiers", Key="arch/x")["ArchiveStatus"] == "ARCHIVE_ACCESS"
    assert (
        s3.restore_object(Bucket="it-tiers", Key="arch/x", RestoreRequest={})["ResponseMetadata"][
            "HTTPStatusCode"
        ]
        == 202
    )
    assert s3.head_object(Bucket="it-tiers", Key="arch/x")["Restore"] == 'ongoing-request="true"'
    with pytest.raises(ClientError):
        s3.get_object(Bucket="it-tiers", Key="arch/x")
    assert moves(server, "3h") == {"tiered_to_FREQUENT_ACCESS": 2}  # cold (read) and arch/x (restored)
    assert s3.get_object(Bucket="it-tiers", Key="arch/x")["Body"].read() == BODY
    with pytest.raises(ClientError) as e:  # not archived: nothing to restore
        s3.restore_object(Bucket="it-tiers", Key="hot", RestoreRequest={})
    assert e.value.response["Error"]["Code"] == "InvalidObjectState"
    tiers = {
        e["event"]
        for e in server.admin("/_strata/meter?service=s3")["events"]
        if e["event"].startswith("TimedStorage-INTELLIGENT_TIERING")
    }
    assert tiers == {
        f"TimedStorage-INTELLIGENT_TIERING-{t}"
        for t in ("FREQUENT_ACCESS", "INFREQUENT_ACCESS", "ARCHIVE_INSTANT_ACCESS", "ARCHIVE_ACCESS")
    }
