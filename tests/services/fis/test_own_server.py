"""Faults that need a server of their own, one for the module: its replicas ACTIVE as soon as they
are copied (STRATA_LIMIT_DYNAMODB_REPLICA_CREATE_SECONDS=0) and `--timings aws` (STRATA_TIMINGS).

FIS aws:dynamodb:global-table-pause-replication on a global table with replicas in two regions:
while the action runs, writes in either region stay there (both directions are paused for the
targeted replica); when the experiment is stopped (the pause is lifted however the action ends),
every write made meanwhile reaches the other region. A target that is no global table fails the
experiment.

`--timings aws`: a DB instance (Multi-AZ or an Aurora member) stays `creating` for 10 minutes and
`modifying` for 2, an ElastiCache cache cluster `creating` for 5 and `modifying` for 2, though
their engines already serve; a Multi-AZ instance's forced failover takes the 60 s AWS documents and
an Aurora cluster's failover 30 s. All in simulated time: each is under way (and a failing-over
endpoint unanswered) until the clock has moved past it; then each serves from its new primary
through the same endpoint, nothing lost. A bad setting stops start-up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import psycopg
import pytest
import redis

from tests.services.dynamodb.test_global_tables import EAST, NEW_AND_OLD, WEST, get, poll
from tests.services.elasticache.conftest import group, roles
from tests.services.elasticache.test_engine_faults import _in_sync, _member_client, _pid
from tests.services.fis.conftest import runner_role
from tests.services.fis.test_experiments import DONE, wait_for
from tests.services.fis.test_templates import NONE, ROLE
from tests.services.rds.helpers import PASSWORD, USER, create_pg, eventually, pg_connect, wait_status
from tests.strata_process import StrataProcess

QUIET = 1.0  # seconds replication would need far less than (it looks every 0.05 s)


def pause_template(arn: str, duration: str = "PT5M") -> dict:
    return {
        "description": "pause replication",
        "roleArn": ROLE,
        "stopConditions": NONE,
        "targets": {
            "Tables": {
                "resourceType": "aws:dynamodb:global-table",
                "resourceArns": [arn],
                "selectionMode": "ALL",
            }
        },
        "actions": {
            "pause": {
                "actionId": "aws:dynamodb:global-table-pause-replication",
                "parameters": {"duration": duration},
                "targets": {"Tables": "Tables"},
            }
        },
    }


def _table(ddb, name: str) -> str:  # noqa: ANN001
    return ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification=NEW_AND_OLD,
    )["TableDescription"]["TableArn"]


def _put(ddb, name: str, key: str) -> None:  # noqa: ANN001
    ddb.put_item(TableName=name, Item={"pk": {"S": key}})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrataProcess]:
    s = StrataProcess(
        tmp_path_factory.mktemp("own") / "data",
        extra_env={"STRATA_LIMIT_DYNAMODB_REPLICA_CREATE_SECONDS": "0", "STRATA_TIMINGS": "aws"},
    ).start()
    runner_role(s)
    yield s
    s.stop()


def test_pause_replication_holds_writes_and_delivers_them_after(server, unique):
    fis = server.client("fis")
    east, west = server.client("dynamodb", region=EAST), server.client("dynamodb", region=WEST)
    name = f"gp-{unique}"
    arn = _table(east, name)

    # An ordinary table is no global table: the action fails, saying why.
    plain = _table(east, f"plain-{unique}")
    tid = fis.create_experiment_template(**pause_template(plain))["experimentTemplate"]["id"]
    exp = wait_for(fis, fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"], DONE)
    assert exp["state"]["status"] == "failed"
    assert "not a global table" in exp["actions"]["pause"]["state"]["reason"]

    east.update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": WEST}}])
    poll(lambda: west.describe_table(TableName=name)["Table"]["TableStatus"] == "ACTIVE")
    _put(east, name, "before")
    poll(lambda: get(west, name, "before"))

    # Found by its tags (the ordinary table, tagged alike, is no global table: not a target), and
    # stopped by StopExperiment: the pause ends with it.
    for table in (arn, plain):
        east.tag_resource(ResourceArn=table, Tags=[{"Key": "chaos", "Value": unique}])
    template = pause_template(arn)
    del template["targets"]["Tables"]["resourceArns"]
    template["targets"]["Tables"]["resourceTags"] = {"chaos": unique}
    tid = fis.create_experiment_template(**template)["experimentTemplate"]["id"]
    exp_id = fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"]
    poll(
        lambda: (
            fis.get_experiment(id=exp_id)["experiment"]["actions"]["pause"]["state"]["status"] == "running"
        )
    )
    resolved = fis.list_experiment_resolved_targets(experimentId=exp_id)["resolvedTargets"]
    assert [t["targetInformation"]["arn"] for t in resolved] == [arn]
    for i in range(20):
        _put(east, name, f"east-{i}")
        _put(west, name, f"west-{i}")
    time.sleep(QUIET)
    assert get(west, name, "east-0") is None and get(west, name, "east-19") is None
    assert get(east, name, "west-0") is None and get(east, name, "west-19") is None
    assert fis.get_experiment(id=exp_id)["experiment"]["state"]["status"] == "running"
    fis.stop_experiment(id=exp_id)
    assert wait_for(fis, exp_id, DONE)["state"]["status"] == "stopped"
    poll(lambda: all(get(west, name, f"east-{i}") for i in range(20)))
    poll(lambda: all(get(east, name, f"west-{i}") for i in range(20)))


def _answers(host: str, port: int) -> bool:
    try:
        with psycopg.connect(
            host=host, port=port, user=USER, password=PASSWORD, dbname="app", connect_timeout=2
        ) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False


def _events(rds, ident: str, kind: str) -> list[str]:  # noqa: ANN001
    return [e["Message"] for e in rds.describe_events(SourceIdentifier=ident, SourceType=kind)["Events"]]


def _status(rds, ident: str) -> str:  # noqa: ANN001
    return rds.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]["DBInstanceStatus"]


def _member(rds, ident: str, cid: str) -> None:  # noqa: ANN001
    rds.create_db_instance(
        DBInstanceIdentifier=ident,
        DBClusterIdentifier=cid,
        Engine="aurora-postgresql",
        DBInstanceClass="db.r6g.large",
    )


def test_failovers_take_aws_times(server, unique):
    rds = server.client("rds")
    db, cid = f"maz-{unique}", f"aur-{unique}"
    login = {"MasterUsername": USER, "MasterUserPassword": PASSWORD}
    create_pg(rds, db, wait=False, MultiAZ=True, BackupRetentionPeriod=0)
    cluster = rds.create_db_cluster(
        DBClusterIdentifier=cid, Engine="aurora-postgresql", DatabaseName="app", **login
    )["DBCluster"]
    assert cluster["Status"] == "creating"  # 5 minutes; its members may be added meanwhile
    _member(rds, f"w-{cid}", cid)
    # The writer's engine serves through the cluster endpoint, yet the instance is still being
    # created (10 minutes), as DescribeDBInstances says; so is the Multi-AZ instance.
    eventually(lambda: _answers(cluster["Endpoint"], cluster["Port"]), 120)
    time.sleep(QUIET)
    assert _status(rds, f"w-{cid}") == "creating"
    assert _status(rds, db) == "creating"
    server.advance_clock("11m")
    wait_status(rds, f"w-{cid}")
    assert rds.describe_db_clusters(DBClusterIdentifier=cid)["DBClusters"][0]["Status"] == "available"
    _member(rds, f"r-{cid}", cid)
    time.sleep(QUIET)
    assert _status(rds, f"r-{cid}") == "creating"
    server.advance_clock("11m")
    wait_status(rds, f"r-{cid}")
    inst = wait_status(rds, db)
    # A modification takes its 2 minutes too.
    out = rds.modify_db_instance(DBInstanceIdentifier=db, DeletionProtection=False, ApplyImmediately=True)
    assert out["DBInstance"]["DBInstanceStatus"] == "modifying"
    time.sleep(QUIET)
    assert _status(rds, db) == "modifying"
    server.advance_clock("3m")
    wait_status(rds, db)
    with pg_connect(inst) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")

    rds.reboot_db_instance(DBInstanceIdentifier=db, ForceFailover=True)
    rds.failover_db_cluster(DBClusterIdentifier=cid, TargetDBInstanceIdentifier=f"r-{cid}")
    eventually(lambda: "Multi-AZ instance failover started." in _events(rds, db, "db-instance"))
    eventually(lambda: any("Started cluster failover" in m for m in _events(rds, cid, "db-cluster")))
    time.sleep(1)  # far less than the 60 and 30 s the failovers hold
    now = rds.describe_db_instances(DBInstanceIdentifier=db)["DBInstances"][0]
    assert now["DBInstanceStatus"] == "rebooting" and now["AvailabilityZone"] == inst["AvailabilityZone"]
    assert not _answers(inst["Endpoint"]["Address"], inst["Endpoint"]["Port"])
    assert rds.describe_db_clusters(DBClusterIdentifier=cid)["DBClusters"][0]["Status"] == "failing-over"
    assert not _answers(cluster["Endpoint"], cluster["Port"])

    server.advance_clock("2m")  # past both
    after = wait_status(rds, db)
    assert after["AvailabilityZone"] == inst["SecondaryAvailabilityZone"]
    with pg_connect(after) as conn:
        assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]
    eventually(
        lambda: rds.describe_db_clusters(DBClusterIdentifier=cid)["DBClusters"][0]["Status"] == "available"
    )
    assert _answers(cluster["Endpoint"], cluster["Port"])
    members = rds.describe_db_clusters(DBClusterIdentifier=cid)["DBClusters"][0]["DBClusterMembers"]
    assert [m["DBInstanceIdentifier"] for m in members if m["IsClusterWriter"]] == [f"r-{cid}"]


def test_cache_cluster_creation_and_modification_take_aws_times(server, unique):
    ec = server.client("elasticache")
    cid = f"slow-{unique}"
    out = ec.create_cache_cluster(CacheClusterId=cid, Engine="redis", NumCacheNodes=1)["CacheCluster"]
    assert out["CacheClusterStatus"] == "creating"

    def describe() -> dict:
        return ec.describe_cache_clusters(CacheClusterId=cid, ShowCacheNodeInfo=True)["CacheClusters"][0]

    (node,) = describe()["CacheNodes"]
    with redis.Redis(node["Endpoint"]["Address"], node["Endpoint"]["Port"], socket_timeout=10) as r:
        assert r.ping()  # the engine serves ...
    time.sleep(QUIET)
    assert describe()["CacheClusterStatus"] == "creating"  # ... while the cluster is still created
    server.advance_clock("6m")
    eventually(lambda: describe()["CacheClusterStatus"] == "available")
    out = ec.modify_cache_cluster(CacheClusterId=cid, SnapshotRetentionLimit=0, ApplyImmediately=True)
    assert out["CacheCluster"]["CacheClusterStatus"] == "modifying"
    time.sleep(QUIET)
    assert describe()["CacheClusterStatus"] == "modifying"
    server.advance_clock("3m")
    eventually(lambda: describe()["CacheClusterStatus"] == "available")
    ec.delete_cache_cluster(CacheClusterId=cid)


def test_replication_group_failover_takes_aws_time(server, unique):
    ec = server.client("elasticache")
    gid = f"slowfo-{unique}"
    ec.create_replication_group(
        ReplicationGroupId=gid,
        ReplicationGroupDescription="d",
        NumCacheClusters=2,
        AutomaticFailoverEnabled=True,
        MultiAZEnabled=True,
    )
    time.sleep(QUIET)
    assert group(ec, gid)["Status"] == "creating"
    server.advance_clock("6m")
    eventually(lambda: group(ec, gid)["Status"] == "available")
    first, second = f"{gid}-001", f"{gid}-002"
    g = group(ec, gid)
    primary, replica = _member_client(g, first), _member_client(g, second)
    primary.set("k", "v")
    eventually(lambda: _in_sync(primary, replica))
    os.kill(_pid(primary), signal.SIGKILL)
    time.sleep(3 * QUIET)  # far more than the monitor needs to see the death and fail over ...
    assert roles(ec, gid)[first] == "primary"  # ... but the failover holds AWS's 30 s
    server.advance_clock("1m")
    eventually(lambda: roles(ec, gid)[second] == "primary", 60)
    ep = group(ec, gid)["NodeGroups"][0]["PrimaryEndpoint"]
    eventually(lambda: redis.Redis(ep["Address"], ep["Port"], decode_responses=True).get("k") == "v")
    eventually(lambda: group(ec, gid)["Status"] == "available")
    ec.delete_replication_group(ReplicationGroupId=gid)


def test_timings_setting_is_checked():
    for args, env in ((["--timings", "slow"], {}), ([], {"STRATA_TIMINGS": "slow"})):
        done = subprocess.run(
            [sys.executable, "-m", "strata.cli", "serve", "--port", "1", *args],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode != 0 and "slow" in done.stderr, done.stderr
