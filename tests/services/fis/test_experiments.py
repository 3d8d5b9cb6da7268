"""FIS experiments in real time: state transitions and startAfter order of wait actions, an
injected DynamoDB throttle on an assumed role's sessions (absorbed by boto3's retries, seen by a
client that does not retry), StopExperiment rolling the fault back, and a restart mid-experiment."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.services.fis.conftest import runner_role
from tests.services.fis.test_templates import NONE, ROLE, throttle_template, wait_template
from tests.strata_process import StrataProcess

DONE = ("completed", "stopped", "failed")


@pytest.fixture(scope="module", autouse=True)
def billed_experiment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StrataProcess, str]]:
    """A 35-second wait action on a private server (its meter holds nothing else), started before
    this module's first test so its real-time wait passes while the others run; the billing test
    at the end of the module waits for whatever is left of it."""
    server = StrataProcess(tmp_path_factory.mktemp("fis-billing") / "data").start()
    runner_role(server)
    fis = server.client("fis")
    tid = fis.create_experiment_template(
        description="35 seconds: one action-minute",
        roleArn=ROLE,
        stopConditions=NONE,
        actions={"pause": {"actionId": "aws:fis:wait", "parameters": {"duration": "PT35S"}}},
    )["experimentTemplate"]["id"]
    yield server, fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"]
    server.stop()


def wait_for(fis, exp_id: str, statuses: tuple[str, ...], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        exp = fis.get_experiment(id=exp_id)["experiment"]
        if exp["state"]["status"] in statuses:
            return exp
        assert time.monotonic() < deadline, f"experiment stuck in {exp['state']}"
        time.sleep(0.1)


def test_wait_actions_run_in_start_after_order(strata_server):
    fis = strata_server.client("fis")
    wait = {"actionId": "aws:fis:wait", "parameters": {"duration": "PT2S"}}
    tid = fis.create_experiment_template(
        description="two waits",
        roleArn=ROLE,
        stopConditions=NONE,
        actions={"first": wait, "second": {**wait, "startAfter": ["first"]}},
    )["experimentTemplate"]["id"]
    started = fis.start_experiment(experimentTemplateId=tid, tags={"run": "1"})["experiment"]
    assert started["state"]["status"] == "pending"
    assert {a["state"]["status"] for a in started["actions"].values()} == {"pending"}
    seen = set()
    deadline = time.monotonic() + 60
    while True:
        exp = fis.get_experiment(id=started["id"])["experiment"]
        seen.add(
            (
                exp["state"]["status"],
                exp["actions"]["first"]["state"]["status"],
                exp["actions"]["second"]["state"]["status"],
            )
        )
        if exp["state"]["status"] in DONE:
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert exp["state"]["status"] == "completed"
    assert ("running", "running", "pending") in seen
    first, second = exp["actions"]["first"], exp["actions"]["second"]
    assert first["state"]["status"] == second["state"]["status"] == "completed"
    assert second["startTime"] >= first["endTime"]
    assert exp["endTime"] >= second["endTime"]
    listed = fis.list_experiments(experimentTemplateId=tid)["experiments"]
    assert [(e["id"], e["state"]["status"], e["tags"]) for e in listed] == [
        (exp["id"], "completed", {"run": "1"})
    ]
    assert listed[0]["experimentOptions"]["actionsMode"] == "run-all"
    preview = fis.start_experiment(experimentTemplateId=tid, experimentOptions={"actionsMode": "skip-all"})
    preview = wait_for(fis, preview["experiment"]["id"], DONE)
    assert preview["state"]["status"] == "completed"
    assert preview["experimentOptions"]["actionsMode"] == "skip-all"
    assert {a["state"]["status"] for a in preview["actions"].values()} == {"skipped"}
    with pytest.raises(ClientError) as e:
        fis.stop_experiment(id=exp["id"])
    assert e.value.response["Error"]["Code"] == "ValidationException"


def assumed_dynamodb(server, role_name: str, max_attempts: int | None) -> tuple[str, object]:
    """A role allowed DynamoDB, and a DynamoDB client signing with a session of it."""
    iam = server.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "000000000000"}, "Action": "sts:AssumeRole"}],
    }
    arn = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.attach_role_policy(RoleName=role_name, PolicyArn="arn:aws:iam::aws:policy/AmazonDynamoDBFullAccess")
    return arn, session_client(server, arn, max_attempts)


def session_client(server, role_arn: str, max_attempts: int | None):
    c = server.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="app")["Credentials"]
    retries = {"total_max_attempts": max_attempts} if max_attempts else {}
    return boto3.Session(
        aws_access_key_id=c["AccessKeyId"],
        aws_secret_access_key=c["SecretAccessKey"],
        aws_session_token=c["SessionToken"],
        region_name="us-east-1",
    ).client("dynamodb", endpoint_url=server.endpoint, config=Config(retries=retries))


def make_table(server, name: str) -> None:
    ddb = server.client("dynamodb")
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def test_throttle_on_an_assumed_role_is_absorbed_by_retries_and_stop_rolls_it_back(strata_server, unique):
    table = f"fis-{unique}"
    make_table(strata_server, table)
    role_arn, retrying = assumed_dynamodb(strata_server, f"app-{unique}", None)
    single = session_client(strata_server, role_arn, 1)
    fis = strata_server.client("fis")
    tid = fis.create_experiment_template(**throttle_template(role_arn, "PT10M", percentage="50"))[
        "experimentTemplate"
    ]["id"]
    exp = fis.start_experiment(experimentTemplateId=tid)["experiment"]
    exp = wait_for(fis, exp["id"], ("running", *DONE))
    assert exp["state"]["status"] == "running"
    wait_for_action = time.monotonic() + 60
    while (
        fis.get_experiment(id=exp["id"])["experiment"]["actions"]["throttle"]["state"]["status"] != "running"
    ):
        assert time.monotonic() < wait_for_action
        time.sleep(0.05)

    retries = []
    for i in range(4):
        r = retrying.put_item(TableName=table, Item={"k": {"S": f"r{i}"}})
        retries.append(r["ResponseMetadata"]["RetryAttempts"])
    assert max(retries) > 0, retries  # throttled, then served on a retry

    codes = []
    for _ in range(4):
        try:
            single.get_item(TableName=table, Key={"k": {"S": "r0"}})
            codes.append("ok")
        except ClientError as e:
            codes.append(e.response["Error"]["Code"])
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert codes.count("ThrottlingException") == 2 and codes.count("ok") == 2, codes
    # Operations not listed, and callers that are not the role, are untouched.
    for _ in range(4):
        single.describe_table(TableName=table)
        strata_server.client("dynamodb", config=Config(retries={"total_max_attempts": 1})).get_item(
            TableName=table, Key={"k": {"S": "r0"}}
        )

    stopping = fis.stop_experiment(id=exp["id"])["experiment"]
    assert stopping["state"]["status"] in ("stopping", "stopped")
    stopped = wait_for(fis, exp["id"], DONE)
    assert stopped["state"]["status"] == "stopped"
    assert stopped["actions"]["throttle"]["state"]["status"] == "stopped"
    for _ in range(6):  # rolled back: no call fails any more
        single.get_item(TableName=table, Key={"k": {"S": "r0"}})


@pytest.mark.parametrize("how", ["graceful", "kill -9"])
def test_restart_mid_experiment_fails_it_and_rolls_faults_back(strata_factory, unique, how):
    server = strata_factory()
    runner_role(server)
    table = f"fis-{unique}"
    make_table(server, table)
    role_arn, _ = assumed_dynamodb(server, f"app-{unique}", None)
    fis = server.client("fis")
    tid = fis.create_experiment_template(**throttle_template(role_arn, "PT10M"))["experimentTemplate"]["id"]
    exp_id = fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"]
    wait_for(fis, exp_id, ("running",))
    single = session_client(server, role_arn, 1)
    deadline = time.monotonic() + 60
    while True:  # the fault is in place (percentage 100)
        try:
            single.get_item(TableName=table, Key={"k": {"S": "x"}})
        except ClientError as e:
            assert e.response["Error"]["Code"] == "ThrottlingException"
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)

    if how == "graceful":
        server.restart()
    else:
        server.kill()
        server.start()
    fis = server.client("fis")
    exp = fis.get_experiment(id=exp_id)["experiment"]
    assert exp["state"]["status"] == "failed"
    assert "restarted" in exp["state"]["reason"]
    assert exp["actions"]["throttle"]["state"]["status"] == "stopped"
    session_client(server, role_arn, 1).get_item(TableName=table, Key={"k": {"S": "x"}})


def test_targets_found_by_tags_and_an_empty_target_fails_the_experiment(strata_server, unique):
    table = f"fis-{unique}"
    make_table(strata_server, table)
    role_arn, _ = assumed_dynamodb(strata_server, f"tagged-{unique}", None)
    strata_server.client("iam").tag_role(
        RoleName=f"tagged-{unique}", Tags=[{"Key": "chaos", "Value": unique}]
    )
    fis = strata_server.client("fis")
    body = throttle_template(role_arn, "PT10M", percentage="100", service="dynamodb", operations="GetItem")
    body["targets"]["app"] = {
        "resourceType": "aws:iam:role",
        "resourceTags": {"chaos": unique},
        "selectionMode": "COUNT(1)",
    }
    exp_id = fis.start_experiment(
        experimentTemplateId=fis.create_experiment_template(**body)["experimentTemplate"]["id"]
    )["experiment"]["id"]
    wait_for(fis, exp_id, ("running",))
    single = session_client(strata_server, role_arn, 1)
    deadline = time.monotonic() + 60
    while True:
        try:
            single.get_item(TableName=table, Key={"k": {"S": "x"}})
        except ClientError as e:
            assert e.response["Error"]["Code"] == "ThrottlingException"
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    resolved = fis.list_experiment_resolved_targets(experimentId=exp_id)["resolvedTargets"]
    assert resolved == [
        {"resourceType": "aws:iam:role", "targetName": "app", "targetInformation": {"arn": role_arn}}
    ]
    fis.stop_experiment(id=exp_id)
    assert wait_for(fis, exp_id, DONE)["state"]["status"] == "stopped"

    body["targets"]["app"]["resourceTags"] = {"chaos": "nobody-has-this"}
    exp_id = fis.start_experiment(
        experimentTemplateId=fis.create_experiment_template(**body)["experimentTemplate"]["id"]
    )["experiment"]["id"]
    failed = wait_for(fis, exp_id, DONE)
    assert failed["state"]["status"] == "failed"
    assert "no resources found for target app" in failed["state"]["reason"]
    assert failed["actions"]["throttle"]["state"]["status"] == "cancelled"

    # emptyTargetResolutionMode skip: the action on the empty target is skipped, the run completes.
    tid = failed["experimentTemplateId"]
    fis.update_experiment_template(id=tid, experimentOptions={"emptyTargetResolutionMode": "skip"})
    skipped = wait_for(fis, fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"], DONE)
    assert skipped["state"]["status"] == "completed"
    assert skipped["actions"]["throttle"]["state"]["status"] == "skipped"
    assert skipped["experimentOptions"]["emptyTargetResolutionMode"] == "skip"


def test_a_stop_condition_alarm_stops_the_experiment(strata_server, unique):
    cloudwatch = strata_server.client("cloudwatch")
    alarm = f"fis-stop-{unique}"
    cloudwatch.put_metric_alarm(
        AlarmName=alarm,
        Namespace="App",
        MetricName="Errors",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    alarm_arn = cloudwatch.describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]["AlarmArn"]
    fis = strata_server.client("fis")
    tid = fis.create_experiment_template(
        description="stop on alarm",
        roleArn=ROLE,
        stopConditions=[{"source": "aws:cloudwatch:alarm", "value": alarm_arn}],
        actions={"pause": {"actionId": "aws:fis:wait", "parameters": {"duration": "PT10M"}}},
    )["experimentTemplate"]
    assert tid["stopConditions"] == [{"source": "aws:cloudwatch:alarm", "value": alarm_arn}]
    short = fis.create_experiment_template(
        description="alarm stays OK",
        roleArn=ROLE,
        stopConditions=[{"source": "aws:cloudwatch:alarm", "value": alarm_arn}],
        actions={"pause": {"actionId": "aws:fis:wait", "parameters": {"duration": "PT1S"}}},
    )["experimentTemplate"]["id"]
    quiet = wait_for(fis, fis.start_experiment(experimentTemplateId=short)["experiment"]["id"], DONE)
    assert quiet["state"]["status"] == "completed"

    exp_id = fis.start_experiment(experimentTemplateId=tid["id"])["experiment"]["id"]
    wait_for(fis, exp_id, ("running",))
    # SetAlarmState lasts until the alarm's next evaluation (a period boundary of the shared
    # server's clock, which other tests move): set it again while the experiment runs, as an
    # alarm that keeps failing would be, so the 1-second stop-condition poll cannot miss it.
    deadline = time.monotonic() + 60
    while fis.get_experiment(id=exp_id)["experiment"]["state"]["status"] not in DONE:
        assert time.monotonic() < deadline, "the alarm did not stop the experiment"
        cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="errors")
        time.sleep(0.5)
    exp = wait_for(fis, exp_id, DONE)
    assert exp["state"]["status"] == "stopped"
    assert alarm_arn in exp["state"]["reason"]
    assert exp["actions"]["pause"]["state"]["status"] == "stopped"

    # An ALARM shorter than the watcher's poll still stops an experiment: the history tells.
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="quiet")
    exp_id = fis.start_experiment(experimentTemplateId=tid["id"])["experiment"]["id"]
    wait_for(fis, exp_id, ("running",))
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="a blip")
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="over")
    exp = wait_for(fis, exp_id, DONE)
    assert exp["state"]["status"] == "stopped"
    assert alarm_arn in exp["state"]["reason"]


def test_actions_run_with_the_experiment_roles_permissions(strata_server, unique):
    fis = strata_server.client("fis")
    weak = runner_role(
        strata_server,
        f"fis-weak-{unique}",
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "rds:*", "Resource": "*"}]},
    )
    tid = fis.create_experiment_template(**{**throttle_template(ROLE), "roleArn": weak})[
        "experimentTemplate"
    ]["id"]
    exp = wait_for(fis, fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"], DONE)
    assert exp["state"]["status"] == "failed"
    assert exp["state"]["error"]["code"] == "AuthorizationFailure"
    assert exp["actions"]["throttle"]["state"]["status"] == "failed"
    reason = exp["actions"]["throttle"]["state"]["reason"]
    assert "is not authorized to perform: fis:InjectApiThrottleError" in reason


def trusting(server, name: str, statement: dict) -> str:
    """A role allowed everything whose trust policy is the one statement given."""
    iam = server.client("iam")
    doc = json.dumps({"Version": "2012-10-17", "Statement": [{"Action": "sts:AssumeRole", **statement}]})
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=doc)["Role"]["Arn"]
    iam.attach_role_policy(RoleName=name, PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
    return arn


def test_the_experiment_role_must_trust_fis(strata_server, unique):
    """FIS assumes the role when the experiment starts: a role that does not exist, or whose trust
    policy does not let fis.amazonaws.com in (for this account's experiments), fails it."""
    fis = strata_server.client("fis")
    fis_service = {"Effect": "Allow", "Principal": {"Service": "fis.amazonaws.com"}}
    mine = {"StringEquals": {"aws:SourceAccount": "000000000000"}}
    arn_like = {"ArnLike": {"aws:SourceArn": "arn:aws:fis:us-east-1:000000000000:experiment/*"}}
    refused = {
        "missing": f"arn:aws:iam::000000000000:role/fis-none-{unique}",
        "ec2": trusting(
            strata_server,
            f"fis-ec2-{unique}",
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}},
        ),
        "account": trusting(
            strata_server, f"fis-acct-{unique}", {"Effect": "Allow", "Principal": {"AWS": "000000000000"}}
        ),
        "other": trusting(
            strata_server,
            f"fis-other-{unique}",
            {**fis_service, "Condition": {"StringEquals": {"aws:SourceAccount": "111111111111"}}},
        ),
    }
    for case, role in refused.items():
        tid = fis.create_experiment_template(**wait_template(roleArn=role))["experimentTemplate"]["id"]
        exp = wait_for(fis, fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"], DONE)
        assert exp["state"]["status"] == "failed", case
        assert exp["state"]["error"]["code"] == "AuthorizationFailure", case
        assert f"Unable to assume the role {role}" in exp["state"]["reason"], case
        assert exp["actions"]["pause"]["state"]["status"] == "cancelled", case  # nothing ran

    # AWS's recommended trust policy, conditioned on the account and the experiment ARN
    good = trusting(strata_server, f"fis-good-{unique}", {**fis_service, "Condition": {**mine, **arn_like}})
    tid = fis.create_experiment_template(**wait_template(roleArn=good))["experimentTemplate"]["id"]
    exp = wait_for(fis, fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"], DONE)
    assert exp["state"]["status"] == "completed", exp["state"]
    assert "error" not in exp["state"]


def test_action_minutes_are_metered_and_billed(billed_experiment):
    """AWS bills $0.10 per action-minute, an action's active time rounded to the nearest minute."""
    server, exp_id = billed_experiment
    fis = server.client("fis")
    assert wait_for(fis, exp_id, DONE, timeout=180)["state"]["status"] == "completed"
    deadline = time.monotonic() + 30
    while not (events := server.admin("/_strata/meter?service=fis")["events"]):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert [(e["event"], e["quantity"], e["unit"], e["dims"]) for e in events] == [
        ("ActionMinutes", 1, "action-minute", {"experiment": exp_id, "action": "pause"})
    ]
    lines = server.admin("/_strata/bill?from=2000-01-01")["services"]["fis"]["lines"]
    assert [(line["usage_type"], line["quantity"]) for line in lines] == [("ActionMinutes", 1)]
    assert lines[0]["cost"] == pytest.approx(0.10)
