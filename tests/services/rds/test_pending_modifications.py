"""ModifyDBInstance honours ApplyImmediately: without it (AWS's default) the instance class, storage
and option group wait in PendingModifiedValues for the maintenance window on the simulated clock,
through a restart; with it they apply at once, and so do the ones held before."""

from __future__ import annotations

import datetime as dt

from botocore.exceptions import ClientError

from tests.services.rds.helpers import applied_after, create_pg, maintenance, wait_status


def described(rds, ident: str) -> dict:  # noqa: ANN001
    return rds.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]


def test_held_modifications_wait_for_the_maintenance_window(strata_factory) -> None:
    server = strata_factory()
    rds = server.client("rds")
    now = dt.datetime.fromisoformat(server.admin("/_strata/clock")["now"])
    # a window opening between one and three days from now (its hour, two days on)
    opens = now + dt.timedelta(days=2)
    day, hour = opens.strftime("%a").lower(), opens.hour
    window = f"{day}:{hour:02d}:00-{day}:{hour:02d}:30"
    backup = f"{(hour + 12) % 24:02d}:00-{(hour + 12) % 24:02d}:30"
    major = rds.describe_db_engine_versions(Engine="postgres", DefaultOnly=True)["DBEngineVersions"][0][
        "EngineVersion"
    ].split(".")[0]
    rds.create_option_group(
        OptionGroupName="og-held", EngineName="postgres", MajorEngineVersion=major, OptionGroupDescription="d"
    )
    create_pg(
        rds, "held", BackupRetentionPeriod=0, PreferredMaintenanceWindow=window, PreferredBackupWindow=backup
    )

    # Without ApplyImmediately: held, the instance unchanged and available.
    out = rds.modify_db_instance(
        DBInstanceIdentifier="held",
        DBInstanceClass="db.t3.small",
        AllocatedStorage=30,
        OptionGroupName="og-held",
    )["DBInstance"]
    inst = described(rds, "held")
    for shown in (out, inst):
        assert shown["DBInstanceClass"] == "db.t3.micro" and shown["AllocatedStorage"] == 20
        assert shown["PendingModifiedValues"] == {"DBInstanceClass": "db.t3.small", "AllocatedStorage": 30}
        assert shown["OptionGroupMemberships"] == [
            {"OptionGroupName": "og-held", "Status": "pending-maintenance-apply"},
            {"OptionGroupName": f"default:postgres-{major}", "Status": "pending-maintenance-removal"},
        ]
    assert inst["DBInstanceStatus"] == "available"
    try:  # the group the instance is about to join is in use
        rds.delete_option_group(OptionGroupName="og-held")
        raise AssertionError("an option group an instance is joining was deleted")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "InvalidOptionGroupStateFault"
    # a second held change adds to the first; asking for what runs cancels a held change
    rds.modify_db_instance(DBInstanceIdentifier="held", StorageType="gp3")
    rds.modify_db_instance(DBInstanceIdentifier="held", AllocatedStorage=20)
    assert described(rds, "held")["PendingModifiedValues"] == {
        "DBInstanceClass": "db.t3.small",
        "StorageType": "gp3",
    }

    # A day on, the window has not opened; a restart keeps what is held.
    assert not maintenance(server.advance_clock("1d")).get("applied")
    server.restart()
    rds = server.client("rds")
    inst = wait_status(rds, "held")
    assert inst["DBInstanceClass"] == "db.t3.micro"
    assert inst["PendingModifiedValues"] == {"DBInstanceClass": "db.t3.small", "StorageType": "gp3"}

    # Past the window's opening: applied, nothing pending.
    assert applied_after(server, "2d") == 1
    inst = described(rds, "held")
    assert (inst["DBInstanceClass"], inst["StorageType"], inst["AllocatedStorage"]) == (
        "db.t3.small",
        "gp3",
        20,
    )
    assert inst["PendingModifiedValues"] == {}
    assert inst["OptionGroupMemberships"] == [{"OptionGroupName": "og-held", "Status": "in-sync"}]
    assert not maintenance(server.advance_clock("1s")).get("applied")  # once

    # ApplyImmediately: at once, together with what was held before.
    rds.modify_db_instance(DBInstanceIdentifier="held", DBInstanceClass="db.t3.large")
    assert described(rds, "held")["DBInstanceClass"] == "db.t3.small"
    out = rds.modify_db_instance(DBInstanceIdentifier="held", AllocatedStorage=40, ApplyImmediately=True)
    for shown in (out["DBInstance"], described(rds, "held")):
        assert (shown["DBInstanceClass"], shown["AllocatedStorage"]) == ("db.t3.large", 40)
        assert shown["PendingModifiedValues"] == {}
    # Settings AWS applies at once whatever ApplyImmediately says are not held.
    rds.modify_db_instance(DBInstanceIdentifier="held", DeletionProtection=True, BackupRetentionPeriod=0)
    inst = described(rds, "held")
    assert inst["DeletionProtection"] is True and inst["PendingModifiedValues"] == {}
    rds.modify_db_instance(DBInstanceIdentifier="held", DeletionProtection=False)
    rds.delete_db_instance(DBInstanceIdentifier="held", SkipFinalSnapshot=True)
