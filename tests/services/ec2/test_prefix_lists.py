"""Customer-managed prefix lists through boto3: create, describe (ids, filters), versioned entries
(an older version readable, a stale CurrentVersion refused), AWS's errors, a security group rule
that references one refused, delete."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError


def _code(fn, **kw) -> str:  # noqa: ANN001
    with pytest.raises(ClientError) as e:
        fn(**kw)
    return e.value.response["Error"]["Code"]


def test_prefix_list_lifecycle(strata_server, unique):
    ec2 = strata_server.client("ec2")
    request = {
        "PrefixListName": f"office-{unique}",
        "AddressFamily": "IPv4",
        "MaxEntries": 3,
        "Entries": [{"Cidr": "10.1.0.0/16", "Description": "hq"}, {"Cidr": "192.168.7.0/24"}],
        "TagSpecifications": [{"ResourceType": "prefix-list", "Tags": [{"Key": "team", "Value": unique}]}],
        "ClientToken": unique,
    }
    made = ec2.create_managed_prefix_list(**request)["PrefixList"]
    pl = made["PrefixListId"]
    assert ec2.create_managed_prefix_list(**request)["PrefixList"]["PrefixListId"] == pl  # a retry
    assert pl.startswith("pl-") and made["Version"] == 1 and made["State"] == "create-complete"
    assert made["PrefixListArn"] == f"arn:aws:ec2:us-east-1:000000000000:prefix-list/{pl}"
    assert made["Tags"] == [{"Key": "team", "Value": unique}]
    listed = ec2.describe_managed_prefix_lists(
        Filters=[{"Name": "prefix-list-name", "Values": [f"office-{unique}"]}]
    )["PrefixLists"]
    assert [p["PrefixListId"] for p in listed] == [pl]
    assert ec2.describe_managed_prefix_lists(PrefixListIds=[pl])["PrefixLists"][0]["MaxEntries"] == 3

    def entries(**kw) -> list:  # noqa: ANN003
        return ec2.get_managed_prefix_list_entries(PrefixListId=pl, **kw)["Entries"]

    assert entries() == [{"Cidr": "10.1.0.0/16", "Description": "hq"}, {"Cidr": "192.168.7.0/24"}]

    changed = ec2.modify_managed_prefix_list(
        PrefixListId=pl,
        CurrentVersion=1,
        AddEntries=[{"Cidr": "127.0.0.0/8"}],
        RemoveEntries=[{"Cidr": "192.168.7.0/24"}],
    )["PrefixList"]
    assert changed["Version"] == 2 and changed["State"] == "modify-complete"
    assert [e["Cidr"] for e in entries()] == ["10.1.0.0/16", "127.0.0.0/8"]
    assert [e["Cidr"] for e in entries(TargetVersion=1)] == ["10.1.0.0/16", "192.168.7.0/24"]

    modify = ec2.modify_managed_prefix_list
    assert _code(modify, PrefixListId=pl, CurrentVersion=1, AddEntries=[{"Cidr": "10.9.0.0/16"}]) == (
        "PrefixListVersionMismatch"
    )
    assert _code(modify, PrefixListId=pl, AddEntries=[{"Cidr": "10.9.0.0/16"}], MaxEntries=5) == (
        "InvalidParameterCombination"
    )
    assert _code(modify, PrefixListId=pl, AddEntries=[{"Cidr": "10.2.0.0/16"}, {"Cidr": "10.3.0.0/16"}]) == (
        "InvalidParameterValue"  # four entries, three at most
    )
    assert (
        _code(modify, PrefixListId=pl, RemoveEntries=[{"Cidr": "10.8.0.0/16"}])
        == "InvalidPrefixListModification"
    )
    assert _code(modify, PrefixListId=pl, MaxEntries=1) == "InvalidParameterValue"  # two entries
    create = ec2.create_managed_prefix_list
    assert _code(create, PrefixListName="com.amazonaws.x", AddressFamily="IPv4", MaxEntries=1) == (
        "InvalidParameterValue"
    )
    assert _code(
        create, PrefixListName="x", AddressFamily="IPv4", MaxEntries=1, Entries=[{"Cidr": "10.0.0.1/8"}]
    ) == ("InvalidParameterValue")
    assert _code(
        create, PrefixListName="x", AddressFamily="IPv6", MaxEntries=1, Entries=[{"Cidr": "10.0.0.0/8"}]
    ) == ("InvalidParameterValue")

    group = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"]
    rule = {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432}
    with pytest.raises(ClientError) as e:  # exists, but Strata does not enforce such rules
        ec2.authorize_security_group_ingress(
            GroupId=group, IpPermissions=[{**rule, "PrefixListIds": [{"PrefixListId": pl}]}]
        )
    assert e.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert "not supported" in e.value.response["Error"]["Message"]

    assert ec2.delete_managed_prefix_list(PrefixListId=pl)["PrefixList"]["State"] == "delete-complete"
    assert _code(ec2.get_managed_prefix_list_entries, PrefixListId=pl) == "InvalidPrefixListID.NotFound"
    assert _code(ec2.describe_managed_prefix_lists, PrefixListIds=[pl]) == "InvalidPrefixListID.NotFound"
