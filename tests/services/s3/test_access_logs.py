"""S3 server access logging end to end: PutBucketLogging's checks, records delivered as objects in
the target bucket when the simulated clock moves, in S3's log format."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.services.iam.conftest import ALICE, ALT_ROOT, users_file

# S3's server access log line: the quoted and bracketed fields are single tokens
_TOKEN = re.compile(r'\[[^\]]*\]|"(?:[^"\\]|\\.)*"|\S+')


def _delivery_policy(target: str, prefix: str, source: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "logging.s3.amazonaws.com"},
                    "Action": "s3:PutObject",
                    "Resource": f"arn:aws:s3:::{target}/{prefix}*",
                    "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{source}"}},
                }
            ],
        }
    )


def _refusal(call: Any, **kw: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as e:
        call(**kw)
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


def test_logs_are_delivered_to_the_target_prefix_in_s3_format(strata_factory: Any, tmp_path: Any) -> None:
    server = strata_factory(extra_env={"STRATA_USERS_FILE": str(users_file(tmp_path))})
    s3 = server.client("s3")
    s3.create_bucket(Bucket="src")
    s3.create_bucket(Bucket="logs")
    enable = {"LoggingEnabled": {"TargetBucket": "logs", "TargetPrefix": "access/"}}

    # refused: no policy lets the logging service write yet; a missing or far-away target
    code, message = _refusal(s3.put_bucket_logging, Bucket="src", BucketLoggingStatus=enable)
    assert code == "InvalidTargetBucketForLogging" and "log-delivery group" in message
    missing = {"LoggingEnabled": {"TargetBucket": "no-such-logs", "TargetPrefix": "a/"}}
    assert _refusal(s3.put_bucket_logging, Bucket="src", BucketLoggingStatus=missing) == (
        "InvalidTargetBucketForLogging",
        "The target bucket for logging does not exist",
    )
    s3.create_bucket(Bucket="far-logs", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    far = {"LoggingEnabled": {"TargetBucket": "far-logs", "TargetPrefix": "a/"}}
    assert _refusal(s3.put_bucket_logging, Bucket="src", BucketLoggingStatus=far)[0] == (
        "CrossLocationLoggingProhibitted"
    )
    other = server.client("s3", **ALT_ROOT)  # another account's bucket, open to the logging service
    other.create_bucket(Bucket="foreign-logs")
    other.put_bucket_policy(Bucket="foreign-logs", Policy=_delivery_policy("foreign-logs", "", "src"))
    foreign = {"LoggingEnabled": {"TargetBucket": "foreign-logs", "TargetPrefix": ""}}
    assert _refusal(s3.put_bucket_logging, Bucket="src", BucketLoggingStatus=foreign) == (
        "InvalidTargetBucketForLogging",
        "The owner for the bucket to be logged and the target bucket must be the same.",
    )
    assert "LoggingEnabled" not in s3.get_bucket_logging(Bucket="src")

    s3.put_bucket_policy(Bucket="logs", Policy=_delivery_policy("logs", "access/", "src"))
    s3.put_bucket_logging(Bucket="src", BucketLoggingStatus=enable)
    assert s3.get_bucket_logging(Bucket="src")["LoggingEnabled"] == enable["LoggingEnabled"]

    s3.put_object(Bucket="src", Key="a.txt", Body=b"hello")
    assert s3.get_object(Bucket="src", Key="a.txt")["Body"].read() == b"hello"
    with pytest.raises(ClientError):
        s3.get_object(Bucket="src", Key="missing.txt")
    assert "Contents" not in s3.list_objects_v2(Bucket="logs", Prefix="access/")  # not yet
    server.client("s3", https=True).head_object(Bucket="src", Key="a.txt")
    forged = server.client("s3", access_key=ALICE["access_key"], secret_key="not-alices-secret")
    with pytest.raises(ClientError):
        forged.get_object(Bucket="src", Key="a.txt")
    server.stop()  # a graceful stop delivers what is buffered; the configuration outlives it
    server.start()
    alice = server.client("s3", **ALICE)
    assert alice.get_object(Bucket="src", Key="a.txt", Range="bytes=0-1")["Body"].read() == b"he"

    assert server.advance_clock("10m")["ran"]["s3.access_logs"] == {"objects": 1, "records": 1}
    listed = s3.list_objects_v2(Bucket="logs", Prefix="access/")["Contents"]
    assert len(listed) == 2
    lines = []
    for obj in listed:
        assert re.fullmatch(r"access/\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d-[0-9A-F]{16}", obj["Key"])
        got = s3.get_object(Bucket="logs", Key=obj["Key"])
        assert got["ServerSideEncryption"] == "AES256"  # the target's default encryption applied
        lines += [_TOKEN.findall(line) for line in got["Body"].read().decode().splitlines()]
    assert all(len(f) == 26 for f in lines), lines
    by_op = {(f[6], f[7]): f for f in lines if f[9] in ("200", "404")}  # the owner's
    put, get, miss = (
        by_op[("REST.PUT.OBJECT", "a.txt")],
        by_op[("REST.GET.OBJECT", "a.txt")],
        by_op[("REST.GET.OBJECT", "missing.txt")],
    )
    assert put[1] == "src" and put[9] == "200" and put[12] == "5"
    assert get[9] == "200" and get[11] == "5" and get[8].startswith('"GET /src/a.txt')
    assert miss[9] == "404" and miss[10] == "NoSuchKey"
    assert get[4].startswith("arn:aws:iam::") and get[19] == "SigV4" and get[21] == "AuthHeader"
    assert ("REST.PUT.LOGGING_STATUS", "-") in by_op
    head = by_op[("REST.HEAD.OBJECT", "a.txt")]
    assert head[20] != "-" and head[23].startswith("TLSv1."), head  # cipher suite, TLS version
    assert get[20] == "-" and get[23] == "-"  # plain HTTP
    refused = [f for f in lines if f[10] == "SignatureDoesNotMatch"]
    assert len(refused) == 1 and refused[0][9] == "403" and refused[0][4] == "-", refused
    ranged = [f for f in lines if f[8].startswith('"GET') and f[4].endswith(":user/alice")]
    assert len(ranged) == 1 and ranged[0][9] == "206", ranged
    assert ranged[0][11] == "2" and ranged[0][12] == "5"  # bytes sent, the object's size

    # an ACL-enabled target: the LogDelivery group's WRITE lets the logs in; TargetGrants apply
    s3.create_bucket(Bucket="acl-logs", ObjectOwnership="BucketOwnerPreferred", ACL="log-delivery-write")
    reader = other.list_buckets()["Owner"]["ID"]
    grants = [{"Grantee": {"Type": "CanonicalUser", "ID": reader}, "Permission": "READ"}]
    to_acl = {"TargetBucket": "acl-logs", "TargetPrefix": "", "TargetGrants": grants}
    unknown = [{"Grantee": {"Type": "CanonicalUser", "ID": "f" * 64}, "Permission": "READ"}]
    bad = {"LoggingEnabled": {**to_acl, "TargetGrants": unknown}}
    assert _refusal(s3.put_bucket_logging, Bucket="src", BucketLoggingStatus=bad)[0] == "InvalidArgument"
    s3.put_bucket_logging(Bucket="src", BucketLoggingStatus={"LoggingEnabled": to_acl})
    s3.head_object(Bucket="src", Key="a.txt")
    assert server.advance_clock("10m")["ran"]["s3.access_logs"]["objects"] == 1
    (delivered,) = s3.list_objects_v2(Bucket="acl-logs")["Contents"]
    assert (
        other.get_object(Bucket="acl-logs", Key=delivered["Key"])["Body"].read().split(b" ")[1] == b"src"
    )  # READ granted
    acl = s3.get_object_acl(Bucket="acl-logs", Key=delivered["Key"])["Grants"]
    assert {"Grantee": {"Type": "CanonicalUser", "ID": reader}, "Permission": "READ"} in [
        {
            "Grantee": {k: v for k, v in g["Grantee"].items() if k in ("Type", "ID")},
            "Permission": g["Permission"],
        }
        for g in acl
    ]

    # off: nothing more is recorded, the delivered log stays
    s3.put_bucket_logging(Bucket="src", BucketLoggingStatus={})
    assert "LoggingEnabled" not in s3.get_bucket_logging(Bucket="src")
    s3.get_object(Bucket="src", Key="a.txt")
    assert server.advance_clock("10m")["ran"]["s3.access_logs"].get("objects", 0) == 0
    assert len(s3.list_objects_v2(Bucket="logs", Prefix="access/")["Contents"]) == 2


def test_partitioned_prefix_and_a_bucket_logging_to_itself(strata_factory: Any) -> None:
    server = strata_factory()
    s3 = server.client("s3")
    s3.create_bucket(Bucket="self")
    s3.put_bucket_policy(Bucket="self", Policy=_delivery_policy("self", "logs/", "self"))
    partitioned = {
        "TargetBucket": "self",
        "TargetPrefix": "logs/",
        "TargetObjectKeyFormat": {"PartitionedPrefix": {"PartitionDateSource": "EventTime"}},
    }
    s3.put_bucket_logging(Bucket="self", BucketLoggingStatus={"LoggingEnabled": partitioned})
    s3.head_bucket(Bucket="self")
    server.advance_clock("10m")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="self", Prefix="logs/")["Contents"]]
    assert len(keys) == 1
    assert re.fullmatch(r"logs/\d{12}/us-east-1/self/\d{4}/\d\d/\d\d/[-0-9A-F]+", keys[0]), keys
    # the delivery wrote into the logged bucket, yet is not itself a record: no loop
    assert server.advance_clock("10m")["ran"]["s3.access_logs"]["objects"] == 1  # the list above
    assert server.advance_clock("10m")["ran"]["s3.access_logs"].get("objects", 0) == 0

    # lifecycle's own actions are logged too, stamped when they fell due
    rule = {"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 1}}
    s3.put_bucket_lifecycle_configuration(Bucket="self", LifecycleConfiguration={"Rules": [rule]})
    s3.put_object(Bucket="self", Key="tmp/x", Body=b"12345")
    server.advance_clock("3d")
    server.advance_clock("10m")  # whichever rule ran first in the jump, the records are out now
    lines = []
    for obj in s3.list_objects_v2(Bucket="self", Prefix="logs/")["Contents"]:
        lines += s3.get_object(Bucket="self", Key=obj["Key"])["Body"].read().decode().splitlines()
    expired = [line.split(" ") for line in lines if " S3.EXPIRE.OBJECT " in line]
    assert len(expired) == 1 and expired[0][5] == "AmazonS3" and expired[0][8] == "tmp/x", expired

    # refused: a target with Object Lock default retention; TargetGrants on a bucket without ACLs
    s3.create_bucket(Bucket="locked", ObjectLockEnabledForBucket=True)
    rule = {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}
    s3.put_object_lock_configuration(
        Bucket="locked", ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": rule}
    )
    locked = {"LoggingEnabled": {"TargetBucket": "locked", "TargetPrefix": "l/"}}
    assert _refusal(s3.put_bucket_logging, Bucket="self", BucketLoggingStatus=locked)[0] == (
        "InvalidTargetBucketForLogging"
    )
    grants = [
        {
            "Grantee": {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"},
            "Permission": "READ",
        }
    ]
    with_grants = {"LoggingEnabled": {**partitioned, "TargetGrants": grants}}
    assert _refusal(s3.put_bucket_logging, Bucket="self", BucketLoggingStatus=with_grants)[0] == (
        "InvalidTargetBucketForLogging"
    )
    assert s3.get_bucket_logging(Bucket="self")["LoggingEnabled"] == partitioned  # unchanged


def test_a_full_buffer_asks_for_delivery_once_and_is_bounded() -> None:
    from strata.sim import server_access_logs as sal

    buffer = sal.ServerAccessLogs()
    asked: list[int] = []
    buffer.on_full = lambda: asked.append(len(asked))
    record = sal.Record(0.0, "b", "-", "-", "r", "GetObject", "GET", "k", "GET /b/k HTTP/1.1", 200, "", 1, 1, 1.0, "", "", "", "-", "-", "h", None, "", False)  # fmt: skip
    for _ in range(sal.MAX_BUFFERED + 5):
        buffer.add(record)
    assert asked == [0]  # at FLUSH_AT, once
    assert buffer.take_dropped() == 5 and buffer.take_dropped() == 0
    assert len(buffer.drain()) == sal.MAX_BUFFERED and buffer.drain() == []
