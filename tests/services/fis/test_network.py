"""FIS aws:network:disrupt-connectivity on a subnet: the database and cache endpoints served in its
Availability Zone stop answering (connections time out, open ones included) while those of other
zones serve on; StopExperiment brings them back. Scope availability-zone does the same to them
(Strata's clients count as in another zone of the VPC), scope prefix-list to the clients whose
address is in the prefix list."""

from __future__ import annotations

import socket

import psycopg
import pytest

from strata.engines.nft import nft_usable
from tests.services.elasticache.conftest import eventually, node_endpoints
from tests.services.fis.test_experiments import DONE, wait_for
from tests.services.fis.test_templates import NONE, ROLE, error_of
from tests.services.rds.helpers import PASSWORD, USER, create_pg

pytestmark = pytest.mark.skipif(not nft_usable(), reason="needs nftables and root")


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

    inside, outside, db = f"in-{unique}", f"out-{unique}", f"net-{unique}"
    ec.create_cache_cluster(
        CacheClusterId=inside, Engine="redis", NumCacheNodes=1, PreferredAvailabilityZone="us-east-1a"
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

        # Scope availability-zone: a client counts as in another zone, so the same endpoints go.
        template = disrupt_template(subnet["SubnetArn"], scope="availability-zone")
        tid = fis.create_experiment_template(**template)["experimentTemplate"]["id"]
        exp_id = fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"]
        eventually(lambda: not _answers(a), what="the zone's cache node cut off from other zones")
        assert not _pg_answers(inst)
        assert _answers(b)
        fis.stop_experiment(id=exp_id)
        assert wait_for(fis, exp_id, DONE)["state"]["status"] == "stopped"
        assert _answers(a) and _pg_answers(inst)

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
        ec.delete_cache_cluster(CacheClusterId=inside)
        ec.delete_cache_cluster(CacheClusterId=outside)
        rds.delete_db_instance(DBInstanceIdentifier=db, SkipFinalSnapshot=True)
