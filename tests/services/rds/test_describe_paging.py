"""RDS Describe* honour MaxRecords/Marker and the filters each documents; other filter names and
out-of-range page sizes are refused (InvalidParameterValue) instead of being ignored."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError


def code_of(call: Any, **kw: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as e:
        call(**kw)
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


def test_pages_follow_max_records_and_marker(strata_server: Any, unique: str) -> None:
    rds = strata_server.client("rds")
    names = [f"pg-{unique}-{i:02d}" for i in range(25)]
    for name in names:
        rds.create_db_parameter_group(
            DBParameterGroupName=name, DBParameterGroupFamily="postgres18", Description="d"
        )
    try:
        seen: list[str] = []
        marker = ""
        pages = 0
        while True:
            resp = rds.describe_db_parameter_groups(MaxRecords=20, **({"Marker": marker} if marker else {}))
            assert len(resp["DBParameterGroups"]) <= 20
            seen += [g["DBParameterGroupName"] for g in resp["DBParameterGroups"]]
            pages += 1
            marker = resp.get("Marker", "")
            if not marker:
                break
        assert pages >= 2 and set(names) <= set(seen) and len(seen) == len(set(seen))
        paginated = rds.get_paginator("describe_db_parameter_groups").paginate(
            PaginationConfig={"PageSize": 20}
        )
        assert set(names) <= {g["DBParameterGroupName"] for p in paginated for g in p["DBParameterGroups"]}
    finally:
        for name in names:
            rds.delete_db_parameter_group(DBParameterGroupName=name)


@pytest.mark.parametrize("size", [0, 19, 101])
def test_max_records_outside_20_to_100_is_refused(strata_server: Any, size: int) -> None:
    rds = strata_server.client("rds")
    code, message = code_of(rds.describe_db_instances, MaxRecords=size)
    assert code == "InvalidParameterValue" and "MaxRecords" in message
    assert code_of(rds.describe_db_snapshots, MaxRecords=size)[0] == "InvalidParameterValue"


def test_documented_filters_filter_and_others_are_refused(strata_server: Any) -> None:
    rds = strata_server.client("rds")
    everything = rds.describe_db_engine_versions()["DBEngineVersions"]
    only = rds.describe_db_engine_versions(Filters=[{"Name": "engine", "Values": ["mariadb"]}])[
        "DBEngineVersions"
    ]
    assert only and {v["Engine"] for v in only} == {"mariadb"} and len(only) < len(everything)
    for call in (rds.describe_db_instances, rds.describe_db_clusters, rds.describe_db_snapshots):
        code, message = code_of(call, Filters=[{"Name": "no-such-filter", "Values": ["x"]}])
        assert (code, message) == ("InvalidParameterValue", "Unrecognized filter name: no-such-filter")
    missing = rds.describe_db_snapshots(Filters=[{"Name": "engine", "Values": ["no-such-engine"]}])
    assert missing["DBSnapshots"] == []
