"""Option groups: the API as RDS answers it, an instance's membership, and options refused (an
option of another engine; MARIADB_AUDIT_PLUGIN, the one Strata runs, is tested with a MariaDB
instance in test_mariadb_params.py)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.services.rds.helpers import create_pg, wait_status


@pytest.fixture
def rds(strata_server):
    return strata_server.client("rds")


def code(call, **kwargs) -> str:
    with pytest.raises(ClientError) as e:
        call(**kwargs)
    return e.value.response["Error"]["Code"]


def test_option_groups_and_an_instance_in_one(rds, unique: str) -> None:
    major = rds.describe_db_engine_versions(Engine="postgres", DefaultOnly=True)["DBEngineVersions"][0][
        "EngineVersion"
    ].split(".")[0]
    name = f"OG-{unique}"
    made = rds.create_option_group(
        OptionGroupName=name,
        EngineName="postgres",
        MajorEngineVersion=major,
        OptionGroupDescription="app options",
    )["OptionGroup"]
    assert made["OptionGroupName"] == name.lower()
    assert made["OptionGroupArn"].endswith(f":og:{name.lower()}") and made["Options"] == []
    assert (
        code(
            rds.create_option_group,
            OptionGroupName=name,
            EngineName="postgres",
            MajorEngineVersion=major,
            OptionGroupDescription="again",
        )
        == "OptionGroupAlreadyExistsFault"
    )
    assert (
        code(
            rds.create_option_group,
            OptionGroupName=f"x-{unique}",
            EngineName="postgres",
            MajorEngineVersion="9",
            OptionGroupDescription="d",
        )
        == "InvalidParameterCombination"
    )
    assert code(
        rds.create_option_group,
        OptionGroupName="bad--name",
        EngineName="postgres",
        MajorEngineVersion=major,
        OptionGroupDescription="d",
    ) == ("InvalidParameterValue")
    groups = {
        g["OptionGroupName"] for g in rds.describe_option_groups(EngineName="postgres")["OptionGroupsList"]
    }
    assert {name.lower(), f"default:postgres-{major}"} <= groups
    assert rds.describe_option_group_options(EngineName="postgres")["OptionGroupOptions"] == []

    # an option Strata cannot run is refused, not recorded
    assert (
        code(
            rds.modify_option_group,
            OptionGroupName=name,
            OptionsToInclude=[{"OptionName": "MARIADB_AUDIT_PLUGIN"}],
            ApplyImmediately=True,
        )
        == "InvalidParameterCombination"
    )
    assert (
        code(rds.modify_option_group, OptionGroupName=name, OptionsToRemove=["NATIVE_NETWORK_ENCRYPTION"])
        == "InvalidParameterValue"
    )
    assert (
        code(rds.delete_option_group, OptionGroupName=f"default:postgres-{major}")
        == "InvalidOptionGroupStateFault"
    )

    copy = f"og-copy-{unique}"
    copied = rds.copy_option_group(
        SourceOptionGroupIdentifier=name, TargetOptionGroupIdentifier=copy, TargetOptionGroupDescription="c"
    )["OptionGroup"]
    assert (copied["EngineName"], copied["MajorEngineVersion"]) == ("postgres", major)
    rds.delete_option_group(OptionGroupName=copy)
    assert code(rds.describe_option_groups, OptionGroupName=copy) == "OptionGroupNotFoundFault"

    # a group of another engine is refused by the instance; its own engine's group is joined
    maria = rds.describe_db_engine_versions(Engine="mariadb", DefaultOnly=True)["DBEngineVersions"][0][
        "EngineVersion"
    ]
    maria_major = ".".join(maria.split(".")[:2])
    other = f"og-maria-{unique}"
    rds.create_option_group(
        OptionGroupName=other,
        EngineName="mariadb",
        MajorEngineVersion=maria_major,
        OptionGroupDescription="d",
    )
    ident = f"og-{unique}"
    assert (
        code(
            rds.create_db_instance,
            DBInstanceIdentifier=ident,
            Engine="postgres",
            MasterUsername="master",
            MasterUserPassword="Secret-pass-123",
            DBInstanceClass="db.t3.micro",
            AllocatedStorage=20,
            OptionGroupName=other,
        )
        == "InvalidParameterCombination"
    )
    inst = create_pg(rds, ident, OptionGroupName=name, BackupRetentionPeriod=0)
    assert inst["OptionGroupMemberships"] == [{"OptionGroupName": name.lower(), "Status": "in-sync"}]
    assert code(rds.delete_option_group, OptionGroupName=name) == "InvalidOptionGroupStateFault"
    rds.modify_db_instance(
        DBInstanceIdentifier=ident, OptionGroupName=f"default:postgres-{major}", ApplyImmediately=True
    )
    inst = wait_status(rds, ident)
    assert inst["OptionGroupMemberships"] == [
        {"OptionGroupName": f"default:postgres-{major}", "Status": "in-sync"}
    ]
    rds.delete_option_group(OptionGroupName=name)
    rds.delete_option_group(OptionGroupName=other)
    rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True)
