"""FIS aws:network:disrupt-connectivity on a subnet: the database and cache endpoints served in its
Availability Zone stop answering (connections time out, open ones included) while those of other
zones serve on; StopExperiment brings them back. Scope availability-zone does the same to them
(Strata's clients count as in another zone of the VPC) and cuts replication between the zones: a
replica in the cut zone receives nothing of what its primary in another zone takes meanwhile (the
primary sees its acknowledgements stop), and has it all once the cut ends. Scope prefix-list cuts
the endpoints off from the clients whose address is in the prefix list."""

from __future__ import annotations

import socket
import time

import psycopg
import pytest
import redis

from strata.engines.nft import nft_usable
from tests.services.elasticache.conftest import eventually, group, node_endpoints
from tests.services.fis.test_experiments import DONE, wait_for
from tests.services.fis.test_templates import NONE, ROLE, error_of
from tests.services.rds.helpers import PASSWORD, USER, create_pg

pytestmark = pytest.mark.skipif(not nft_usable(), reason="needs nftables and root")
QUIET = 2.5  # seconds: a replica acknowledges what it received every second


def disrupt_template(subnet_arn: str, **params: str) -> dict:
    return {
        "description": "zone a cut off",
        "roleArn": ROLE,
        "stopConditions": NONE,
        "targets": {
            "subnet": {"resourceType": "aws:ec2:subnet", "resourceArns": [subnet_arn], "selectionMode": "ALL"}
        },
        "actions": {
            "cut": {
                "actionId": "aws:network:disrupt-connectivity",
                "parameters": {"duration": "PT10M", **params},
                "targets": {"Subnets": "subnet"},
            }
        },
    }


def _ping(sock: socket.socket) -> bool:
    """Whether a RESP PING on an open connection is answered (within a bound)."""
    try:
        sock.sendall(b"PING\r\n")
        return sock.recv(64) == b"+PONG\r\n"
    except TimeoutError:
        return False


def _answers(endpoint: dict) -> bool:
    """Whether a new connection to the endpoint opens and answers a PING."""
    try:
        with socket.create_connection((endpoint["Address"], endpoint["Port"]), timeout=1.5) as sock:
            return _ping(sock)
    except TimeoutError:
        return False


def _pg_answers(inst: dict) -> bool:
    ep = inst["Endpoint"]
    try:
        with psycopg.connect(
            host=ep["Address"], port=ep["Port"], user=USER, password=PASSWORD, dbname="app", connect_timeout=2
        ) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False


def _group_clients(ec, gid: str) -> tuple[redis.Redis, redis.Redis]:  # noqa: ANN001
    """Clients of the group's primary and replica nodes (once the group is available)."""
    eventually(lambda: group(ec, gid)["Status"] == "available", 120, what="the group created")
    members = group(ec, gid)["NodeGroups"][0]["NodeGroupMembers"]
    by_role = {m["CurrentRole"]: m["ReadEndpoint"] for m in members}
    return tuple(  # type: ignore[return-value]
        redis.Redis(by_role[r]["Address"], by_role[r]["Port"], decode_responses=True, socket_timeout=5)
        for r in ("primary", "replica")
    )


def _replica_silent_for(primary: redis.Redis) -> int:
    """Seconds since the primary last heard its replica acknowledge (INFO replication's lag)."""
    return int(primary.info("replication")["slave0"]["lag"])


def test_disrupted_zone_stops_answering_until_the_experiment_ends(strata_server, unique):
    ec2 = strata_server.client("ec2")
    ec = strata_server.client("elasticache")
    rds = strata_server.client("rds")
    fis = strata_server.client("fis")
    subnet = ec2.describe_subnets(Filters=[{"Name": "availability-zone", "Values": ["us-east-1a"]}])[
        "Subnets"
    ][0]
    assert subnet["AvailabilityZone"] == "us-east-1a"
    code, message, _ = error_of(
        lambda: fis.create_experiment_template(**disrupt_template(subnet["SubnetArn"], scope="s3express"))
    )
    assert code == "ValidationException" and "scope s3express" in message

    inside, outside, db, gid = f"in-{unique}", f"out-{unique}", f"net-{unique}", f"rg-{unique}"
    ec.create_cache_cluster(
        CacheClusterId=inside, Engine="redis", NumCacheNodes=1, PreferredAvailabilityZone="us-east-1a"
    )
    ec.create_replication_group(  # its primary in zone b, its replica in zone a
        ReplicationGroupId=gid,
        ReplicationGroupDescription="d",
        NumCacheClusters=2,
        PreferredCacheClusterAZs=["us-east-1b", "us-east-1a"],
    )
    ec.create_cache_cluster(
        CacheClusterId=outside, Engine="redis", NumCacheNodes=1, PreferredAvailabilityZone="us-east-1b"
    )
    try:
        inst = create_pg(rds, db, AvailabilityZone="us-east-1a")
        (a,) = node_endpoints(ec, inside)
        (b,) = node_endpoints(ec, outside)
        opened = socket.create_connection((a["Address"], a["Port"]), timeout=1.5)
        assert _ping(opened) and _answers(b) and _pg_answers(inst)

        tid = fis.create_experiment_template(**disrupt_template(subnet["SubnetArn"]))["experimentTemplate"][
            "id"
        ]
        exp_id = fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"]
        eventually(lambda: not _answers(a), what="the zone's cache node cut off")
        assert not _ping(opened)  # a connection opened before is cut too
        assert not _pg_answers(inst)
        assert _answers(b)  # another zone serves on
        assert fis.get_experiment(id=exp_id)["experiment"]["state"]["status"] == "running"

        fis.stop_experiment(id=exp_id)
        assert wait_for(fis, exp_id, DONE)["state"]["status"] == "stopped"
        assert _answers(a)
        assert _pg_answers(inst)
        opened.close()

        # Scope availability-zone: a client counts as in another zone, so the same endpoints go,
        # and the replica in zone a stops receiving from its primary in zone b.
        primary, replica = _group_clients(ec, gid)
        primary.set("before", "1")
        eventually(lambda: replica.get("before") == "1", what="the replica in sync before the cut")
        template = disrupt_template(subnet["SubnetArn"], scope="availability-zone")
        tid = fis.create_experiment_template(**template)["experimentTemplate"]["id"]
        exp_id = fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"]
        eventually(lambda: not _answers(a), what="the zone's cache node cut off from other zones")
        assert not _pg_answers(inst)
        assert _answers(b)
        # The primary (zone b) serves, but hears no acknowledgement from its replica any more ...
        eventually(lambda: _replica_silent_for(primary) >= 3, what="the replica's acknowledgements stopped")
        primary.set("during", "x" * 100_000)
        time.sleep(QUIET)  # acknowledged within a second, were the replica receiving
        link = primary.info("replication")
        assert link["slave0"]["offset"] < link["master_repl_offset"]  # ... nor receives the write
        fis.stop_experiment(id=exp_id)
        assert wait_for(fis, exp_id, DONE)["state"]["status"] == "stopped"
        assert _answers(a) and _pg_answers(inst)
        eventually(lambda: replica.get("during") == "x" * 100_000, what="the replica caught up after the cut")

        # Scope prefix-list: the same endpoints, for the clients in the list. Zone b is cut off from
        # a list holding this machine (127.0.0.1), zone a at the same time from one that does not.
        lists = {
            zone: ec2.create_managed_prefix_list(
                PrefixListName=f"{zone}-{unique}", AddressFamily="IPv4", MaxEntries=2, Entries=entries
            )["PrefixList"]
            for zone, entries in (
                ("near", [{"Cidr": "127.0.0.1/32"}, {"Cidr": "10.0.0.0/8"}]),
                ("far", [{"Cidr": "10.0.0.0/8"}]),
            )
        }
        other = ec2.describe_subnets(Filters=[{"Name": "availability-zone", "Values": ["us-east-1b"]}])[
            "Subnets"
        ][0]
        template = disrupt_template(
            other["SubnetArn"], scope="prefix-list", prefixListIdentifier=lists["near"]["PrefixListName"]
        )
        template["targets"]["far"] = {**template["targets"]["subnet"], "resourceArns": [subnet["SubnetArn"]]}
        template["actions"]["far"] = {
            **template["actions"]["cut"],
            "parameters": {
                "duration": "PT10M",
                "scope": "prefix-list",
                "prefixListIdentifier": lists["far"]["PrefixListId"],
            },
            "targets": {"Subnets": "far"},
        }
        tid = fis.create_experiment_template(**template)["experimentTemplate"]["id"]
        exp_id = fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"]
        eventually(lambda: not _answers(b), what="zone b's cache node cut off from the prefix list")
        assert _answers(a)  # no client of the other list is here
        fis.stop_experiment(id=exp_id)
        assert wait_for(fis, exp_id, DONE)["state"]["status"] == "stopped"
        assert _answers(b)
        for made in lists.values():
            ec2.delete_managed_prefix_list(PrefixListId=made["PrefixListId"])
    finally:
        ec.delete_replication_group(ReplicationGroupId=gid)
        ec.delete_cache_cluster(CacheClusterId=inside)
        ec.delete_cache_cluster(CacheClusterId=outside)
        rds.delete_db_instance(DBInstanceIdentifier=db, SkipFinalSnapshot=True)
