"""FIS aws:dynamodb:global-table-pause-replication on a global table with replicas in two regions:
while the action runs, writes in either region stay there (both directions are paused for the
targeted replica); when the experiment is stopped (the pause is lifted however the action ends),
every write made meanwhile reaches the other region. A target that is no global table fails the
experiment."""

from __future__ import annotations

import time

from tests.services.dynamodb.test_global_tables import EAST, NEW_AND_OLD, WEST, get, poll
from tests.services.fis.conftest import runner_role
from tests.services.fis.test_experiments import DONE, wait_for
from tests.services.fis.test_templates import NONE, ROLE

QUIET = 1.0  # seconds replication would need far less than (it looks every 0.05 s)


def pause_template(arn: str, duration: str = "PT5M") -> dict:
    return {
        "description": "pause replication",
        "roleArn": ROLE,
        "stopConditions": NONE,
        "targets": {
            "Tables": {
                "resourceType": "aws:dynamodb:global-table",
                "resourceArns": [arn],
                "selectionMode": "ALL",
            }
        },
        "actions": {
            "pause": {
                "actionId": "aws:dynamodb:global-table-pause-replication",
                "parameters": {"duration": duration},
                "targets": {"Tables": "Tables"},
            }
        },
    }


def _table(ddb, name: str) -> str:  # noqa: ANN001
    return ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification=NEW_AND_OLD,
    )["TableDescription"]["TableArn"]


def _put(ddb, name: str, key: str) -> None:  # noqa: ANN001
    ddb.put_item(TableName=name, Item={"pk": {"S": key}})


def test_pause_replication_holds_writes_and_delivers_them_after(strata_factory, unique):
    # replicas are ACTIVE as soon as their copy is made: no clock to move
    server = strata_factory(extra_env={"STRATA_LIMIT_DYNAMODB_REPLICA_CREATE_SECONDS": "0"})
    runner_role(server)
    fis = server.client("fis")
    east, west = server.client("dynamodb", region=EAST), server.client("dynamodb", region=WEST)
    name = f"gp-{unique}"
    arn = _table(east, name)

    # An ordinary table is no global table: the action fails, saying why.
    plain = _table(east, f"plain-{unique}")
    tid = fis.create_experiment_template(**pause_template(plain))["experimentTemplate"]["id"]
    exp = wait_for(fis, fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"], DONE)
    assert exp["state"]["status"] == "failed"
    assert "not a global table" in exp["actions"]["pause"]["state"]["reason"]

    east.update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": WEST}}])
    poll(lambda: west.describe_table(TableName=name)["Table"]["TableStatus"] == "ACTIVE")
    _put(east, name, "before")
    poll(lambda: get(west, name, "before"))

    # Stopped by StopExperiment: the pause ends with it.
    tid = fis.create_experiment_template(**pause_template(arn))["experimentTemplate"]["id"]
    exp_id = fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"]
    poll(
        lambda: (
            fis.get_experiment(id=exp_id)["experiment"]["actions"]["pause"]["state"]["status"] == "running"
        )
    )
    for i in range(20):
        _put(east, name, f"east-{i}")
        _put(west, name, f"west-{i}")
    time.sleep(QUIET)
    assert get(west, name, "east-0") is None and get(west, name, "east-19") is None
    assert get(east, name, "west-0") is None and get(east, name, "west-19") is None
    assert fis.get_experiment(id=exp_id)["experiment"]["state"]["status"] == "running"
    fis.stop_experiment(id=exp_id)
    assert wait_for(fis, exp_id, DONE)["state"]["status"] == "stopped"
    poll(lambda: all(get(west, name, f"east-{i}") for i in range(20)))
    poll(lambda: all(get(east, name, f"west-{i}") for i in range(20)))
