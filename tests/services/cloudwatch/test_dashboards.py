"""Dashboards: the body comes back as given; bad bodies and names are refused; survive restart."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

BODY = {
    "widgets": [
        {
            "type": "metric",
            "x": 0,
            "y": 0,
            "width": 12,
            "height": 6,
            "properties": {
                "metrics": [["AWS/ElastiCache", "CacheHitRate", "CacheClusterId", "lab"]],
                "period": 300,
                "stat": "Average",
                "region": "us-east-1",
            },
        }
    ]
}


def test_dashboard_lifecycle(strata_factory, unique):
    server = strata_factory()
    cw = server.client("cloudwatch")
    name = f"lab-{unique}"
    assert (
        cw.put_dashboard(DashboardName=name, DashboardBody=json.dumps(BODY))["DashboardValidationMessages"]
        == []
    )
    cw.put_dashboard(DashboardName=f"other-{unique}", DashboardBody="{}")
    got = cw.get_dashboard(DashboardName=name)
    assert json.loads(got["DashboardBody"]) == BODY
    assert got["DashboardArn"] == f"arn:aws:cloudwatch::000000000000:dashboard/{name}"
    (entry,) = cw.list_dashboards(DashboardNamePrefix="lab-")["DashboardEntries"]
    assert entry["DashboardName"] == name and entry["Size"] == len(json.dumps(BODY))

    for body, field in (("not json", ""), ('{"widgets": {}}', "/widgets"), ("[]", "")):
        with pytest.raises(ClientError) as e:
            cw.put_dashboard(DashboardName=name, DashboardBody=body)
        assert e.value.response["Error"]["Code"] == "InvalidParameterInput"
        assert e.value.response["dashboardValidationMessages"][0]["DataPath"] == field
    with pytest.raises(ClientError) as e:
        cw.put_dashboard(DashboardName="bad name!", DashboardBody="{}")
    assert e.value.response["Error"]["Code"] == "InvalidParameterInput"

    server.restart()
    cw = server.client("cloudwatch")
    assert json.loads(cw.get_dashboard(DashboardName=name)["DashboardBody"]) == BODY
    with pytest.raises(ClientError) as e:
        cw.delete_dashboards(DashboardNames=[name, f"missing-{unique}"])
    assert e.value.response["Error"]["Code"] == "ResourceNotFound"
    cw.delete_dashboards(DashboardNames=[name])
    with pytest.raises(ClientError) as e:
        cw.get_dashboard(DashboardName=name)
    assert e.value.response["Error"]["Code"] == "ResourceNotFound"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert [d["DashboardName"] for d in cw.list_dashboards()["DashboardEntries"]] == [f"other-{unique}"]
