"""DescribeDBLogFiles / DownloadDBLogFilePortion read the engine's real log; pending maintenance is
AWS's empty answer with AWS's checks."""

from __future__ import annotations

import re

import pytest
from botocore.exceptions import ClientError

from tests.services.rds.helpers import create_pg, eventually, pg_connect


def _error(call, **kw) -> tuple[str, int]:  # noqa: ANN001, ANN003
    with pytest.raises(ClientError) as info:
        call(**kw)
    err = info.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def test_engine_log_files_and_portions(strata_server, unique: str) -> None:
    rds = strata_server.client("rds")
    group = f"logs-{unique}"
    rds.create_db_parameter_group(
        DBParameterGroupName=group, DBParameterGroupFamily="postgres18", Description="d"
    )
    ident = f"logs-{unique}"
    inst = create_pg(rds, ident, BackupRetentionPeriod=0, DBParameterGroupName=group)

    files = rds.describe_db_log_files(DBInstanceIdentifier=ident)["DescribeDBLogFiles"]
    # the hour being written, named as RDS names PostgreSQL's hourly files
    # (two when an hour began since the instance started)
    names = [f["LogFileName"] for f in files]
    assert 1 <= len(names) <= 2 and names == sorted(names)
    assert all(re.fullmatch(r"error/postgresql\.log\.\d{4}-\d\d-\d\d-\d\d", n) for n in names)
    current = names[-1]
    assert files[0]["Size"] > 0 and files[0]["LastWritten"] > 0
    assert (
        rds.describe_db_log_files(DBInstanceIdentifier=ident, FilenameContains="slowquery")[
            "DescribeDBLogFiles"
        ]
        == []
    )
    assert rds.describe_db_log_files(DBInstanceIdentifier=ident, FileSize=10**12)["DescribeDBLogFiles"] == []
    assert _error(rds.describe_db_log_files, DBInstanceIdentifier=f"nope-{unique}") == (
        "DBInstanceNotFound",
        404,
    )

    # what the parameter group asks the engine to log shows up in the log
    # RDS's retention parameter: checked against its range, accepted beside the engine's own
    too_short = {
        "ParameterName": "rds.log_retention_period",
        "ParameterValue": "60",
        "ApplyMethod": "immediate",
    }
    assert _error(rds.modify_db_parameter_group, DBParameterGroupName=group, Parameters=[too_short]) == (
        "InvalidParameterValue",
        400,
    )
    rds.modify_db_parameter_group(
        DBParameterGroupName=group,
        Parameters=[
            {"ParameterName": "log_statement", "ParameterValue": "all", "ApplyMethod": "immediate"},
            {
                "ParameterName": "rds.log_retention_period",
                "ParameterValue": "1440",
                "ApplyMethod": "immediate",
            },
        ],
    )
    needle = f"needle_{unique.replace('-', '_')}"

    def logged() -> bool:
        nonlocal current  # the newest file: an hour may begin while the test runs
        with pg_connect(inst) as conn:
            conn.execute(f"SELECT 1 AS {needle}")
        current = rds.describe_db_log_files(DBInstanceIdentifier=ident)["DescribeDBLogFiles"][-1][
            "LogFileName"
        ]
        tail = rds.download_db_log_file_portion(DBInstanceIdentifier=ident, LogFileName=current)
        assert tail["AdditionalDataPending"] is False
        return needle in tail["LogFileData"]

    assert eventually(logged, 30, interval=0.5)
    newest = rds.download_db_log_file_portion(
        DBInstanceIdentifier=ident, LogFileName=current, NumberOfLines=1
    )["LogFileData"]
    assert newest.count("\n") == 1

    # Marker "0": the file from its start, two lines at a time, until AdditionalDataPending is false
    pages, marker = [], "0"
    while True:
        part = rds.download_db_log_file_portion(
            DBInstanceIdentifier=ident, LogFileName=current, Marker=marker, NumberOfLines=2
        )
        assert part["LogFileData"].count("\n") <= 2
        pages.append(part["LogFileData"])
        marker = part["Marker"]
        if not part["AdditionalDataPending"]:
            break
        assert len(pages) < 5000
    assert len(pages) > 1 and needle in "".join(pages)
    # the paginator (Marker/AdditionalDataPending/NumberOfLines) reads the same file from the start
    paged = rds.get_paginator("download_db_log_file_portion").paginate(
        DBInstanceIdentifier=ident,
        LogFileName=current,
        PaginationConfig={"StartingToken": "0", "PageSize": 50},
    )
    assert "".join(pages) in "".join(p["LogFileData"] for p in paged)

    assert _error(
        rds.download_db_log_file_portion,
        DBInstanceIdentifier=ident,
        LogFileName="error/postgresql.log.2020-01-01-00",
    ) == ("DBLogFileNotFoundFault", 404)
    assert (
        _error(
            rds.download_db_log_file_portion,
            DBInstanceIdentifier=ident,
            LogFileName=current,
            Marker="x:y",
        )[0]
        == "InvalidParameterValue"
    )

    # no maintenance is ever pending; AWS's checks still apply
    assert rds.describe_pending_maintenance_actions()["PendingMaintenanceActions"] == []
    assert (
        rds.describe_pending_maintenance_actions(ResourceIdentifier=inst["DBInstanceArn"])[
            "PendingMaintenanceActions"
        ]
        == []
    )
    assert (
        rds.describe_pending_maintenance_actions(Filters=[{"Name": "db-instance-id", "Values": [ident]}])[
            "PendingMaintenanceActions"
        ]
        == []
    )
    assert _error(
        rds.describe_pending_maintenance_actions, ResourceIdentifier=inst["DBInstanceArn"] + "-gone"
    ) == ("ResourceNotFoundFault", 404)
    assert _error(rds.describe_pending_maintenance_actions, Filters=[{"Name": "engine", "Values": ["x"]}])[
        0
    ] == ("InvalidParameterValue")
    rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True)
    rds.get_waiter("db_instance_deleted").wait(
        DBInstanceIdentifier=ident, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    rds.delete_db_parameter_group(DBParameterGroupName=group)
