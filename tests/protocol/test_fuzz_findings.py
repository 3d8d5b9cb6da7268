"""Requests the model-driven fuzzer (bench/fuzz_requests.py) found answered with a 500 or with a
body no SDK could parse; each now gets the protocol's 4xx error.

Sent with botocore's client-side validation off, as the fuzzer sends them.
"""

from __future__ import annotations

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

LOOSE = Config(parameter_validation=False)


def _error(call) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as e:
        call()
    r = e.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["Error"].get("Message", "")


# ---- required members, at any depth, for every protocol


def test_json_missing_nested_required_member(strata_server, unique: str) -> None:
    ddb = strata_server.client("dynamodb", config=LOOSE)
    status, code, message = _error(
        lambda: ddb.create_table(
            TableName=f"req-{unique}",
            AttributeDefinitions=[{"AttributeType": "S"}],
            KeySchema=[{"AttributeName": "a", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
    )
    assert (status, code) == (400, "ValidationException")
    assert message == (
        "1 validation error detected: Value null at 'attributeDefinitions.1.member.attributeName' "
        "failed to satisfy constraint: Member must not be null"
    )
    status, code, message = _error(lambda: ddb.get_item(TableName=f"req-{unique}"))
    assert (status, code) == (400, "ValidationException") and "Value null at 'key'" in message


def test_query_missing_required_parameter(strata_server, unique: str) -> None:
    rds = strata_server.client("rds", config=LOOSE)
    status, code, message = _error(
        lambda: rds.create_db_parameter_group(
            DBParameterGroupName=f"pg-{unique}", DBParameterGroupFamily="postgres16"
        )
    )
    assert (status, code) == (400, "MissingParameter")
    assert message == "The request must contain the parameter Description"


def test_rest_xml_missing_required_member_is_malformed_xml(strata_server, s3_bucket: str) -> None:
    s3 = strata_server.client("s3", config=LOOSE)
    status, code, _ = _error(
        lambda: s3.put_bucket_tagging(Bucket=s3_bucket, Tagging={"TagSet": [{"Value": "no key"}]})
    )
    assert (status, code) == (400, "MalformedXML")


@pytest.fixture
def s3_bucket(strata_server, unique: str) -> str:
    name = f"fz-{unique}"
    strata_server.client("s3").create_bucket(Bucket=name)
    return name


# ---- characters XML 1.0 cannot carry, echoed back


@pytest.mark.parametrize("name", ["\x00", "a\x01b", "\uffff"])
def test_error_message_echoing_an_xml_illegal_character_parses(strata_server, name: str) -> None:
    ec = strata_server.client("elasticache", config=LOOSE)
    status, code, message = _error(lambda: ec.delete_snapshot(SnapshotName=name))
    assert (status, code) == (404, "SnapshotNotFoundFault")
    assert "\ufffd" in message
    rds = strata_server.client("rds", config=LOOSE)
    status, code, _ = _error(lambda: rds.describe_db_snapshots(DBSnapshotIdentifier=name))
    assert status == 404 and code == "DBSnapshotNotFound"


def test_stored_value_with_nul_is_served_as_parseable_xml(strata_server) -> None:
    rds = strata_server.client("rds", config=LOOSE)
    out = rds.modify_db_subnet_group(DBSubnetGroupName="default", DBSubnetGroupDescription="a\x00b")
    assert out["DBSubnetGroup"]["DBSubnetGroupDescription"] == "a\ufffdb"
    assert rds.describe_db_subnet_groups(DBSubnetGroupName="default")["DBSubnetGroups"]


# ---- RDS inputs the provider trusted


@pytest.mark.parametrize("marker", ["k", "'\"", "../../etc/passwd", "-1", "9" * 30])
def test_rds_marker_that_is_not_ours(strata_server, marker: str) -> None:
    rds = strata_server.client("rds", config=LOOSE)
    for call in (rds.describe_db_instances, rds.describe_events):
        status, code, _ = _error(lambda call=call: call(Marker=marker))
        assert (status, code) == (400, "InvalidParameterValue")


def test_rds_tag_and_parameter_without_a_name(strata_server, unique: str) -> None:
    rds = strata_server.client("rds", config=LOOSE)
    status, code, _ = _error(
        lambda: rds.create_db_parameter_group(
            DBParameterGroupName=f"pg-{unique}",
            DBParameterGroupFamily="postgres16",
            Description="d",
            Tags=[{"Value": "no key"}],
        )
    )
    assert (status, code) == (400, "InvalidParameterValue")
    rds.create_db_parameter_group(
        DBParameterGroupName=f"pg-{unique}", DBParameterGroupFamily="postgres16", Description="d"
    )
    status, code, _ = _error(
        lambda: rds.reset_db_parameter_group(
            DBParameterGroupName=f"pg-{unique}", Parameters=[{"ApplyMethod": "immediate"}]
        )
    )
    assert (status, code) == (400, "InvalidParameterValue")


# ---- integers beyond their Java type, in every protocol


def test_query_integer_beyond_int32(strata_server) -> None:
    rds = strata_server.client("rds", config=LOOSE)
    for duration in (2**40, -(2**31) - 1, "1_0"):
        status, code, _ = _error(lambda duration=duration: rds.describe_events(Duration=duration))
        assert (status, code) == (400, "InvalidParameterValue")
    assert rds.describe_events(Duration=2**31 - 1)["Events"] is not None  # the largest int: clamped
    assert rds.describe_events(Duration=-5)["Events"] is not None


def test_rest_xml_integer_beyond_int32(strata_server, s3_bucket: str) -> None:
    s3 = strata_server.client("s3", config=LOOSE)
    for value in (2**31, "٣"):
        status, code, _ = _error(lambda value=value: s3.list_objects_v2(Bucket=s3_bucket, MaxKeys=value))
        assert (status, code) == (400, "InvalidArgument")
    assert s3.list_objects_v2(Bucket=s3_bucket, MaxKeys=2**31 - 1)["KeyCount"] == 0
