"""The course lab's step: "allow port 6379 from application servers". A replication group's
SecurityGroupIds are enforced on its port (nftables): a client from a source no rule allows is
dropped (its connect times out); the group's own replication and Strata's admin work go on."""

from __future__ import annotations

import socket

import pytest
import redis
from botocore.exceptions import ClientError

from strata.engines.nft import nft_usable
from tests.services.ec2.helpers import dial
from tests.services.elasticache.conftest import eventually, group

pytestmark = pytest.mark.skipif(not nft_usable(), reason="security groups are enforced with nftables (root)")


def _ping_from(source: str, port: int) -> bytes:
    with socket.socket() as s:
        s.settimeout(10)
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(b"PING\r\n")
        return s.recv(64)


def test_replication_group_follows_its_security_groups(strata_server, ec, cleanup, unique) -> None:
    ec2 = strata_server.client("ec2")
    sg = ec2.create_security_group(GroupName=f"cache-{unique}", Description="sessions")["GroupId"]
    gid = f"rg-{unique}"
    ec.create_replication_group(
        ReplicationGroupId=gid,
        ReplicationGroupDescription="sessions",
        Engine="redis",
        CacheNodeType="cache.t3.micro",
        NumCacheClusters=2,
        SecurityGroupIds=[sg],
    )
    cleanup.append(("group", gid))
    g = group(ec, gid)
    assert g["Status"] == "available"  # Strata's own admin connections were let through
    port = g["NodeGroups"][0]["PrimaryEndpoint"]["Port"]
    member = ec.describe_cache_clusters(CacheClusterId=g["MemberClusters"][0])["CacheClusters"][0]
    assert member["SecurityGroups"] == [{"SecurityGroupId": sg, "Status": "active"}]
    assert (dial(port), dial(port, "127.0.0.2")) == ("dropped", "dropped")

    ec2.authorize_security_group_ingress(
        GroupId=sg, IpProtocol="tcp", FromPort=port, ToPort=port, CidrIp="127.0.0.2/32"
    )
    assert _ping_from("127.0.0.2", port) == b"+PONG\r\n"
    assert dial(port) == "dropped"
    replica = g["NodeGroups"][0]["NodeGroupMembers"][1]["ReadEndpoint"]["Address"]
    assert dial(port, None, replica) == "dropped"  # every node of the group, not only the primary

    ec2.authorize_security_group_ingress(
        GroupId=sg, IpProtocol="tcp", FromPort=port, ToPort=port, CidrIp="127.0.0.1/32"
    )
    primary = redis.Redis("127.0.0.1", port, socket_connect_timeout=10)
    primary.set("k", "v")
    assert primary.wait(1, 10000) == 1  # the replica synced through the restricted port
    primary.close()

    with pytest.raises(ClientError) as e:
        ec2.delete_security_group(GroupId=sg)
    assert e.value.response["Error"]["Code"] == "DependencyViolation"
    ec.delete_replication_group(ReplicationGroupId=gid)

    def deleted() -> bool:
        try:
            ec2.delete_security_group(GroupId=sg)
            return True
        except ClientError:
            return False

    eventually(deleted, what="the group's guard to go with it")


def _ask_from(source: str | None, port: int, request: bytes, address: str = "127.0.0.1") -> bytes:
    with socket.socket() as s:
        s.settimeout(10)
        if source:
            s.bind((source, 0))
        s.connect((address, port))
        s.sendall(request)
        return s.recv(256)


def test_memcached_cluster_modified_into_a_group(strata_server, ec, cleanup, unique) -> None:
    ec2 = strata_server.client("ec2")
    sg = ec2.create_security_group(GroupName=f"mc-{unique}", Description="memcached clients")["GroupId"]
    cid = f"mc-{unique}"
    ec.create_cache_cluster(
        CacheClusterId=cid, Engine="memcached", CacheNodeType="cache.t3.micro", NumCacheNodes=2
    )
    cleanup.append(("cluster", cid))

    def available() -> dict | None:
        c = ec.describe_cache_clusters(CacheClusterId=cid, ShowCacheNodeInfo=True)["CacheClusters"][0]
        return c if c["CacheClusterStatus"] == "available" else None

    c = eventually(available, what="the cluster")
    port, node = c["ConfigurationEndpoint"]["Port"], c["CacheNodes"][1]["Endpoint"]["Address"]
    assert _ask_from(None, port, b"version\r\n").startswith(b"VERSION")  # the default group

    ec.modify_cache_cluster(CacheClusterId=cid, SecurityGroupIds=[sg])
    assert (dial(port), dial(port, None, node)) == ("dropped", "dropped")
    ec2.authorize_security_group_ingress(
        GroupId=sg, IpProtocol="tcp", FromPort=port, ToPort=port, CidrIp="127.0.0.2/32"
    )
    # the configuration endpoint is Strata's own proxy: it reaches the nodes for an allowed client
    assert _ask_from("127.0.0.2", port, b"version\r\n").startswith(b"VERSION")
    assert _ask_from("127.0.0.2", port, b"version\r\n", node).startswith(b"VERSION")
    assert dial(port) == "dropped"
    shown = ec.describe_cache_clusters(CacheClusterId=cid)["CacheClusters"][0]["SecurityGroups"]
    assert shown == [{"SecurityGroupId": sg, "Status": "active"}]
