"""Metric alarms evaluated on the simulated clock: OK -> ALARM -> OK, kept across a restart."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError


def _alarm(cw, name: str, namespace: str, **kw) -> None:
    settings = {
        "MetricName": "Errors",
        "Statistic": "Maximum",
        "Period": 60,
        "EvaluationPeriods": 1,
        "Threshold": 5,
        "ComparisonOperator": "GreaterThanThreshold",
    }
    cw.put_metric_alarm(AlarmName=name, Namespace=namespace, **(settings | kw))


def _state(cw, name: str) -> str:
    return cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"]


def test_alarm_goes_to_alarm_and_back_as_the_clock_moves(strata_factory, unique):
    server = strata_factory()
    cw = server.client("cloudwatch")
    ns, name = f"App/{unique}", f"errors-{unique}"
    _alarm(cw, name, ns, TreatMissingData="ignore")
    assert _state(cw, name) == "INSUFFICIENT_DATA"

    cw.put_metric_data(Namespace=ns, MetricData=[{"MetricName": "Errors", "Value": 10}])
    server.advance_clock("2m")
    alarm = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
    assert alarm["StateValue"] == "ALARM"
    assert "greater than the threshold (5.0)" in alarm["StateReason"]
    assert json.loads(alarm["StateReasonData"])["recentDatapoints"] == [10.0]

    cw.put_metric_data(Namespace=ns, MetricData=[{"MetricName": "Errors", "Value": 1}])
    server.advance_clock("2m")
    assert _state(cw, name) == "OK"

    history = cw.describe_alarm_history(
        AlarmName=name, HistoryItemType="StateUpdate", ScanBy="TimestampAscending"
    )
    summaries = [h["HistorySummary"] for h in history["AlarmHistoryItems"]]
    assert summaries == ["Alarm updated from INSUFFICIENT_DATA to ALARM", "Alarm updated from ALARM to OK"]
    stamps = [h["Timestamp"] for h in history["AlarmHistoryItems"]]
    assert stamps[0] < stamps[1]

    server.restart()
    cw = server.client("cloudwatch")
    assert _state(cw, name) == "OK"
    after = cw.describe_alarm_history(AlarmName=name, HistoryItemType="StateUpdate")["AlarmHistoryItems"]
    assert len(after) == 2


def test_missing_data_makes_an_alarm_insufficient_and_datapoints_to_alarm_counts(strata_factory, unique):
    server = strata_factory()
    cw = server.client("cloudwatch")
    ns, name = f"App/{unique}", f"m-of-n-{unique}"
    _alarm(cw, name, ns, EvaluationPeriods=3, DatapointsToAlarm=2, TreatMissingData="notBreaching")
    cw.put_metric_data(Namespace=ns, MetricData=[{"MetricName": "Errors", "Value": 9}])
    server.advance_clock("1m")
    assert _state(cw, name) == "OK"  # one breaching datapoint of the two needed
    cw.put_metric_data(Namespace=ns, MetricData=[{"MetricName": "Errors", "Value": 9}])
    server.advance_clock("1m")
    assert _state(cw, name) == "ALARM"

    plain = f"plain-{unique}"
    _alarm(cw, plain, ns, MetricName="Nothing", TreatMissingData="breaching")
    server.advance_clock("2m")
    assert _state(cw, plain) == "ALARM"  # missing data counted as breaching


def test_set_alarm_state_describe_filters_and_delete(strata_server, unique):
    cw = strata_server.client("cloudwatch")
    a, b = f"a-{unique}", f"b-{unique}"
    _alarm(cw, a, f"App/{unique}")
    _alarm(cw, b, f"App/{unique}")
    cw.set_alarm_state(AlarmName=a, StateValue="ALARM", StateReason="testing", StateReasonData='{"x": 1}')
    alarm = cw.describe_alarms(AlarmNames=[a])["MetricAlarms"][0]
    assert (alarm["StateValue"], alarm["StateReason"]) == ("ALARM", "testing")
    in_alarm = cw.describe_alarms(AlarmNamePrefix=f"a-{unique}", StateValue="ALARM")["MetricAlarms"]
    assert [x["AlarmName"] for x in in_alarm] == [a]
    cw.disable_alarm_actions(AlarmNames=[a, f"unknown-{unique}"])
    assert cw.describe_alarms(AlarmNames=[a])["MetricAlarms"][0]["ActionsEnabled"] is False
    cw.enable_alarm_actions(AlarmNames=[a])
    assert cw.describe_alarms(AlarmNames=[a])["MetricAlarms"][0]["ActionsEnabled"] is True
    for_metric = cw.describe_alarms_for_metric(Namespace=f"App/{unique}", MetricName="Errors")["MetricAlarms"]
    assert sorted(x["AlarmName"] for x in for_metric) == [a, b]
    with pytest.raises(ClientError) as e:
        cw.set_alarm_state(AlarmName=a, StateValue="OK", StateReason="r", StateReasonData="not json")
    assert e.value.response["Error"]["Code"] == "InvalidFormat"
    with pytest.raises(ClientError) as e:
        cw.delete_alarms(AlarmNames=[a, f"missing-{unique}"])
    assert e.value.response["Error"]["Code"] == "ResourceNotFound"
    assert len(cw.describe_alarms(AlarmNames=[a, b])["MetricAlarms"]) == 2  # nothing deleted
    cw.delete_alarms(AlarmNames=[a, b])
    assert cw.describe_alarms(AlarmNames=[a, b])["MetricAlarms"] == []


def test_alarm_actions_are_refused(strata_server, unique):
    cw = strata_server.client("cloudwatch")
    with pytest.raises(ClientError) as e:
        _alarm(cw, f"act-{unique}", "App", AlarmActions=["arn:aws:sns:us-east-1:000000000000:topic"])
    assert e.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert cw.describe_alarms(AlarmNames=[f"act-{unique}"])["MetricAlarms"] == []


def test_alarm_tags(strata_server, unique):
    cw = strata_server.client("cloudwatch")
    name = f"tagged-{unique}"
    _alarm(cw, name, f"App/{unique}", Tags=[{"Key": "team", "Value": "web"}])
    arn = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["AlarmArn"]
    assert arn == f"arn:aws:cloudwatch:us-east-1:000000000000:alarm:{name}"
    assert cw.list_tags_for_resource(ResourceARN=arn)["Tags"] == [{"Key": "team", "Value": "web"}]
    cw.tag_resource(ResourceARN=arn, Tags=[{"Key": "team", "Value": "db"}, {"Key": "env", "Value": "prod"}])
    _alarm(cw, name, f"App/{unique}", Tags=[{"Key": "ignored", "Value": "on update"}])
    cw.untag_resource(ResourceARN=arn, TagKeys=["env", "absent"])
    assert cw.list_tags_for_resource(ResourceARN=arn)["Tags"] == [{"Key": "team", "Value": "db"}]
    with pytest.raises(ClientError) as e:
        cw.list_tags_for_resource(ResourceARN=arn + "-missing")
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
