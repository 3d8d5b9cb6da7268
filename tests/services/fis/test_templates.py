"""FIS experiment templates: create, get, list, update, delete, tags, and the validation errors
for bad targets, actions, parameters and stop conditions; the action catalog."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

ROLE = "arn:aws:iam::000000000000:role/fis-runner"
NONE = [{"source": "none"}]


def wait_template(**extra) -> dict:
    return {
        "description": "just wait",
        "roleArn": ROLE,
        "stopConditions": NONE,
        "actions": {"pause": {"actionId": "aws:fis:wait", "parameters": {"duration": "PT1S"}}},
        **extra,
    }


def throttle_template(role_arn: str, duration: str = "PT1M", **params) -> dict:
    return {
        "description": "throttle dynamodb",
        "roleArn": ROLE,
        "stopConditions": NONE,
        "targets": {
            "app": {"resourceType": "aws:iam:role", "resourceArns": [role_arn], "selectionMode": "ALL"}
        },
        "actions": {
            "throttle": {
                "actionId": "aws:fis:inject-api-throttle-error",
                "parameters": {
                    "service": "dynamodb",
                    "operations": "PutItem,GetItem",
                    "percentage": "100",
                    "duration": duration,
                    **params,
                },
                "targets": {"Roles": "app"},
            }
        },
    }


def error_of(call) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as e:
        call()
    r = e.value.response
    return r["Error"]["Code"], r["Error"]["Message"], r["ResponseMetadata"]["HTTPStatusCode"]


def test_template_crud_and_tags(strata_server):
    fis = strata_server.client("fis")
    created = fis.create_experiment_template(**throttle_template(ROLE), tags={"team": "red"})[
        "experimentTemplate"
    ]
    tid = created["id"]
    assert tid.startswith("EXT")
    assert created["arn"] == f"arn:aws:fis:us-east-1:000000000000:experiment-template/{tid}"
    assert created["targets"]["app"]["resourceArns"] == [ROLE]
    assert created["actions"]["throttle"]["parameters"]["percentage"] == "100"
    got = fis.get_experiment_template(id=tid)["experimentTemplate"]
    assert got["description"] == "throttle dynamodb" and got["tags"] == {"team": "red"}
    assert tid in [t["id"] for t in fis.list_experiment_templates()["experimentTemplates"]]

    updated = fis.update_experiment_template(
        id=tid,
        description="renamed",
        **{k: v for k, v in wait_template().items() if k in ("actions",)},
        targets={},
    )["experimentTemplate"]
    assert updated["description"] == "renamed"
    assert list(updated["actions"]) == ["pause"] and updated["targets"] == {}
    assert updated["lastUpdateTime"] >= updated["creationTime"]

    fis.tag_resource(resourceArn=created["arn"], tags={"env": "test"})
    fis.untag_resource(resourceArn=created["arn"], tagKeys=["team"])
    assert fis.list_tags_for_resource(resourceArn=created["arn"])["tags"] == {"env": "test"}

    fis.delete_experiment_template(id=tid)
    code, _, status = error_of(lambda: fis.get_experiment_template(id=tid))
    assert (code, status) == ("ResourceNotFoundException", 404)


def test_client_token_makes_create_idempotent(strata_server, unique):
    fis = strata_server.client("fis")
    a = fis.create_experiment_template(clientToken=unique, **wait_template())["experimentTemplate"]
    b = fis.create_experiment_template(clientToken=unique, **wait_template())["experimentTemplate"]
    assert a["id"] == b["id"]


@pytest.mark.parametrize(
    "change, needle",
    [
        (
            {
                "stopConditions": [
                    {
                        "source": "aws:cloudwatch:alarm",
                        "value": "arn:aws:cloudwatch:us-east-1:000000000000:alarm:no-such-alarm",
                    }
                ]
            },
            "does not exist",
        ),
        ({"stopConditions": [{"source": "bogus"}]}, "stop condition source"),
        ({"actions": {"x": {"actionId": "aws:ec2:stop-instances"}}}, "aws:ec2:stop-instances"),
        (
            {"actions": {"x": {"actionId": "aws:fis:wait", "parameters": {}}}},
            "missing required parameter duration",
        ),
        (
            {"actions": {"x": {"actionId": "aws:fis:wait", "parameters": {"duration": "1 minute"}}}},
            "Invalid duration",
        ),
        (
            {
                "actions": {
                    "x": {"actionId": "aws:fis:wait", "parameters": {"duration": "PT1S", "color": "red"}}
                }
            },
            "parameter color",
        ),
        (
            {
                "actions": {
                    "x": {"actionId": "aws:fis:wait", "parameters": {"duration": "PT1S"}, "startAfter": ["y"]}
                }
            },
            "unknown action y",
        ),
        (
            {
                "actions": {
                    "x": {
                        "actionId": "aws:fis:wait",
                        "parameters": {"duration": "PT1S"},
                        "startAfter": ["y"],
                    },
                    "y": {
                        "actionId": "aws:fis:wait",
                        "parameters": {"duration": "PT1S"},
                        "startAfter": ["x"],
                    },
                }
            },
            "cycle",
        ),
        ({"roleArn": "arn:aws:s3:::not-a-role-at-all"}, "Invalid role ARN"),
    ],
)
def test_template_validation_errors(strata_server, change, needle):
    fis = strata_server.client("fis")
    code, message, status = error_of(lambda: fis.create_experiment_template(**{**wait_template(), **change}))
    assert (code, status) == ("ValidationException", 400)
    assert needle in message


@pytest.mark.parametrize(
    "target_change, params, needle",
    [
        ({"selectionMode": "SOME"}, {}, "Invalid selection mode"),
        ({"selectionMode": "PERCENT(150)"}, {}, "PERCENT"),
        ({"resourceTags": {"a": "b"}}, {}, "not both"),
        ({"resourceType": "aws:ec2:instance"}, {}, "aws:ec2:instance"),
        ({}, {"percentage": "0"}, "percentage"),
        ({}, {"service": "lambda"}, "service lambda"),
    ],
)
def test_target_and_parameter_errors(strata_server, target_change, params, needle):
    fis = strata_server.client("fis")
    body = throttle_template(ROLE, **params)
    body["targets"]["app"].update(target_change)
    code, message, _ = error_of(lambda: fis.create_experiment_template(**body))
    assert code == "ValidationException"
    assert needle in message


def test_count_selection_and_tag_targets_are_accepted(strata_server):
    fis = strata_server.client("fis")
    body = throttle_template(ROLE)
    body["targets"]["app"] = {
        "resourceType": "aws:iam:role",
        "resourceTags": {"team": "red"},
        "selectionMode": "COUNT(1)",
    }
    t = fis.create_experiment_template(**body)["experimentTemplate"]
    assert t["targets"]["app"]["selectionMode"] == "COUNT(1)"


def test_experiment_options(strata_server):
    fis = strata_server.client("fis")
    t = fis.create_experiment_template(**wait_template())["experimentTemplate"]
    assert t["experimentOptions"] == {
        "accountTargeting": "single-account",
        "emptyTargetResolutionMode": "fail",
    }
    code, message, _ = error_of(
        lambda: fis.create_experiment_template(
            **wait_template(), experimentOptions={"accountTargeting": "multi-account"}
        )
    )
    assert code == "ValidationException" and "multi-account" in message
    code, message, _ = error_of(
        lambda: fis.create_experiment_template(**wait_template(), logConfiguration={"logSchemaVersion": 2})
    )
    assert code == "ValidationException" and "logConfiguration" in message


def test_action_catalog(strata_server):
    fis = strata_server.client("fis")
    ids = {a["id"] for a in fis.list_actions()["actions"]}
    assert {"aws:fis:wait", "aws:fis:inject-api-throttle-error", "aws:rds:reboot-db-instances"} <= ids
    assert "aws:ec2:stop-instances" not in ids  # only what Strata really performs
    action = fis.get_action(id="aws:fis:inject-api-internal-error")["action"]
    assert action["targets"] == {"Roles": {"resourceType": "aws:iam:role"}}
    assert action["parameters"]["percentage"]["required"] is True
    assert error_of(lambda: fis.get_action(id="aws:ec2:stop-instances"))[0] == "ResourceNotFoundException"
    types = {t["resourceType"] for t in fis.list_target_resource_types()["targetResourceTypes"]}
    assert types == {
        "aws:iam:role",
        "aws:rds:db",
        "aws:rds:cluster",
        "aws:elasticache:replicationgroup",
        "aws:ec2:ebs-volume",
        "aws:ec2:subnet",
        "aws:dynamodb:global-table",
        "aws:elasticfilesystem:file-system",  # Strata's own, for strata:efs:disk-full
    }
    for action_id, key, rtype in [
        ("strata:rds:disk-full", "DBInstances", "aws:rds:db"),
        ("strata:efs:disk-full", "FileSystems", "aws:elasticfilesystem:file-system"),
    ]:
        action = fis.get_action(id=action_id)["action"]
        assert action["targets"] == {key: {"resourceType": rtype}}
        assert action["parameters"]["duration"]["required"] is True
    zone = fis.get_target_resource_type(resourceType="aws:elasticache:replicationgroup")
    assert zone["targetResourceType"]["parameters"]["availabilityZoneIdentifier"]["required"] is True


def test_unknown_ids_are_not_found(strata_server):
    fis = strata_server.client("fis")
    for call in (
        lambda: fis.start_experiment(experimentTemplateId="EXTnosuchtemplate"),
        lambda: fis.get_experiment(id="EXPnosuchexperiment"),
        lambda: fis.stop_experiment(id="EXPnosuchexperiment"),
        lambda: fis.update_experiment_template(id="EXTnosuchtemplate", description="x"),
        lambda: fis.delete_experiment_template(id="EXTnosuchtemplate"),
        lambda: fis.list_tags_for_resource(
            resourceArn="arn:aws:fis:us-east-1:000000000000:experiment/EXPnope"
        ),
    ):
        code, _, status = error_of(call)
        assert (code, status) == ("ResourceNotFoundException", 404)
