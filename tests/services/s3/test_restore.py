"""RestoreObject on the simulated clock, on a private server (its clock is advanced by hours)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from botocore.exceptions import ClientError


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from tests.strata_process import StrataProcess

    server = StrataProcess(tmp_path_factory.mktemp("restore") / "data").start()
    yield server
    server.stop()


@pytest.fixture
def s3(server):
    # Signed requests must carry the server's (simulated) time, which these tests move ahead.
    return server.client("s3")


def code(e: pytest.ExceptionInfo) -> str:
    return e.value.response["Error"]["Code"]


def server_now(server) -> datetime:
    return datetime.fromisoformat(server.admin("/_strata/clock")["now"])


def test_glacier_restore_lifecycle(server, s3) -> None:
    s3.create_bucket(Bucket="restore-a")
    s3.put_object(Bucket="restore-a", Key="cold", Body=b"frozen bytes", StorageClass="GLACIER")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="restore-a", Key="cold")
    assert code(e) == "InvalidObjectState"
    assert "Restore" not in s3.head_object(Bucket="restore-a", Key="cold")

    r = s3.restore_object(
        Bucket="restore-a",
        Key="cold",
        RestoreRequest={"Days": 2, "GlacierJobParameters": {"Tier": "Standard"}},
    )
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert s3.head_object(Bucket="restore-a", Key="cold")["Restore"] == 'ongoing-request="true"'
    with pytest.raises(ClientError) as e:
        s3.restore_object(Bucket="restore-a", Key="cold", RestoreRequest={"Days": 2})
    assert code(e) == "RestoreAlreadyInProgress"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="restore-a", Key="cold")
    assert code(e) == "InvalidObjectState"

    server.advance_clock("3h")  # Standard: 3-5 hours
    head = s3.head_object(Bucket="restore-a", Key="cold")
    assert head["Restore"].startswith('ongoing-request="false", expiry-date="')
    assert s3.get_object(Bucket="restore-a", Key="cold")["Body"].read() == b"frozen bytes"
    listed = s3.list_objects_v2(Bucket="restore-a", OptionalObjectAttributes=["RestoreStatus"])["Contents"][0]
    assert listed["RestoreStatus"]["IsRestoreInProgress"] is False
    expiry = listed["RestoreStatus"]["RestoreExpiryDate"]
    # Ready time + 2 days, rounded up to the next midnight UTC.
    assert (expiry.hour, expiry.minute, expiry.second) == (0, 0, 0)
    assert timedelta(days=2) <= expiry - server_now(server) <= timedelta(days=3)

    # Restoring again once done extends the period (200), counted from now.
    again = s3.restore_object(Bucket="restore-a", Key="cold", RestoreRequest={"Days": 5})
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 200
    later = s3.list_objects_v2(Bucket="restore-a", OptionalObjectAttributes=["RestoreStatus"])["Contents"][0]
    assert later["RestoreStatus"]["RestoreExpiryDate"] > expiry

    server.advance_clock("7d")  # past the expiry: archived again
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="restore-a", Key="cold")
    assert code(e) == "InvalidObjectState"
    assert "Restore" not in s3.head_object(Bucket="restore-a", Key="cold")


def test_tiers_and_classes(server, s3) -> None:
    s3.create_bucket(Bucket="restore-b")
    s3.put_object(Bucket="restore-b", Key="deep", Body=b"d", StorageClass="DEEP_ARCHIVE")
    s3.put_object(Bucket="restore-b", Key="fast", Body=b"f", StorageClass="GLACIER")
    s3.put_object(Bucket="restore-b", Key="warm", Body=b"w", StorageClass="STANDARD_IA")
    with pytest.raises(ClientError) as e:
        s3.restore_object(Bucket="restore-b", Key="warm", RestoreRequest={"Days": 1})
    assert code(e) == "InvalidObjectState"
    with pytest.raises(ClientError) as e:
        s3.restore_object(
            Bucket="restore-b",
            Key="deep",
            RestoreRequest={"Days": 1, "GlacierJobParameters": {"Tier": "Expedited"}},
        )
    assert code(e) == "InvalidArgument"

    s3.restore_object(
        Bucket="restore-b",
        Key="fast",
        RestoreRequest={"Days": 1, "GlacierJobParameters": {"Tier": "Expedited"}},
    )
    s3.restore_object(Bucket="restore-b", Key="deep", RestoreRequest={"Days": 1})  # Standard: 12 hours
    server.advance_clock("1m")  # Expedited: 1-5 minutes
    assert s3.get_object(Bucket="restore-b", Key="fast")["Body"].read() == b"f"
    with pytest.raises(ClientError):
        s3.get_object(Bucket="restore-b", Key="deep")
    server.advance_clock("12h")
    assert s3.get_object(Bucket="restore-b", Key="deep")["Body"].read() == b"d"
    # A restored archive can be copied (the source is readable now).
    s3.copy_object(
        Bucket="restore-b",
        Key="thawed",
        CopySource={"Bucket": "restore-b", "Key": "deep"},
        StorageClass="STANDARD",
    )
    assert s3.get_object(Bucket="restore-b", Key="thawed")["Body"].read() == b"d"
