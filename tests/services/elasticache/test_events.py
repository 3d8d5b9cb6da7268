"""DescribeEvents for the sources that are not deployments: users, user groups and cache subnet
groups (cache clusters', replication groups', parameter groups' and serverless caches' events are
tested beside their operations)."""

from __future__ import annotations


def messages(ec, source: str, kind: str) -> list[str]:
    found = ec.describe_events(SourceIdentifier=source, SourceType=kind)["Events"]
    assert {(e["SourceIdentifier"], e["SourceType"]) for e in found} <= {(source, kind)}
    return [e["Message"] for e in found]


def test_users_user_groups_and_subnet_groups_record_their_changes(strata_server, ec, unique: str) -> None:
    admin, app, group = f"ev-admin-{unique}", f"ev-app-{unique}", f"ev-group-{unique}"
    ec.create_user(
        UserId=admin, UserName="default", Engine="redis", AccessString="on ~* +@all", NoPasswordRequired=True
    )
    ec.create_user(
        UserId=app, UserName="app", Engine="redis", AccessString="on ~app:* +get", Passwords=["b" * 16]
    )
    ec.modify_user(UserId=app, AccessString="on ~app:* +get +set")
    ec.create_user_group(UserGroupId=group, Engine="redis", UserIds=[admin])
    ec.modify_user_group(UserGroupId=group, UserIdsToAdd=[app])
    ec.delete_user(UserId=app)  # it leaves the group too
    ec.delete_user_group(UserGroupId=group)
    ec.delete_user(UserId=admin)
    assert messages(ec, app, "user") == [f"User {app} created", f"User {app} modified", f"User {app} deleted"]
    assert messages(ec, admin, "user") == [f"User {admin} created", f"User {admin} deleted"]
    assert messages(ec, group, "user-group") == [
        f"User group {group} created",
        f"User group {group} modified",
        f"User {app} removed from user group {group}",
        f"User group {group} deleted",
    ]

    ec2 = strata_server.client("ec2")
    subnet = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"][0]
    name = f"ev-subnets-{unique}"
    ec.create_cache_subnet_group(
        CacheSubnetGroupName=name, CacheSubnetGroupDescription="events", SubnetIds=[subnet["SubnetId"]]
    )
    ec.modify_cache_subnet_group(CacheSubnetGroupName=name, CacheSubnetGroupDescription="still events")
    ec.delete_cache_subnet_group(CacheSubnetGroupName=name)
    assert messages(ec, name, "cache-subnet-group") == [
        f"Cache subnet group {name} created",
        f"Cache subnet group {name} modified",
        f"Cache subnet group {name} deleted",
    ]
