"""Bucket life cycle and rules through boto3, plus path/virtual-hosted/accelerate addressing."""

from __future__ import annotations

import http.client

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError


def code(e: pytest.ExceptionInfo) -> str:
    return e.value.response["Error"]["Code"]


@pytest.mark.parametrize(
    "name",
    ["ab", "A-bucket", "bad_name", "192.168.1.1", "a..b", "-start", "x" * 64, "xn--abc", "end-s3alias"],
)
def test_invalid_bucket_names(s3, name: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=name)
    assert code(e) == "InvalidBucketName"


def test_bucket_life_cycle(s3, unique: str) -> None:
    name = f"life-{unique}"
    s3.create_bucket(Bucket=name)
    assert s3.head_bucket(Bucket=name)["BucketRegion"] == "us-east-1"
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    # us-east-1 keeps AWS's legacy 200 for re-creating your own bucket
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=name)
    assert code(e) == "BucketNotEmpty"
    s3.delete_object(Bucket=name, Key="k")
    s3.delete_bucket(Bucket=name)
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=name)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket=name)
    assert code(e) == "NoSuchBucket"


def test_location_constraint_and_global_names(strata_server, s3, unique: str) -> None:
    name = f"eu-{unique}"
    eu = strata_server.client("s3", region_name="eu-west-1")
    eu.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == "eu-west-1"
    with pytest.raises(ClientError) as e:
        eu.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert code(e) == "BucketAlreadyOwnedByYou"
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=f"x{unique}", CreateBucketConfiguration={"LocationConstraint": "us-east-1"})
    assert code(e) == "InvalidLocationConstraint"


def test_list_buckets_pagination(s3, unique: str) -> None:
    names = [f"pg-{unique}-{i}" for i in range(3)]
    for n in names:
        s3.create_bucket(Bucket=n)
    page = s3.list_buckets(MaxBuckets=2, Prefix=f"pg-{unique}")
    assert [b["Name"] for b in page["Buckets"]] == names[:2]
    rest = s3.list_buckets(MaxBuckets=2, Prefix=f"pg-{unique}", ContinuationToken=page["ContinuationToken"])
    assert [b["Name"] for b in rest["Buckets"]] == names[2:] and "ContinuationToken" not in rest


def test_bucket_tagging(s3, bucket: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.get_bucket_tagging(Bucket=bucket)
    assert code(e) == "NoSuchTagSet"
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "team", "Value": "data"}]})
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "team", "Value": "data"}]
    s3.delete_bucket_tagging(Bucket=bucket)
    with pytest.raises(ClientError):
        s3.get_bucket_tagging(Bucket=bucket)


@pytest.mark.parametrize(
    "host_form", ["{b}.s3.localhost.localstack.cloud", "{b}.s3-accelerate.amazonaws.com"]
)
def test_virtual_hosted_and_accelerate_addressing(strata_server, s3, bucket: str, host_form: str) -> None:
    s3.put_object(Bucket=bucket, Key="dir/file.txt", Body=b"virtual")
    host = host_form.format(b=bucket)
    req = AWSRequest(
        "GET",
        f"http://{host}:{strata_server.port}/dir/file.txt",
        headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"},
    )
    SigV4Auth(Credentials("test", "test"), "s3", "us-east-1").add_auth(req)
    conn = http.client.HTTPConnection("127.0.0.1", strata_server.port)
    headers = dict(req.headers.items())
    headers["Host"] = f"{host}:{strata_server.port}"
    conn.request("GET", "/dir/file.txt", headers=headers)
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()
    assert resp.read() == b"virtual"


def test_accelerate_configuration(s3, bucket: str) -> None:
    assert "Status" not in s3.get_bucket_accelerate_configuration(Bucket=bucket)
    s3.put_bucket_accelerate_configuration(Bucket=bucket, AccelerateConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_accelerate_configuration(Bucket=bucket)["Status"] == "Enabled"


def test_configurations_strata_does_not_act_on_read_as_absent_and_refuse_being_set(s3, bucket: str) -> None:
    """What Terraform and the console read of every bucket: S3's empty answers; turning a feature
    off succeeds, turning it on is NotImplemented (never stored and ignored)."""

    def fails(call, **kw) -> tuple[str, int]:  # noqa: ANN001
        with pytest.raises(ClientError) as e:
            call(Bucket=bucket, **kw)
        return code(e), e.value.response["ResponseMetadata"]["HTTPStatusCode"]

    assert fails(s3.get_bucket_website) == ("NoSuchWebsiteConfiguration", 404)
    assert fails(s3.get_bucket_replication) == ("ReplicationConfigurationNotFoundError", 404)
    assert fails(s3.get_bucket_inventory_configuration, Id="a") == ("NoSuchConfiguration", 404)
    assert fails(s3.get_bucket_analytics_configuration, Id="a") == ("NoSuchConfiguration", 404)
    assert "LoggingEnabled" not in s3.get_bucket_logging(Bucket=bucket)
    notification = s3.get_bucket_notification_configuration(Bucket=bucket)
    assert not notification.get("QueueConfigurations") and not notification.get("TopicConfigurations")
    assert s3.get_bucket_request_payment(Bucket=bucket)["Payer"] == "BucketOwner"
    assert s3.list_bucket_inventory_configurations(Bucket=bucket)["IsTruncated"] is False
    assert s3.list_bucket_analytics_configurations(Bucket=bucket)["IsTruncated"] is False
    # Off: accepted.
    s3.delete_bucket_website(Bucket=bucket)
    s3.delete_bucket_replication(Bucket=bucket)
    s3.put_bucket_logging(Bucket=bucket, BucketLoggingStatus={})
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    s3.put_bucket_request_payment(Bucket=bucket, RequestPaymentConfiguration={"Payer": "BucketOwner"})
    # On: refused.
    queue = {"QueueArn": "arn:aws:sqs:us-east-1:000000000000:q", "Events": ["s3:ObjectCreated:*"]}
    refused = [
        (s3.put_bucket_website, {"WebsiteConfiguration": {"IndexDocument": {"Suffix": "index.html"}}}),
        (
            s3.put_bucket_notification_configuration,
            {"NotificationConfiguration": {"QueueConfigurations": [queue]}},
        ),
        (
            s3.put_bucket_notification_configuration,
            {"NotificationConfiguration": {"EventBridgeConfiguration": {}}},
        ),
        (s3.put_bucket_request_payment, {"RequestPaymentConfiguration": {"Payer": "Requester"}}),
    ]
    for call, kw in refused:
        assert fails(call, **kw) == ("NotImplemented", 501), call
    replication = {
        "Role": "arn:aws:iam::000000000000:role/r",
        "Rules": [{"Status": "Enabled", "Prefix": "", "Destination": {"Bucket": "arn:aws:s3:::elsewhere"}}],
    }
    assert fails(s3.put_bucket_replication, ReplicationConfiguration=replication) == ("InvalidRequest", 400)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert fails(s3.put_bucket_replication, ReplicationConfiguration=replication) == ("NotImplemented", 501)
    assert fails(s3.get_bucket_website) == ("NoSuchWebsiteConfiguration", 404)
    assert "LoggingEnabled" not in s3.get_bucket_logging(Bucket=bucket)
    assert fails(s3.get_bucket_replication) == ("ReplicationConfigurationNotFoundError", 404)
