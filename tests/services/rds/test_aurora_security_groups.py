"""An Aurora cluster's VpcSecurityGroupIds: its members carry the cluster's groups, and the groups
are enforced on the writer, reader and member endpoints (nftables: a connection from a source no
ingress rule allows is dropped, so the client's connect times out, as on AWS)."""

from __future__ import annotations

import psycopg
import pytest
from botocore.exceptions import ClientError

from strata.engines.nft import nft_usable
from tests.services.ec2.helpers import dial
from tests.services.rds.helpers import PASSWORD, USER, eventually, wait_status
from tests.services.rds.test_aurora import cluster_connect, describe


def _code(e: pytest.ExceptionInfo) -> str:
    return e.value.response["Error"]["Code"]


def _groups(described: dict) -> list[str]:
    return [g["VpcSecurityGroupId"] for g in described["VpcSecurityGroups"]]


def _psycopg_dropped(host: str, port: int) -> bool:
    """psycopg (from 127.0.0.1, libpq binds no source) gets no answer at all: its connect times out."""
    try:
        psycopg.connect(
            host=host, port=port, user=USER, password=PASSWORD, dbname="app", connect_timeout=3
        ).close()
    except psycopg.OperationalError as e:
        assert "timeout" in str(e).lower(), e  # dropped, not refused or rejected by the server
        return True
    return False


@pytest.mark.skipif(not nft_usable(), reason="security groups are enforced with nftables (root)")
def test_cluster_groups_are_its_members_groups_and_enforced(strata_server, unique: str) -> None:
    ec2, rds = strata_server.client("ec2"), strata_server.client("rds")
    default = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"]
    gid = ec2.create_security_group(GroupName=f"aurora-{unique}", Description="app servers")["GroupId"]
    cid, writer = f"sg-aurora-{unique}", f"sg-w-{unique}"
    args = {
        "DBClusterIdentifier": cid,
        "Engine": "aurora-postgresql",
        "MasterUsername": USER,
        "MasterUserPassword": PASSWORD,
        "DatabaseName": "app",
    }
    with pytest.raises(ClientError) as e:
        rds.create_db_cluster(**args, VpcSecurityGroupIds=["sg-0123456789abcdef0"])
    assert _code(e) == "InvalidParameterValue"
    cluster = rds.create_db_cluster(**args, VpcSecurityGroupIds=[gid])["DBCluster"]
    assert _groups(cluster) == [gid]
    port = cluster["Port"]

    member = {"DBClusterIdentifier": cid, "Engine": "aurora-postgresql", "DBInstanceClass": "db.r6g.large"}
    with pytest.raises(ClientError) as e:  # a member's groups are the cluster's
        rds.create_db_instance(DBInstanceIdentifier=writer, VpcSecurityGroupIds=[default], **member)
    assert _code(e) == "InvalidParameterCombination"
    rds.create_db_instance(DBInstanceIdentifier=writer, **member)
    inst = wait_status(rds, writer)
    assert _groups(inst) == [gid]
    inst_port = inst["Endpoint"]["Port"]

    custom = rds.create_db_cluster_endpoint(  # guarded as the cluster's own endpoints are
        DBClusterIdentifier=cid, DBClusterEndpointIdentifier=f"any-{unique}", EndpointType="ANY"
    )["Endpoint"]
    # no rule in the group: every endpoint drops this machine's connections
    assert _psycopg_dropped(cluster["Endpoint"], port)
    assert _psycopg_dropped(custom, port)
    assert _psycopg_dropped(cluster["ReaderEndpoint"], port)
    assert _psycopg_dropped(inst["Endpoint"]["Address"], inst_port)
    assert dial(port, "127.0.0.2") == "dropped"

    ec2.authorize_security_group_ingress(
        GroupId=gid, IpProtocol="tcp", FromPort=0, ToPort=65535, CidrIp="127.0.0.2/32"
    )
    assert (dial(port, "127.0.0.2"), dial(inst_port, "127.0.0.2")) == ("open", "open")
    assert dial(port, "127.0.0.2", cluster["ReaderEndpoint"]) == "open"
    assert dial(port, "127.0.0.2", custom) == "open"
    assert _psycopg_dropped(cluster["Endpoint"], port)

    with pytest.raises(ClientError) as e:
        rds.modify_db_instance(DBInstanceIdentifier=writer, VpcSecurityGroupIds=[default])
    assert _code(e) == "InvalidParameterCombination"
    with pytest.raises(ClientError) as e:
        ec2.delete_security_group(GroupId=gid)
    assert _code(e) == "DependencyViolation"

    # ModifyDBCluster moves the cluster and its member to the default group: this machine gets in
    modified = rds.modify_db_cluster(DBClusterIdentifier=cid, VpcSecurityGroupIds=[default])["DBCluster"]
    assert _groups(modified) == [default] == _groups(describe(rds, cid))
    assert _groups(wait_status(rds, writer)) == [default]
    with cluster_connect(cluster) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
    with cluster_connect(cluster, reader=True) as c:  # no reader yet: the reader endpoint is the writer
        assert c.execute("SELECT 1").fetchone() == (1,)
    with cluster_connect({**cluster, "Endpoint": custom}) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
    ec2.delete_security_group(GroupId=gid)  # no longer in use

    rds.delete_db_instance(DBInstanceIdentifier=writer, SkipFinalSnapshot=True)
    eventually(lambda: not describe(rds, cid)["DBClusterMembers"], 120)
    rds.delete_db_cluster(DBClusterIdentifier=cid, SkipFinalSnapshot=True)
