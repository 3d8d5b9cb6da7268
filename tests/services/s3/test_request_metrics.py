"""S3 request metrics: Put/Get/List/DeleteBucketMetricsConfiguration, and the AWS/S3 metrics per
BucketName and FilterId that CloudWatch then receives, counted against what the client sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError


def _stat(cw, bucket: str, filter_id: str, name: str, stat: str = "Sum") -> dict:  # noqa: ANN001
    now = datetime.now(UTC)
    points = cw.get_metric_statistics(
        Namespace="AWS/S3",
        MetricName=name,
        Dimensions=[{"Name": "BucketName", "Value": bucket}, {"Name": "FilterId", "Value": filter_id}],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(hours=1),
        Period=7200,
        Statistics=[stat, "SampleCount"],
    )["Datapoints"]
    assert len(points) <= 1
    return points[0] if points else {}


def test_metrics_configurations_are_kept_and_checked(strata_server, unique) -> None:  # noqa: ANN001
    s3 = strata_server.client("s3")
    bucket = f"mc-{unique}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_metrics_configuration(
        Bucket=bucket, Id="EntireBucket", MetricsConfiguration={"Id": "EntireBucket"}
    )
    logs = {"Id": "logs", "Filter": {"Prefix": "logs/"}}
    s3.put_bucket_metrics_configuration(Bucket=bucket, Id="logs", MetricsConfiguration=logs)
    got = s3.get_bucket_metrics_configuration(Bucket=bucket, Id="logs")["MetricsConfiguration"]
    assert got == logs
    listed = s3.list_bucket_metrics_configurations(Bucket=bucket)
    assert [c["Id"] for c in listed["MetricsConfigurationList"]] == ["EntireBucket", "logs"]
    assert listed["IsTruncated"] is False

    with pytest.raises(ClientError) as e:
        s3.put_bucket_metrics_configuration(
            Bucket=bucket, Id="other", MetricsConfiguration={"Id": "not-other"}
        )
    assert e.value.response["Error"]["Code"] == "MalformedXML"
    with pytest.raises(ClientError) as e:  # tag filters are not honoured: refused, not ignored
        s3.put_bucket_metrics_configuration(
            Bucket=bucket,
            Id="tagged",
            MetricsConfiguration={"Id": "tagged", "Filter": {"Tag": {"Key": "k", "Value": "v"}}},
        )
    assert e.value.response["Error"]["Code"] == "NotImplemented"

    s3.delete_bucket_metrics_configuration(Bucket=bucket, Id="logs")
    for call in (s3.get_bucket_metrics_configuration, s3.delete_bucket_metrics_configuration):
        with pytest.raises(ClientError) as e:
            call(Bucket=bucket, Id="logs")
        assert e.value.response["Error"]["Code"] == "NoSuchConfiguration"
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    listed = s3.list_bucket_metrics_configurations(Bucket=bucket)
    assert [c["Id"] for c in listed["MetricsConfigurationList"]] == ["EntireBucket"]


def test_request_metrics_count_what_the_client_did(strata_factory, unique) -> None:  # noqa: ANN001
    server = strata_factory()
    s3, cw = server.client("s3"), server.client("cloudwatch")
    bucket, quiet = f"rm-{unique}", f"quiet-{unique}"
    for name in (bucket, quiet):
        s3.create_bucket(Bucket=name)
    s3.put_bucket_metrics_configuration(  # counted: the bucket is watched once it answers
        Bucket=bucket, Id="EntireBucket", MetricsConfiguration={"Id": "EntireBucket"}
    )
    s3.put_bucket_metrics_configuration(
        Bucket=bucket, Id="logs", MetricsConfiguration={"Id": "logs", "Filter": {"Prefix": "logs/"}}
    )
    s3.put_object(Bucket=bucket, Key="logs/a", Body=b"a" * 1000)
    s3.put_object(Bucket=bucket, Key="logs/b", Body=b"b" * 2000)
    s3.put_object(Bucket=bucket, Key="other", Body=b"o" * 500)
    assert len(s3.get_object(Bucket=bucket, Key="logs/a")["Body"].read()) == 1000
    assert len(s3.get_object(Bucket=bucket, Key="other")["Body"].read()) == 500
    with pytest.raises(ClientError):
        s3.get_object(Bucket=bucket, Key="logs/missing")
    s3.head_object(Bucket=bucket, Key="logs/b")
    s3.list_objects_v2(Bucket=bucket)
    s3.delete_object(Bucket=bucket, Key="other")
    s3.put_object(Bucket=quiet, Key="x", Body=b"x")
    server.advance_clock("2m")

    whole = {
        name: _stat(cw, bucket, "EntireBucket", name).get("Sum")
        for name in (
            "AllRequests",
            "GetRequests",
            "PutRequests",
            "HeadRequests",
            "ListRequests",
            "DeleteRequests",
            "4xxErrors",
            "5xxErrors",
        )
    }
    assert whole == {
        "AllRequests": 11,  # the second configuration, 3 PUTs, 3 GETs, HEAD, LIST, DELETE and the first one
        "GetRequests": 3,
        "PutRequests": 3,
        "HeadRequests": 1,
        "ListRequests": 1,
        "DeleteRequests": 1,
        "4xxErrors": 1,
        "5xxErrors": 0,
    }
    errors = _stat(cw, bucket, "EntireBucket", "4xxErrors", "Average")
    assert errors["Average"] == pytest.approx(1 / 11) and errors["SampleCount"] == 11

    logs = {
        name: _stat(cw, bucket, "logs", name).get("Sum")
        for name in (
            "AllRequests",
            "GetRequests",
            "PutRequests",
            "HeadRequests",
            "4xxErrors",
        )
    }
    assert logs == {"AllRequests": 5, "GetRequests": 2, "PutRequests": 2, "HeadRequests": 1, "4xxErrors": 1}
    uploaded = _stat(cw, bucket, "logs", "BytesUploaded")
    assert (uploaded["Sum"], uploaded["SampleCount"]) == (3000, 2)
    downloaded = _stat(cw, bucket, "logs", "BytesDownloaded")
    assert (downloaded["Sum"], downloaded["SampleCount"]) == (1000, 1)  # no body: the HEAD, the 404
    latency = _stat(cw, bucket, "logs", "TotalRequestLatency", "Maximum")
    assert latency["SampleCount"] == 5 and latency["Maximum"] > 0
    assert _stat(cw, bucket, "logs", "FirstByteLatency", "Maximum")["SampleCount"] == 5
    names = {
        m["MetricName"]
        for m in cw.list_metrics(Namespace="AWS/S3")["Metrics"]
        if {"Name": "BucketName", "Value": quiet} in m["Dimensions"]
    }
    assert "AllRequests" not in names  # no configuration, no request metrics

    server.restart()  # the configurations are watched again after a restart
    s3, cw = server.client("s3"), server.client("cloudwatch")
    s3.get_object(Bucket=bucket, Key="logs/a")["Body"].read()
    server.advance_clock("2m")
    assert _stat(cw, bucket, "logs", "GetRequests")["Sum"] == 3
    s3.delete_bucket_metrics_configuration(Bucket=bucket, Id="logs")
    s3.get_object(Bucket=bucket, Key="logs/a")["Body"].read()
    server.advance_clock("2m")
    assert _stat(cw, bucket, "logs", "GetRequests")["Sum"] == 3  # no longer counted
    assert _stat(cw, bucket, "EntireBucket", "GetRequests")["Sum"] == 5
