"""The course lab's step: "allow port 6379 from application servers". A replication group's
SecurityGroupIds are enforced on its port (nftables): a client from a source no rule allows is
dropped (its connect times out); the group's own replication and Strata's admin work go on."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

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
    primary = redis.Redis("127.0.0.1", port, socket_connect_timeout=10, socket_timeout=60)
    primary.set("k", "v")
    assert primary.wait(1, 10000) == 1  # the replica synced through the restricted port
    _egress_follows_the_rules(ec2, sg, primary, Path(strata_server.data_dir))
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


def _reached(primary: redis.Redis, token: str) -> str:
    """Whether the primary node reaches 127.0.0.3 (a listener of ours) when it MIGRATEs a key
    there: "reached" or "dropped". MIGRATE is restricted on ElastiCache: Strata's admin name runs
    it here, as a user with that right would."""
    listener = socket.socket()
    listener.bind(("127.0.0.3", 0))
    listener.listen(4)
    listener.settimeout(5)  # beyond MIGRATE's 2 s: a dropped SYN is never seen
    lport = listener.getsockname()[1]
    seen: list[str] = []

    def accept() -> None:
        try:
            listener.accept()[0].close()  # no Redis there: the engine's MIGRATE fails at once
            seen.append("reached")
        except TimeoutError:
            seen.append("dropped")

    t = threading.Thread(target=accept)
    t.start()
    primary.set("moving", "v")
    with pytest.raises(redis.RedisError) as e:  # IOERR: the peer closed, or no connection in time
        primary.execute_command(f"MIGRATE-{token}", "127.0.0.3", lport, "moving", 0, 2000)
    t.join(15)
    listener.close()
    assert seen in (["reached"], ["dropped"]), (seen, str(e.value))
    return seen[0]


def _egress_follows_the_rules(ec2, sg: str, primary: redis.Redis, data_dir: Path) -> None:  # noqa: ANN001
    """The group's nodes' own connections meet its egress rules (nft, their cgroup); their
    replication does not: a replica cut off reconnects to its primary and syncs."""
    token = (data_dir / "elasticache" / "engine-admin.token").read_text().strip()
    assert _reached(primary, token) == "reached"  # AWS's default rule: all traffic out
    everything = {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
    ec2.revoke_security_group_egress(GroupId=sg, IpPermissions=[everything])  # in use: enforced
    assert _reached(primary, token) == "dropped"
    primary.execute_command("CLIENT", "KILL", "TYPE", "replica")  # the replica must dial again
    primary.set("k", "after")
    assert primary.wait(1, 20000) == 1  # it did: replication is not the group's traffic
    rule = ec2.authorize_security_group_egress(
        GroupId=sg,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 1024, "ToPort": 65535, "IpRanges": [{"CidrIp": "127.0.0.3/32"}]}
        ],
    )["SecurityGroupRules"][0]["SecurityGroupRuleId"]
    assert _reached(primary, token) == "reached"
    ec2.revoke_security_group_egress(GroupId=sg, SecurityGroupRuleIds=[rule])
    ec2.authorize_security_group_egress(GroupId=sg, IpPermissions=[everything])
    assert _reached(primary, token) == "reached"


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


def test_serverless_cache_behind_the_ecpu_proxy_follows_its_security_groups(
    strata_server, ec, unique, ca_file
) -> None:
    """With an ECPUPerSecond maximum the proxy holds the endpoints: the cache's groups still filter
    clients there, and the proxy's own connections to the nodes are Strata's (never filtered)."""
    ec2 = strata_server.client("ec2")
    sg = ec2.create_security_group(GroupName=f"sls-{unique}", Description="ecpu")["GroupId"]
    name = f"sls-{unique}"[:40]
    ec.create_serverless_cache(
        ServerlessCacheName=name,
        Engine="valkey",
        SecurityGroupIds=[sg],
        CacheUsageLimits={"ECPUPerSecond": {"Maximum": 1000}},
    )
    try:
        found = ec.describe_serverless_caches(ServerlessCacheName=name)["ServerlessCaches"][0]
        ports = [found["Endpoint"]["Port"], found["ReaderEndpoint"]["Port"]]
        assert [dial(p) for p in ports] == ["dropped", "dropped"]
        for p in ports:
            ec2.authorize_security_group_ingress(
                GroupId=sg, IpProtocol="tcp", FromPort=p, ToPort=p, CidrIp="127.0.0.2/32"
            )
        tls = ssl.create_default_context(cafile=ca_file)
        for p in ports:  # the proxy dials the node from 127.0.0.1, which no rule allows
            with socket.socket() as raw:
                raw.settimeout(10)
                raw.bind(("127.0.0.2", 0))
                raw.connect(("127.0.0.1", p))
                with tls.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                    s.sendall(b"PING\r\n")
                    assert s.recv(64) == b"+PONG\r\n"
        assert [dial(p) for p in ports] == ["dropped", "dropped"]
    finally:
        ec.delete_serverless_cache(ServerlessCacheName=name)
