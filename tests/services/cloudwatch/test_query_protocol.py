"""CloudWatch over the query protocol, as SDKs built before its move to JSON still call it:
botocore itself, loading the cloudwatch model with only `query` among its protocols."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import botocore.session
import pytest
from botocore.exceptions import ClientError
from botocore.loaders import Loader


@pytest.fixture
def query_cw(strata_server, tmp_path: Path):
    model = Loader().load_service_model("cloudwatch", "service-2")
    model["metadata"]["protocol"] = "query"
    model["metadata"]["protocols"] = ["query"]
    target = tmp_path / "cloudwatch" / "2010-08-01"
    target.mkdir(parents=True)
    (target / "service-2.json.gz").write_bytes(gzip.compress(json.dumps(model).encode()))
    session = botocore.session.get_session()
    session.get_component("data_loader").search_paths.insert(0, str(tmp_path))
    client = boto3.Session(botocore_session=session, region_name="us-east-1").client(
        "cloudwatch",
        endpoint_url=strata_server.endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    assert client.meta.service_model.resolved_protocol == "query"
    return client


def test_query_protocol_put_and_get(query_cw, strata_server, unique):
    ns = f"Query/{unique}"
    query_cw.put_metric_data(
        Namespace=ns,
        MetricData=[{"MetricName": "m", "Dimensions": [{"Name": "D", "Value": "v"}], "Values": [1, 2, 3]}],
    )
    now = datetime.now(UTC)
    (point,) = query_cw.get_metric_statistics(
        Namespace=ns,
        MetricName="m",
        Dimensions=[{"Name": "D", "Value": "v"}],
        StartTime=now - timedelta(minutes=10),
        EndTime=now + timedelta(minutes=10),
        Period=3600,
        Statistics=["Sum", "Maximum"],
    )["Datapoints"]
    assert (point["Sum"], point["Maximum"]) == (6.0, 3.0)
    # the JSON client sees the same data
    listed = strata_server.client("cloudwatch").list_metrics(Namespace=ns)["Metrics"]
    assert [m["MetricName"] for m in listed] == ["m"]
    with pytest.raises(ClientError) as e:
        query_cw.put_metric_data(Namespace="AWS/S3", MetricData=[{"MetricName": "m", "Value": 1}])
    assert e.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
