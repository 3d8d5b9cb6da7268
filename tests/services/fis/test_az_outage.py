"""An Availability Zone outage against RDS, as AWS's "AZ Availability: Power Interruption" scenario
builds it: aws:network:disrupt-connectivity cuts the zone's subnet off while
aws:rds:reboot-db-instances (forceFailover) moves a Multi-AZ instance and aws:rds:failover-db-cluster
an Aurora cluster whose writers are in that zone. While the zone is still cut, each serves again
through its same endpoint from the other zone; every write a client saw committed is there. The
longest gap between two acknowledged commits (the downtime a client saw) is printed. The cut severs
replication across it too: the standby rebuilt in the cut zone (and the Aurora reader the old writer
becomes) does not apply what the new primary commits until the experiment is stopped, then does."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from botocore.exceptions import ClientError

from strata.engines.nft import nft_usable
from tests.services.fis.test_experiments import DONE, wait_for
from tests.services.fis.test_templates import NONE, ROLE
from tests.services.rds.helpers import PASSWORD, USER, eventually, wait_status

pytestmark = pytest.mark.skipif(not nft_usable(), reason="needs nftables and root")
ZONE, OTHER = "us-east-1a", "us-east-1b"
QUIET = 2.0  # seconds a streaming standby needs far less than to apply a commit


def _position(c: Committer) -> str:
    with _connect(c.host, c.port) as conn:
        return str(conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0])


def _standbys(c: Committer, position: str) -> list[tuple[bool, bool]]:
    """For each streaming standby of the primary behind `c`'s endpoint: has it received (flushed)
    and applied (replayed) the WAL up to `position`? (A base backup being taken streams too, with
    no replay position: not a standby yet.)"""
    with _connect(c.host, c.port) as conn:  # the master user holds pg_monitor, as on RDS
        rows = conn.execute(
            "SELECT flush_lsn >= %s::pg_lsn, replay_lsn >= %s::pg_lsn FROM pg_stat_replication "
            "WHERE state = 'streaming' AND replay_lsn IS NOT NULL",
            (position, position),
        ).fetchall()
    return [(bool(r[0]), bool(r[1])) for r in rows]


def _held_back(c: Committer) -> bool:
    """A standby receives, but applies nothing of, a commit made now for QUIET seconds."""
    position = _position(c)
    time.sleep(QUIET)
    standbys = _standbys(c, position)
    return bool(standbys) and all(received and not applied for received, applied in standbys)


def _caught_up(c: Committer, position: str) -> bool:
    standbys = _standbys(c, position)
    return bool(standbys) and all(applied for _, applied in standbys)


def _connect(host: str, port: int) -> psycopg.Connection:
    # short timeouts: a cut endpoint drops packets, so only timeouts tell the client
    return psycopg.connect(
        host=host,
        port=port,
        user=USER,
        password=PASSWORD,
        dbname="app",
        connect_timeout=2,
        tcp_user_timeout=2000,
        autocommit=True,
    )


class Committer(threading.Thread):
    """Commits rows 1, 2, ... one at a time through an endpoint until stopped, reconnecting after
    errors; `acked` holds (row, monotonic time) of every COMMIT that succeeded."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(daemon=True)
        self.host, self.port = host, port
        self.acked: list[tuple[int, float]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        x, conn = 1, None
        while not self.halt.is_set():
            try:
                conn = conn or _connect(self.host, self.port)
                conn.execute("INSERT INTO t VALUES (%s)", (x,))
                self.acked.append((x, time.monotonic()))
            except psycopg.Error:
                conn = None
                self.halt.wait(0.05)
            x += 1

    def more_than(self, n: int) -> bool:
        return len(self.acked) > n

    def longest_gap(self) -> float:
        times = [t for _, t in self.acked]
        return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)

    def check_nothing_lost(self) -> None:
        self.halt.set()
        self.join(30)
        with _connect(self.host, self.port) as conn:
            present = {row[0] for row in conn.execute("SELECT x FROM t").fetchall()}
        lost = sorted({x for x, _ in self.acked} - present)
        assert not lost, f"acknowledged commits lost: {lost[:10]}"


def _template(subnet: str, instance: str, cluster: str) -> dict:
    def target(rtype: str, arn: str) -> dict:
        return {"resourceType": rtype, "resourceArns": [arn], "selectionMode": "ALL"}

    return {
        "description": "AZ power interruption",
        "roleArn": ROLE,
        "stopConditions": NONE,
        "targets": {
            "subnet": target("aws:ec2:subnet", subnet),
            "db": target("aws:rds:db", instance),
            "cluster": target("aws:rds:cluster", cluster),
        },
        "actions": {
            "cut": {
                "actionId": "aws:network:disrupt-connectivity",
                "parameters": {"duration": "PT10M", "scope": "all"},
                "targets": {"Subnets": "subnet"},
            },
            "reboot": {
                "actionId": "aws:rds:reboot-db-instances",
                "parameters": {"forceFailover": "true"},
                "targets": {"DBInstances": "db"},
            },
            "failover": {"actionId": "aws:rds:failover-db-cluster", "targets": {"Clusters": "cluster"}},
        },
    }


def test_az_outage_fails_rds_over_and_loses_no_acknowledged_write(strata_server, unique):
    rds, fis = strata_server.client("rds"), strata_server.client("fis")
    db, cid = f"maz-{unique}", f"aur-{unique}"
    writer, reader = f"w-{cid}", f"r-{cid}"
    login = {"MasterUsername": USER, "MasterUserPassword": PASSWORD}
    rds.create_db_instance(
        DBInstanceIdentifier=db,
        Engine="postgres",
        DBInstanceClass="db.t3.micro",
        AllocatedStorage=20,
        DBName="app",
        MultiAZ=True,
        AvailabilityZone=ZONE,
        BackupRetentionPeriod=0,
        **login,
    )
    cluster = rds.create_db_cluster(
        DBClusterIdentifier=cid, Engine="aurora-postgresql", DatabaseName="app", **login
    )["DBCluster"]
    for ident, zone in ((writer, ZONE), (reader, OTHER)):
        rds.create_db_instance(
            DBInstanceIdentifier=ident,
            DBClusterIdentifier=cid,
            Engine="aurora-postgresql",
            DBInstanceClass="db.r6g.large",
            AvailabilityZone=zone,
        )
        wait_status(rds, ident)
    inst = wait_status(rds, db)
    assert inst["AvailabilityZone"] == ZONE and inst["SecondaryAvailabilityZone"] != ZONE
    try:
        clients = [
            Committer(inst["Endpoint"]["Address"], inst["Endpoint"]["Port"]),
            Committer(cluster["Endpoint"], cluster["Port"]),
        ]
        for c in clients:
            with _connect(c.host, c.port) as conn:
                conn.execute("CREATE TABLE t (x int primary key)")
            c.start()
        for c in clients:
            eventually(lambda c=c: c.more_than(20))
        subnet = strata_server.client("ec2").describe_subnets(
            Filters=[{"Name": "availability-zone", "Values": [ZONE]}]
        )["Subnets"][0]["SubnetArn"]
        cluster_arn = rds.describe_db_clusters(DBClusterIdentifier=cid)["DBClusters"][0]["DBClusterArn"]
        tid = fis.create_experiment_template(**_template(subnet, inst["DBInstanceArn"], cluster_arn))[
            "experimentTemplate"
        ]["id"]
        exp_id = fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"]

        def moved() -> bool:
            inst_az = rds.describe_db_instances(DBInstanceIdentifier=db)["DBInstances"][0]["AvailabilityZone"]
            members = rds.describe_db_clusters(DBClusterIdentifier=cid)["DBClusters"][0]["DBClusterMembers"]
            return inst_az != ZONE and any(
                m["IsClusterWriter"] and m["DBInstanceIdentifier"] == reader for m in members
            )

        eventually(moved, 180, 0.2)
        marks = [len(c.acked) for c in clients]
        for c, mark in zip(clients, marks, strict=True):  # both serve again through their endpoints
            eventually(lambda c=c, mark=mark: c.more_than(mark + 20), 120)
        exp = fis.get_experiment(id=exp_id)["experiment"]
        assert exp["state"]["status"] == "running"  # ... while the zone is still cut off
        assert exp["actions"]["cut"]["state"]["status"] == "running"
        old = rds.describe_db_instances(DBInstanceIdentifier=writer)["DBInstances"][0]["Endpoint"]
        with pytest.raises(psycopg.OperationalError):  # the old writer, a reader in the cut zone
            _connect(old["Address"], old["Port"]).close()
        # The new standby (built in the cut zone) and the old writer, now a reader there, apply
        # nothing of what the primaries in the other zone commit while the cut lasts (PostgreSQL
        # streams over unix sockets, which Strata cannot cut: the WAL arrives, its replay is held)
        for c in clients:
            eventually(lambda c=c: _held_back(c), 180, 0.2)
        positions = [_position(c) for c in clients]
        fis.stop_experiment(id=exp_id)
        assert wait_for(fis, exp_id, DONE)["state"]["status"] == "stopped"
        for c, position in zip(clients, positions, strict=True):  # ... and all of it after
            eventually(lambda c=c, p=position: _caught_up(c, p), 120)
        for c in clients:
            c.check_nothing_lost()
        print(
            f"\nAZ outage: Multi-AZ instance longest gap {clients[0].longest_gap():.2f}s "
            f"({len(clients[0].acked)} commits), Aurora {clients[1].longest_gap():.2f}s "
            f"({len(clients[1].acked)} commits), none lost"
        )
    finally:  # the engines go with the instances (the emptied cluster runs none)
        for ident in (db, writer, reader):
            _delete(rds, ident)


def _delete(rds, ident: str) -> None:  # noqa: ANN001
    """Delete an instance once its state allows (a new standby may still be being built)."""

    def deleted() -> bool:
        try:
            rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True)
        except ClientError as e:
            if e.response["Error"]["Code"] == "InvalidDBInstanceState":
                return False
            if e.response["Error"]["Code"] != "DBInstanceNotFound":
                raise
        return True

    eventually(deleted, 120, 0.5)
