"""FIS aws:network:disrupt-connectivity with scope dynamodb or s3: the service's endpoint stops
answering (a request is held, then its connection dropped unanswered: the client times out and
the request never reaches the service) while other services answer on; the experiment's end
brings it back. Strata cannot tell which subnet a client is in, so every client is cut off."""

from __future__ import annotations

import boto3
from botocore.config import Config
from botocore.exceptions import ConnectionClosedError, ReadTimeoutError

from tests.services.elasticache.conftest import eventually
from tests.services.fis.test_experiments import DONE, make_table, wait_for
from tests.services.fis.test_network import disrupt_template
from tests.services.fis.test_templates import error_of


def _client(server, service: str):  # noqa: ANN001, ANN202
    return boto3.client(
        service,
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(connect_timeout=3, read_timeout=3, retries={"total_max_attempts": 1}),
    )


def test_scope_dynamodb_cuts_dynamodb_off_until_the_experiment_ends(strata_server, unique):
    fis = strata_server.client("fis")
    table = f"cut-{unique}"
    make_table(strata_server, table)
    subnet = strata_server.client("ec2").describe_subnets()["Subnets"][0]["SubnetArn"]
    code, message, _ = error_of(
        lambda: fis.create_experiment_template(**disrupt_template(subnet, scope="vpc"))
    )
    assert code == "ValidationException" and "scope vpc" in message
    code, message, _ = error_of(
        lambda: fis.create_experiment_template(**disrupt_template(subnet, scope="prefix-list"))
    )
    assert code == "ValidationException" and "prefixListIdentifier is required" in message
    ddb, s3 = _client(strata_server, "dynamodb"), _client(strata_server, "s3")
    ddb.put_item(TableName=table, Item={"k": {"S": "before"}})

    tid = fis.create_experiment_template(**disrupt_template(subnet, scope="dynamodb"))["experimentTemplate"][
        "id"
    ]
    exp_id = fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"]
    try:
        lost = []

        def unanswered() -> bool:
            lost.append(f"during-{len(lost)}")
            try:
                ddb.put_item(TableName=table, Item={"k": {"S": lost[-1]}})
            except (ReadTimeoutError, ConnectionClosedError):
                return True
            return False

        eventually(unanswered, what="DynamoDB cut off")
        s3.list_buckets()  # another service answers on
        assert fis.get_experiment(id=exp_id)["experiment"]["state"]["status"] == "running"
    finally:
        fis.stop_experiment(id=exp_id)
    assert wait_for(fis, exp_id, DONE)["state"]["status"] == "stopped"
    eventually(lambda: ddb.get_item(TableName=table, Key={"k": {"S": "before"}})["Item"], what="answering")
    # the request that went unanswered never reached DynamoDB
    assert "Item" not in ddb.get_item(TableName=table, Key={"k": {"S": lost[-1]}}, ConsistentRead=True)
