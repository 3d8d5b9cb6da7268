"""Security groups: the EC2 API (stored groups and ingress rules) and their enforcement on an RDS
instance's endpoint (nftables: a connection from a source no rule allows is dropped, so the
client's connect times out, as on AWS)."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time

import psycopg
import pytest
import redis
from botocore.exceptions import ClientError

from strata.engines.nft import nft_binary, nft_usable
from tests.services.ec2.helpers import attach, detach, qemu_io
from tests.services.ec2.helpers import dial as _dial
from tests.services.rds.helpers import create_pg, pg_connect, wait_status


def _code(e: pytest.ExceptionInfo) -> str:
    return e.value.response["Error"]["Code"]


def test_groups_and_ingress_rules(strata_server, unique) -> None:
    ec2 = strata_server.client("ec2")
    default = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]
    assert default["IpPermissions"][0]["UserIdGroupPairs"][0]["GroupId"] == default["GroupId"]
    instance = ec2.describe_instances()["Reservations"][0]["Instances"][0]  # this machine, 127.0.0.1
    assert instance["SecurityGroups"] == [{"GroupId": default["GroupId"], "GroupName": "default"}]

    with pytest.raises(ClientError) as e:
        ec2.create_security_group(GroupName=f"app-{unique}", Description="app servers", DryRun=True)
    assert _code(e) == "DryRunOperation"
    gid = ec2.create_security_group(GroupName=f"app-{unique}", Description="app servers")["GroupId"]
    with pytest.raises(ClientError) as e:
        ec2.create_security_group(GroupName=f"app-{unique}", Description="again")
    assert _code(e) == "InvalidGroup.Duplicate"
    with pytest.raises(ClientError) as e:
        ec2.create_security_group(GroupName="default", Description="x")
    assert _code(e) == "InvalidParameterValue"

    perm = {"IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6379, "IpRanges": [{"CidrIp": "127.0.0.2/32"}]}
    out = ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[perm])
    assert out["SecurityGroupRules"][0]["CidrIpv4"] == "127.0.0.2/32"
    with pytest.raises(ClientError) as e:
        ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[perm])
    assert _code(e) == "InvalidPermission.Duplicate"
    with pytest.raises(ClientError) as e:
        ec2.authorize_security_group_ingress(
            GroupId=gid, IpPermissions=[{**perm, "IpRanges": [{"CidrIp": "1.2.3/8"}]}]
        )
    assert _code(e) == "InvalidParameterValue"
    ref = {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": gid}]}
    other = ec2.create_security_group(GroupName=f"web-{unique}", Description="web")["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=other, IpPermissions=[ref])

    ec2.create_tags(Resources=[gid], Tags=[{"Key": "tier", "Value": "app"}])
    tagged = ec2.describe_security_groups(Filters=[{"Name": "tag:tier", "Values": ["app"]}])["SecurityGroups"]
    assert [g["GroupId"] for g in tagged] == [gid] and tagged[0]["Tags"] == [{"Key": "tier", "Value": "app"}]
    shown = ec2.describe_security_groups(GroupIds=[gid])["SecurityGroups"][0]
    assert shown["GroupName"] == f"app-{unique}"
    assert shown["IpPermissions"] == [
        {
            **perm,
            "IpRanges": [{"CidrIp": "127.0.0.2/32"}],
            "Ipv6Ranges": [],
            "PrefixListIds": [],
            "UserIdGroupPairs": [],
        }
    ]
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [gid]}])[
        "SecurityGroupRules"
    ]
    assert sorted((r["IsEgress"], r.get("CidrIpv4"), r["FromPort"]) for r in rules) == [
        (False, "127.0.0.2/32", 6379),
        (True, "0.0.0.0/0", -1),
    ]
    with pytest.raises(ClientError) as e:
        ec2.delete_security_group(GroupId=gid)  # the other group's rule references it
    assert _code(e) == "DependencyViolation"
    with pytest.raises(ClientError) as e:
        ec2.delete_security_group(GroupId=default["GroupId"])
    assert _code(e) == "CannotDelete"

    ec2.revoke_security_group_ingress(GroupId=other, IpPermissions=[ref])
    ec2.delete_security_group(GroupId=other)
    ec2.revoke_security_group_ingress(GroupId=gid, IpPermissions=[perm])
    # as in a default VPC: no error for a rule that is not there, it comes back as unknown
    again = ec2.revoke_security_group_ingress(GroupId=gid, IpPermissions=[perm])
    assert again["UnknownIpPermissions"][0]["IpRanges"] == [{"CidrIp": "127.0.0.2/32"}]
    ec2.delete_security_group(GroupId=gid)
    with pytest.raises(ClientError) as e:
        ec2.describe_security_groups(GroupIds=[gid])
    assert _code(e) == "InvalidGroup.NotFound"


def test_modify_security_group_rules_and_ipv6_rules(strata_server, unique) -> None:
    ec2 = strata_server.client("ec2")
    gid = ec2.create_security_group(GroupName=f"mod-{unique}", Description="modify")["GroupId"]
    peer = ec2.create_security_group(GroupName=f"peer-{unique}", Description="peer")["GroupId"]
    v6 = {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "Ipv6Ranges": [{"CidrIpv6": "fd00::/8"}]}
    added = ec2.authorize_security_group_ingress(
        GroupId=gid,
        IpPermissions=[
            v6,
            {"IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6379, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]},
        ],
    )["SecurityGroupRules"]
    v6_rule, v4_rule = (r["SecurityGroupRuleId"] for r in added)
    assert [r.get("CidrIpv6") for r in added] == ["fd00::/8", None]
    shown = ec2.describe_security_groups(GroupIds=[gid])["SecurityGroups"][0]["IpPermissions"]
    assert [p["Ipv6Ranges"] for p in shown if p["FromPort"] == 5432] == [[{"CidrIpv6": "fd00::/8"}]]
    with pytest.raises(ClientError) as e:
        ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[v6])
    assert _code(e) == "InvalidPermission.Duplicate"
    with pytest.raises(ClientError) as e:
        ec2.authorize_security_group_ingress(
            GroupId=gid, IpPermissions=[{**v6, "Ipv6Ranges": [{"CidrIpv6": "fd00::zz/8"}]}]
        )
    assert _code(e) == "InvalidParameterValue"
    found = ec2.describe_security_groups(
        Filters=[{"Name": "ip-permission.ipv6-cidr", "Values": ["fd00::/8"]}]
    )["SecurityGroups"]
    assert [g["GroupId"] for g in found] == [gid]

    def modify(rid: str, **rule: object) -> None:
        ec2.modify_security_group_rules(
            GroupId=gid, SecurityGroupRules=[{"SecurityGroupRuleId": rid, "SecurityGroupRule": rule}]
        )

    modify(v4_rule, IpProtocol="tcp", FromPort=6380, ToPort=6381, ReferencedGroupId=peer, Description="p")
    rules = {
        r["SecurityGroupRuleId"]: r
        for r in ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [gid]}])[
            "SecurityGroupRules"
        ]
    }
    r = rules[v4_rule]
    assert (r["FromPort"], r["ToPort"], r["ReferencedGroupInfo"]["GroupId"], r["Description"]) == (
        6380,
        6381,
        peer,
        "p",
    )
    assert "CidrIpv4" not in r
    egress = next(rid for rid, r in rules.items() if r["IsEgress"])
    for bad, code in (
        (
            {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "CidrIpv6": "fd00::/8"},
            "InvalidPermission.Duplicate",
        ),
        ({"IpProtocol": "tcp", "FromPort": 1, "ToPort": 2}, "MissingParameter"),
        (
            {"IpProtocol": "tcp", "FromPort": 9, "ToPort": 1, "CidrIpv4": "10.0.0.0/8"},
            "InvalidParameterValue",
        ),
        (
            {"IpProtocol": "tcp", "FromPort": 1, "ToPort": 2, "CidrIpv4": "1.0.0.0/8", "CidrIpv6": "::/0"},
            ("InvalidParameterCombination"),
        ),
    ):
        with pytest.raises(ClientError) as e:
            modify(v4_rule, **bad)
        assert _code(e) == code, bad
    with pytest.raises(ClientError) as e:
        modify("sgr-0123456789abcdef0", IpProtocol="-1", CidrIpv4="10.0.0.0/8")
    assert _code(e) == "InvalidSecurityGroupRuleId.NotFound"
    with pytest.raises(ClientError) as e:  # a group no resource carries may restrict egress ...
        ec2.modify_security_group_rules(
            GroupId=gid,
            SecurityGroupRules=[
                {
                    "SecurityGroupRuleId": egress,
                    "SecurityGroupRule": {"IpProtocol": "-1", "CidrIpv4": "10.0.0.0/8"},
                }
            ],
            DryRun=True,
        )
    assert _code(e) == "DryRunOperation"
    modify(egress, IpProtocol="-1", CidrIpv4="10.0.0.0/8")
    assert [
        (p["IpProtocol"], p["IpRanges"])
        for p in ec2.describe_security_groups(GroupIds=[gid])["SecurityGroups"][0]["IpPermissionsEgress"]
    ] == [("-1", [{"CidrIp": "10.0.0.0/8"}])]
    default = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"]
    default_egress = next(
        r["SecurityGroupRuleId"]
        for r in ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [default]}])[
            "SecurityGroupRules"
        ]
        if r["IsEgress"]
    )
    with pytest.raises(ClientError) as e:  # ... one in use may not (Strata filters no egress)
        ec2.modify_security_group_rules(
            GroupId=default,
            SecurityGroupRules=[
                {
                    "SecurityGroupRuleId": default_egress,
                    "SecurityGroupRule": {"IpProtocol": "-1", "CidrIpv4": "10.0.0.0/8"},
                }
            ],
        )
    assert _code(e) == "InvalidParameterValue"
    ec2.revoke_security_group_ingress(GroupId=gid, SecurityGroupRuleIds=[v6_rule, v4_rule])
    ec2.delete_security_group(GroupId=gid)
    ec2.delete_security_group(GroupId=peer)


def _rules(pid: int) -> str:
    """This server's security-group nft table ('' when it has none)."""
    tables = subprocess.run([nft_binary(), "list", "tables"], capture_output=True, text=True).stdout
    names = re.findall(rf"table ip (strata_{pid}_\w*security_groups)", tables)
    return "".join(
        subprocess.run([nft_binary(), "list", "table", "ip", n], capture_output=True, text=True).stdout
        for n in names
    )


def _eventually(fn, timeout: float = 30) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not fn():
        assert time.monotonic() < deadline
        time.sleep(0.2)


@pytest.mark.skipif(not nft_usable(), reason="security groups are enforced with nftables (root)")
def test_rds_endpoint_follows_its_security_groups(strata_factory, unique) -> None:
    server = strata_factory()
    ec2, rds = server.client("ec2"), server.client("rds")
    gid = ec2.create_security_group(GroupName="app", Description="app servers")["GroupId"]
    inst = create_pg(rds, f"db-{unique}")  # the default group: this machine's clients get in
    port = inst["Endpoint"]["Port"]
    assert [g["VpcSecurityGroupId"] for g in inst["VpcSecurityGroups"]] == [
        ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"]
    ]
    pg_connect(inst).close()

    with pytest.raises(ClientError) as e:
        rds.modify_db_instance(
            DBInstanceIdentifier=inst["DBInstanceIdentifier"], VpcSecurityGroupIds=["sg-0000"]
        )
    assert _code(e) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        rds.create_db_instance_read_replica(
            DBInstanceIdentifier=f"rr-{unique}",
            SourceDBInstanceIdentifier=inst["DBInstanceIdentifier"],
            VpcSecurityGroupIds=["sg-0123456789abcdef0"],
        )
    assert _code(e) == "InvalidParameterValue"
    rds.modify_db_instance(DBInstanceIdentifier=inst["DBInstanceIdentifier"], VpcSecurityGroupIds=[gid])
    assert _dial(port) == "dropped"  # no rule: dropped, the connect times out
    ec2.authorize_security_group_ingress(
        GroupId=gid,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": "127.0.0.2/32"}]}
        ],
    )
    assert (_dial(port, "127.0.0.2"), _dial(port)) == ("open", "dropped")

    pid = server.proc.pid
    assert f"dport {port}" in _rules(pid)
    server.kill()  # kill -9: the janitor removes the dead server's rules
    _eventually(lambda: _rules(pid) == "")
    server.start()  # the rules are stored: enforced again at start
    wait_status(rds, inst["DBInstanceIdentifier"])
    _eventually(lambda: _dial(port, "127.0.0.2") == "open", timeout=60)
    assert _dial(port) == "dropped"
    ec2.authorize_security_group_ingress(
        GroupId=gid, IpProtocol="tcp", FromPort=port, ToPort=port, CidrIp="127.0.0.1/32"
    )
    inst = wait_status(rds, inst["DBInstanceIdentifier"])
    pg_connect(inst).close()
    assert [g["VpcSecurityGroupId"] for g in inst["VpcSecurityGroups"]] == [gid]
    _engine_is_a_client(ec2, inst, gid)
    _own_port_only_through_the_endpoint(server, inst)
    _serverless_nodes_too(server, inst, unique)

    _engine_egress_follows_the_rules(ec2, inst, gid, server.proc.pid)

    pid = server.proc.pid
    assert f"dport {port}" in _rules(pid)
    rds.delete_db_instance(DBInstanceIdentifier=inst["DBInstanceIdentifier"], SkipFinalSnapshot=True)
    _eventually(lambda: _rules(pid) == "", timeout=120)  # no guard left: no table


def _reached(inst: dict) -> str:
    """Whether the instance's engine reaches 127.0.0.3 (a listener of ours) when a user's
    CREATE SUBSCRIPTION makes it dial a publisher there: "reached" or "dropped"."""
    listener = socket.socket()
    listener.bind(("127.0.0.3", 0))
    listener.listen(4)
    listener.settimeout(5)  # beyond the attempt's 3 s: a dropped SYN is never seen
    lport = listener.getsockname()[1]
    seen: list[str] = []

    def accept() -> None:
        try:
            listener.accept()[0].close()  # no publisher: the engine's attempt fails at once
            seen.append("reached")
        except TimeoutError:
            seen.append("dropped")

    t = threading.Thread(target=accept)
    t.start()
    conninfo = f"host=127.0.0.3 port={lport} user=u password=p dbname=d"
    with pg_connect(inst) as c, pytest.raises(psycopg.Error) as e:
        c.execute("SET statement_timeout = '3s'")  # a dropped SYN: the engine would retry for minutes
        c.execute(f"CREATE SUBSCRIPTION s_{lport} CONNECTION '{conninfo}' PUBLICATION p")
    t.join(15)
    listener.close()
    assert seen in (["reached"], ["dropped"]), (seen, str(e.value))
    return seen[0]


def _subscribes(c: psycopg.Connection, port: int) -> str:
    """Whether the engine behind `c` reaches 127.0.0.1:`port` when a user's CREATE SUBSCRIPTION
    makes it dial a publisher there: "reached" (refused by the server there) or "dropped"."""
    conninfo = f"host=127.0.0.1 port={port} user=nobody password=p dbname=app connect_timeout=2"
    c.execute("SET statement_timeout = '4s'")
    with pytest.raises(psycopg.Error) as e:
        c.execute(f"CREATE SUBSCRIPTION s_{port} CONNECTION '{conninfo}' PUBLICATION p")
    message = str(e.value)
    return "dropped" if "timeout" in message or "canceling statement" in message else "reached"


def _engine_is_a_client(ec2, inst: dict, gid: str) -> None:  # noqa: ANN001
    """An engine a user makes dial is a client at 127.0.0.1 like any other: the destination's
    groups judge it (here its own endpoint's), and no node's own port lets it past them."""
    port = inst["Endpoint"]["Port"]
    rule = {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": "127.0.0.1/32"}]}
    with pg_connect(inst) as c:
        node_port = int(c.execute("SHOW port").fetchone()[0])
        assert node_port != port
        assert _subscribes(c, port) == "reached"  # 127.0.0.1 may connect
        assert _subscribes(c, node_port) == "dropped"  # the engine's own port: not past the group
        ec2.revoke_security_group_ingress(GroupId=gid, IpPermissions=[rule])
        assert _subscribes(c, port) == "dropped"  # this connection stays open; the engine's new one
        ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[rule])
        assert _subscribes(c, port) == "reached"


def _dial_as(user: str, port: int) -> str:
    """What a TCP connect to 127.0.0.1:`port` meets from a process of another user (a local user
    of the machine, not Strata): open, refused or dropped."""
    code = (
        "import socket\ns = socket.socket()\ns.settimeout(1.5)\n"
        f"try:\n    s.connect(('127.0.0.1', {port})); print('open')\n"
        "except TimeoutError:\n    print('dropped')\nexcept ConnectionRefusedError:\n    print('refused')\n"
    )
    done = subprocess.run(["python3", "-c", code], user=user, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _own_port_only_through_the_endpoint(server, inst: dict) -> None:  # noqa: ANN001
    """The engine's own port takes no connection but through its endpoint (whose groups judged
    it), Strata's and its replication's: a local process dialing it directly (this test, which is
    not Strata, or another user's) is refused, while the endpoint and Strata's health checks work."""
    if server.health()["services"]["ec2"].get("engine_ports") != "endpoints only":
        return  # no cgroup v2 / socket cgroupv2 here: the ports are as before (and logged so)
    with pg_connect(inst) as c:
        node_port = int(c.execute("SHOW port").fetchone()[0])
    assert _dial(node_port) == "refused"
    assert _dial_as("nobody", node_port) == "refused"
    assert _dial(inst["Endpoint"]["Port"]) == "open"  # the endpoint: past its group, as before
    pg_connect(inst).close()


def _serverless_nodes_too(server, inst: dict, unique: str) -> None:  # noqa: ANN001
    """A serverless cache's nodes are engines like the others' (same rules): the internal guard
    judges their cgroup's connections (before, any process of the engines' user passed), and their
    replication passes it: a replica cut off dials its primary again and syncs."""
    if server.health()["services"]["ec2"].get("engine_ports") != "endpoints only":
        return
    ec = server.client("elasticache")
    name = f"own-{unique}"[:40]
    ec.create_serverless_cache(ServerlessCacheName=name, Engine="valkey")
    try:
        found: list[dict] = []

        def available() -> bool:
            found[:] = ec.describe_serverless_caches(ServerlessCacheName=name)["ServerlessCaches"]
            return found[0]["Status"] == "available"

        _eventually(available, timeout=120)
        ep = found[0]["Endpoint"]
        judged = re.findall(
            r'socket cgroupv2 level \d+ "[^"]*/elasticache-(\d+)" goto engine_', _guard(server)
        )
        assert str(ep["Port"]) in judged, judged
        ca = str(server.data_dir / "tls" / "ca.pem")
        primary = redis.Redis(ep["Address"], ep["Port"], ssl=True, ssl_ca_certs=ca, socket_timeout=30)
        primary.execute_command("CLIENT", "KILL", "TYPE", "replica")
        primary.set("k", "after")
        assert primary.wait(1, 20000) == 1
    finally:
        ec.delete_serverless_cache(ServerlessCacheName=name)


def _guard(server) -> str:  # noqa: ANN001
    """The server's internal guard's nft table (strata.engines.internal_guard)."""
    pid = server.proc.pid
    tables = subprocess.run([nft_binary(), "list", "tables"], capture_output=True, text=True).stdout
    (table,) = re.findall(rf"table ip (strata_{pid}_\w*internal_ports)", tables)
    return subprocess.run([nft_binary(), "list", "table", "ip", table], capture_output=True, text=True).stdout


def _engine_egress_follows_the_rules(ec2, inst: dict, gid: str, pid: int) -> None:  # noqa: ANN001
    """A PostgreSQL instance's own connections meet its groups' egress rules (nft, its cgroup)."""
    assert _reached(inst) == "reached"  # AWS's default rule: all traffic out
    everything = {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
    https = {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "127.0.0.3/32"}]}
    ec2.authorize_security_group_egress(GroupId=gid, IpPermissions=[https])
    ec2.revoke_security_group_egress(GroupId=gid, IpPermissions=[everything])
    tables = subprocess.run([nft_binary(), "list", "tables"], capture_output=True, text=True).stdout
    assert re.search(rf"table inet strata_{pid}_\w*security_groups_egress", tables)
    assert _reached(inst) == "dropped"  # only 127.0.0.3:443 allowed
    pg_connect(inst).close()  # clients still get in and their replies out (groups are stateful)
    rule = ec2.authorize_security_group_egress(
        GroupId=gid,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 1024, "ToPort": 65535, "IpRanges": [{"CidrIp": "127.0.0.3/32"}]}
        ],
    )["SecurityGroupRules"][0]["SecurityGroupRuleId"]
    assert _reached(inst) == "reached"
    ec2.revoke_security_group_egress(GroupId=gid, SecurityGroupRuleIds=[rule])
    assert _reached(inst) == "dropped"
    ec2.authorize_security_group_egress(GroupId=gid, IpPermissions=[everything])
    assert _reached(inst) == "reached"


@pytest.mark.skipif(not nft_usable(), reason="security groups are enforced with nftables (root)")
def test_efs_mount_target_follows_its_security_groups(strata_server, unique) -> None:
    ec2, efs = strata_server.client("ec2"), strata_server.client("efs")
    gid = ec2.create_security_group(GroupName=f"nfs-{unique}", Description="NFS clients")["GroupId"]
    fs = efs.create_file_system(CreationToken=unique)["FileSystemId"]
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    mt = efs.create_mount_target(FileSystemId=fs, SubnetId=subnet, SecurityGroups=[gid])
    ip, mt_id = mt["IpAddress"], mt["MountTargetId"]
    assert efs.describe_mount_target_security_groups(MountTargetId=mt_id)["SecurityGroups"] == [gid]
    assert (_dial(2049, None, ip), _dial(2049, "127.0.0.2", ip)) == ("dropped", "dropped")

    ec2.authorize_security_group_ingress(
        GroupId=gid, IpProtocol="tcp", FromPort=2049, ToPort=2049, CidrIp="127.0.0.2/32"
    )
    assert (_dial(2049, "127.0.0.2", ip), _dial(2049, None, ip)) == ("open", "dropped")
    assert _dial(2050, "127.0.0.2", ip) == "dropped"  # the rule's port range holds 2049 only
    rule = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [gid]}])[
        "SecurityGroupRules"
    ]
    rid = next(r["SecurityGroupRuleId"] for r in rule if not r["IsEgress"])
    ec2.modify_security_group_rules(  # the rule now allows 127.0.0.3 instead, at once
        GroupId=gid,
        SecurityGroupRules=[
            {
                "SecurityGroupRuleId": rid,
                "SecurityGroupRule": {
                    "IpProtocol": "tcp",
                    "FromPort": 2049,
                    "ToPort": 2050,
                    "CidrIpv4": "127.0.0.3/32",
                },
            }
        ],
    )
    assert (_dial(2049, "127.0.0.3", ip), _dial(2050, "127.0.0.3", ip)) == ("open", "open")
    assert _dial(2049, "127.0.0.2", ip) == "dropped"

    with pytest.raises(ClientError) as e:
        ec2.delete_security_group(GroupId=gid)
    assert _code(e) == "DependencyViolation"
    efs.modify_mount_target_security_groups(MountTargetId=mt_id, SecurityGroups=[])  # the default group
    assert (_dial(2049, None, ip), _dial(2050, None, ip)) == ("open", "open")
    efs.delete_mount_target(MountTargetId=mt_id)
    ec2.delete_security_group(GroupId=gid)


def test_without_enforcement_restricting_is_refused(strata_factory, unique) -> None:
    server = strata_factory(extra_env={"STRATA_SECURITY_GROUPS": "unenforced"})
    assert server.health()["services"]["ec2"]["security_groups"] == "unenforced"
    ec2, efs, ec = server.client("ec2"), server.client("efs"), server.client("elasticache")
    gid = ec2.create_security_group(GroupName="app", Description="app servers")["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=gid, IpProtocol="tcp", FromPort=1, ToPort=2, CidrIp="10.0.0.0/8"
    )
    default = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]
    with pytest.raises(ClientError) as e:
        ec2.revoke_security_group_ingress(GroupId=default["GroupId"], IpPermissions=default["IpPermissions"])
    assert _code(e) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        ec.create_replication_group(
            ReplicationGroupId=f"rg-{unique}", ReplicationGroupDescription="d", SecurityGroupIds=[gid]
        )
    assert _code(e) == "InvalidParameterValue"
    fs = efs.create_file_system(CreationToken=unique)["FileSystemId"]
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    with pytest.raises(ClientError) as e:
        efs.create_mount_target(FileSystemId=fs, SubnetId=subnet, SecurityGroups=[gid])
    assert _code(e) == "BadRequest"


@pytest.mark.skipif(not nft_usable(), reason="security groups are enforced with nftables (root)")
def test_an_attached_volumes_nbd_export_follows_the_instances_group(strata_factory, unique) -> None:
    server = strata_factory()
    ec2 = server.client("ec2")
    az = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    vol = ec2.create_volume(AvailabilityZone=az, Size=1, VolumeType="gp3")["VolumeId"]
    port = server.health()["services"]["ec2"]["nbd"][1]
    assert _dial(port, "127.0.0.2") == "open"  # nothing attached: the port is not guarded
    uri = attach(server, ec2, vol, az)
    # the instances are in the default group: this machine's clients get in, 127.0.0.2 does not
    assert "wrote 4096/4096" in qemu_io(uri, "write -P 7 0 4k")
    assert _dial(port, "127.0.0.2") == "dropped"
    default = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"]
    perm = {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": "127.0.0.2/32"}]}
    ec2.authorize_security_group_ingress(GroupId=default, IpPermissions=[perm])
    assert _dial(port, "127.0.0.2") == "open"
    ec2.revoke_security_group_ingress(GroupId=default, IpPermissions=[perm])
    assert _dial(port, "127.0.0.2") == "dropped"
    assert "read 4096/4096" in qemu_io(uri, "read -P 7 0 4k")
    detach(ec2, vol)
    assert _dial(port, "127.0.0.2") == "open"
