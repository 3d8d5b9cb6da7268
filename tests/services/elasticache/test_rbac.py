"""ElastiCache RBAC: users and user groups whose access strings are the engine's own ACLs.

A user with `on ~app:* +get` reads app keys and nothing else, through redis-py logging in with its
user name and password over TLS (RBAC requires in-transit encryption, as on AWS); changes to a
user reach the running nodes at once, and the ACLs survive a restart of Strata.
"""

from __future__ import annotations

import pytest
import redis
from botocore.exceptions import ClientError

from tests.services.elasticache.conftest import eventually, group

ADMIN_PW = "default-password-0123456789"
APP_PW = "app-password-0123456789"


def _code(exc: pytest.ExceptionInfo) -> str:
    return exc.value.response["Error"]["Code"]


def _connect(ep: dict, ca: str, user: str | None = None, password: str | None = None) -> redis.Redis:
    return redis.Redis(
        ep["Address"],
        ep["Port"],
        username=user,
        password=password,
        ssl=True,
        ssl_ca_certs=ca,
        decode_responses=True,
        socket_timeout=10,
    )


def test_access_strings_are_enforced_as_redis_acls(strata_factory, unique):
    server = strata_factory()
    ec = server.client("elasticache")
    ca = str(server.data_dir / "tls" / "ca.pem")
    ec.create_user(
        UserId="admin", UserName="default", Engine="redis", AccessString="on ~* +@all", Passwords=[ADMIN_PW]
    )
    made = ec.create_user(
        UserId="app", UserName="app", Engine="redis", AccessString="on ~app:* +get", Passwords=[APP_PW]
    )
    assert made["ARN"] == "arn:aws:elasticache:us-east-1:000000000000:user:app"
    assert made["Authentication"] == {"Type": "password", "PasswordCount": 1}
    with pytest.raises(ClientError) as e:
        ec.create_user(
            UserId="bad", UserName="bad", Engine="redis", AccessString="on +nosuch", NoPasswordRequired=True
        )
    assert _code(e) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        ec.create_user_group(UserGroupId="no-default", Engine="redis", UserIds=["app"])
    assert _code(e) == "DefaultUserRequired"
    ec.create_user_group(UserGroupId="apps", Engine="redis", UserIds=["admin", "app"])
    with pytest.raises(ClientError) as e:  # RBAC requires encryption in transit
        ec.create_replication_group(
            ReplicationGroupId="plain", ReplicationGroupDescription="x", Engine="redis", UserGroupIds=["apps"]
        )
    assert _code(e) == "InvalidParameterCombination"
    gid = f"rbac-{unique}"
    ec.create_replication_group(
        ReplicationGroupId=gid,
        ReplicationGroupDescription="rbac",
        Engine="redis",
        NumCacheClusters=2,
        AutomaticFailoverEnabled=True,
        TransitEncryptionEnabled=True,
        UserGroupIds=["apps"],
    )
    g = group(ec, gid)
    assert g["UserGroupIds"] == ["apps"]
    assert ec.describe_user_groups(UserGroupId="apps")["UserGroups"][0]["ReplicationGroups"] == [gid]
    assert ec.describe_users(UserId="app")["Users"][0]["UserGroupIds"] == ["apps"]
    ep = g["NodeGroups"][0]["PrimaryEndpoint"]

    admin = _connect(ep, ca, "default", ADMIN_PW)
    admin.set("app:1", "hello")
    admin.set("other:1", "secret")
    assert admin.wait(1, 10000) == 1  # the replica logs in to its primary and replicates
    with pytest.raises(redis.AuthenticationError):
        _connect(ep, ca).get("app:1")  # the default user now has a password
    app = _connect(ep, ca, "app", APP_PW)
    assert app.get("app:1") == "hello"
    with pytest.raises(redis.exceptions.NoPermissionError):
        app.get("other:1")
    with pytest.raises(redis.exceptions.NoPermissionError):
        app.set("app:2", "x")
    with pytest.raises(redis.AuthenticationError):
        _connect(ep, ca, "app", ADMIN_PW).get("app:1")
    with pytest.raises(redis.exceptions.NoPermissionError):  # users are changed through the API only
        admin.execute_command("ACL", "DELUSER", "app")

    # a changed access string reaches the running nodes
    ec.modify_user(UserId="app", AppendAccessString="+set")
    assert _connect(ep, ca, "app", APP_PW).set("app:2", "x")
    with pytest.raises(ClientError) as e:
        ec.delete_user_group(UserGroupId="apps")
    assert _code(e) == "InvalidUserGroupState"

    # the promoted replica enforces the same users; the old primary follows it, logging in
    ec.test_failover(ReplicationGroupId=gid, NodeGroupId="0001")
    eventually(lambda: group(ec, gid)["Status"] == "available", 120, "the group after failover")
    promoted = _connect(ep, ca, "default", ADMIN_PW)
    eventually(lambda: promoted.role()[0] == "master", 60, "the primary endpoint on the promoted node")
    promoted.set("app:3", "after-failover")
    assert promoted.wait(1, 10000) == 1
    with pytest.raises(redis.exceptions.NoPermissionError):
        _connect(ep, ca, "app", APP_PW).get("other:1")

    server.restart()
    ec = server.client("elasticache")
    eventually(lambda: group(ec, gid)["Status"] == "available", 120, "the group back after restart")
    app = _connect(ep, ca, "app", APP_PW)
    assert eventually(lambda: app.get("app:1"), 60, "app reads after restart") == "hello"
    with pytest.raises(redis.exceptions.NoPermissionError):
        app.get("other:1")

    # without user groups the default user is open again, as before RBAC
    ec.modify_replication_group(ReplicationGroupId=gid, RemoveUserGroups=True, ApplyImmediately=True)
    assert _connect(ep, ca).get("other:1") == "secret"
    with pytest.raises(redis.AuthenticationError):
        _connect(ep, ca, "app", APP_PW).get("app:1")
    ec.delete_user_group(UserGroupId="apps")
    ec.delete_replication_group(ReplicationGroupId=gid)
