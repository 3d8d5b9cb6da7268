"""A data dir of an earlier Strata, whose mysql and aurora-mysql parameter groups carry families
named after MariaDB (mysql10, aurora-mysql10): they read as AWS's families (mysql8.0,
aurora-mysql8.0) and are used as such. The module's own server, stopped to age its records."""

from __future__ import annotations

import sqlite3

import pytest
from botocore.exceptions import ClientError

from tests.strata_process import StrataProcess


def test_groups_of_old_family_names_keep_working(tmp_path) -> None:  # noqa: ANN001
    data = tmp_path / "data"
    proc = StrataProcess(data).start()
    try:
        rds = proc.client("rds")
        rds.create_db_parameter_group(
            DBParameterGroupName="old-my", DBParameterGroupFamily="mysql8.0", Description="d"
        )
        rds.create_db_cluster_parameter_group(
            DBClusterParameterGroupName="old-amy", DBParameterGroupFamily="aurora-mysql8.0", Description="d"
        )
        proc.stop()
        with sqlite3.connect(data / "rds" / "rds.db") as db:  # as an earlier Strata wrote them
            db.execute(
                "UPDATE documents SET body = json_set(body, '$.family', 'mysql10') WHERE kind = 'param_group'"
            )
            db.execute(
                "UPDATE documents SET body = json_set(body, '$.family', 'aurora-mysql10') "
                "WHERE kind = 'cluster_param_group'"
            )
        proc.start()
        rds = proc.client("rds")
        [group] = rds.describe_db_parameter_groups(DBParameterGroupName="old-my")["DBParameterGroups"]
        assert group["DBParameterGroupFamily"] == "mysql8.0"
        listed = rds.describe_db_cluster_parameter_groups()["DBClusterParameterGroups"]
        assert [g["DBParameterGroupFamily"] for g in listed] == ["aurora-mysql8.0"]
        rds.modify_db_parameter_group(
            DBParameterGroupName="old-my",
            Parameters=[
                {"ParameterName": "max_connections", "ParameterValue": "50", "ApplyMethod": "immediate"}
            ],
        )
        # an AWS-versioned cluster takes the old group (no instance: no engine is started)
        cluster = rds.create_db_cluster(
            DBClusterIdentifier="old-families",
            Engine="aurora-mysql",
            EngineVersion="8.0.mysql_aurora.3.05.2",
            MasterUsername="master",
            MasterUserPassword="Secret-pass-123",
            DBClusterParameterGroupName="old-amy",
        )["DBCluster"]
        assert cluster["DBClusterParameterGroup"] == "old-amy"
        # the instance group is of mysql8.0 now: refused for mariadb with AWS's error naming it
        with pytest.raises(ClientError) as e:
            rds.create_db_instance(
                DBInstanceIdentifier="old-maria",
                Engine="mariadb",
                MasterUsername="master",
                MasterUserPassword="Secret-pass-123",
                DBInstanceClass="db.t3.micro",
                AllocatedStorage=20,
                DBParameterGroupName="old-my",
            )
        assert "with DBParameterGroupFamily mysql8.0 can't be used" in e.value.response["Error"]["Message"]
        rds.delete_db_cluster(DBClusterIdentifier="old-families", SkipFinalSnapshot=True)
    finally:
        proc.stop()
