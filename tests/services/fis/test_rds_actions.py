"""FIS actions on RDS: aws:rds:reboot-db-instances reboots the target instance through the RDS
provider (a real PostgreSQL restart), and the experiment completes once the reboot is under way."""

from __future__ import annotations

import time

from tests.services.fis.test_experiments import DONE, wait_for
from tests.services.fis.test_templates import NONE, ROLE
from tests.services.rds.helpers import create_pg, wait_status


def test_reboot_db_instances_action(strata_server, unique):
    rds = strata_server.client("rds")
    ident = f"fis-{unique}"
    arn = create_pg(rds, ident)["DBInstanceArn"]
    fis = strata_server.client("fis")
    tid = fis.create_experiment_template(
        description="reboot",
        roleArn=ROLE,
        stopConditions=NONE,
        targets={"db": {"resourceType": "aws:rds:db", "resourceArns": [arn], "selectionMode": "ALL"}},
        actions={
            "reboot": {
                "actionId": "aws:rds:reboot-db-instances",
                "parameters": {"forceFailover": "false"},
                "targets": {"DBInstances": "db"},
            }
        },
    )["experimentTemplate"]["id"]
    exp = wait_for(fis, fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"], DONE)
    assert exp["state"]["status"] == "completed", exp["state"]
    assert exp["actions"]["reboot"]["state"]["status"] == "completed"
    wait_status(rds, ident)
    deadline = time.monotonic() + 60
    while True:
        events = [
            e["Message"]
            for e in rds.describe_events(SourceIdentifier=ident, SourceType="db-instance")["Events"]
        ]
        if "DB instance restarted" in events:
            break
        assert time.monotonic() < deadline, events
        time.sleep(0.2)
    rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True)
