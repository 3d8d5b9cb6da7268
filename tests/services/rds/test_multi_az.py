"""Multi-AZ: a synchronous standby, forced failover through the same endpoint, nothing lost."""

from __future__ import annotations

import os
import signal
import threading
import uuid

import psycopg
import pytest

from strata.engines.process import pid_alive
from tests.services.rds.helpers import create_pg, eventually, pg_connect, wait_status

# Each test's instance, by name prefix: (MultiAZ)
INSTANCES = {"maz": True, "crash": True, "toggle": False, "mazload": True}


@pytest.fixture(scope="module")
def created(strata_server) -> dict[str, str]:  # noqa: ANN001
    """Every test's own instance, asked for at once (CreateDBInstance returns at once, as on AWS)
    so their engines are built side by side rather than one test after the other; each test
    waits for its own and deletes it. Names by prefix."""
    rds = strata_server.client("rds")
    suffix = uuid.uuid4().hex[:10]
    idents = {}
    for prefix, multi_az in INSTANCES.items():
        idents[prefix] = f"{prefix}-{suffix}"
        create_pg(rds, idents[prefix], wait=False, MultiAZ=multi_az, BackupRetentionPeriod=0)
    return idents


def test_forced_failover_keeps_every_committed_row(strata_server, created: dict[str, str]) -> None:
    rds = strata_server.client("rds")
    ident = created["maz"]
    inst = wait_status(rds, ident)
    assert inst["MultiAZ"] and inst["SecondaryAvailabilityZone"] != inst["AvailabilityZone"]
    with pg_connect(inst) as conn:
        conn.execute("CREATE TABLE payments (id int primary key)")
        for i in range(200):
            conn.execute("INSERT INTO payments VALUES (%s)", (i,))  # each one committed
    rds.reboot_db_instance(DBInstanceIdentifier=ident, ForceFailover=True)
    after = wait_status(rds, ident)
    assert after["Endpoint"] == inst["Endpoint"]
    assert after["AvailabilityZone"] == inst["SecondaryAvailabilityZone"]
    with pg_connect(after) as conn:
        assert conn.execute("SELECT count(*) FROM payments").fetchone() == (200,)
        conn.execute("INSERT INTO payments VALUES (1000)")
    events = [e["Message"] for e in rds.describe_events(SourceIdentifier=ident)["Events"]]
    assert any("failover completed" in m for m in events)

    # A new standby is built behind the scenes; a second failover works too.
    def standby_back() -> bool:
        rds.reboot_db_instance(DBInstanceIdentifier=ident, ForceFailover=True)
        return True

    eventually(standby_back, 120, 0.25)
    final = wait_status(rds, ident)
    assert final["AvailabilityZone"] == inst["AvailabilityZone"]
    with pg_connect(final) as conn:
        assert conn.execute("SELECT count(*) FROM payments").fetchone() == (201,)
    rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True)


def test_primary_crash_fails_over_by_itself(strata_server, created: dict[str, str]) -> None:
    """A fault that kills the primary engine: Strata's monitor promotes the standby."""
    rds = strata_server.client("rds")
    ident = created["crash"]
    inst = wait_status(rds, ident)
    nodes = sorted((strata_server.data_dir / "rds" / "instances" / ident).glob("*/postgres.pid"))
    postmasters = {int(p.read_text()) for p in nodes}
    with pg_connect(inst) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")
        primary_pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        # The backend's parent is the primary's postmaster; read it while the backend still lives.
        parent = int(open(f"/proc/{primary_pid}/stat").read().rsplit(")", 1)[1].split()[1])
    assert parent in postmasters
    victim = parent
    os.kill(victim, signal.SIGKILL)
    eventually(lambda: not pid_alive(victim), 30)

    def reads_through_endpoint() -> bool:
        with pg_connect(inst) as conn:
            return conn.execute("SELECT count(*) FROM t").fetchone() == (1,)

    eventually(reads_through_endpoint, 60, 0.2)
    after = wait_status(rds, ident)
    assert after["AvailabilityZone"] == inst["SecondaryAvailabilityZone"]
    with pg_connect(after) as conn:
        conn.execute("INSERT INTO t VALUES (2)")
    rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True)


def test_modify_multi_az_on_and_off(strata_server, created: dict[str, str]) -> None:
    rds = strata_server.client("rds")
    ident = created["toggle"]
    inst = wait_status(rds, ident)
    assert not inst["MultiAZ"] and "SecondaryAvailabilityZone" not in inst
    rds.modify_db_instance(DBInstanceIdentifier=ident, MultiAZ=True, ApplyImmediately=True)
    on = wait_status(rds, ident)
    assert on["MultiAZ"] and on["SecondaryAvailabilityZone"] != on["AvailabilityZone"]
    with pg_connect(on) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")
        # Synchronous replication: the standby is listed as the synchronous one.
        assert conn.execute("SELECT sync_state FROM pg_stat_replication").fetchall() == [("sync",)]
    rds.reboot_db_instance(DBInstanceIdentifier=ident, ForceFailover=True)
    moved = wait_status(rds, ident)
    assert moved["AvailabilityZone"] == on["SecondaryAvailabilityZone"]
    rds.modify_db_instance(DBInstanceIdentifier=ident, MultiAZ=False, ApplyImmediately=True)
    off = wait_status(rds, ident)
    assert not off["MultiAZ"] and "SecondaryAvailabilityZone" not in off
    with pg_connect(off) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM pg_stat_replication").fetchone() == (0,)
    rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True)


class Committer(threading.Thread):
    """Inserts x = 1, 2, ... one autocommitted row at a time through the endpoint until stopped,
    reconnecting after errors; `acked` lists the rows whose COMMIT succeeded."""

    def __init__(self, inst: dict) -> None:
        super().__init__(daemon=True)
        self.inst = inst
        self.acked: list[int] = []
        self.halt = threading.Event()

    def run(self) -> None:
        x, conn = 1, None
        while not self.halt.is_set():
            try:
                conn = conn or pg_connect(self.inst, options="-c statement_timeout=60000")
                conn.execute("INSERT INTO load VALUES (%s)", (x,))
                self.acked.append(x)
            except psycopg.Error:
                conn = None
                self.halt.wait(0.05)
            x += 1

    def stop(self) -> None:
        self.halt.set()
        self.join(90)


def _postmasters(strata_server, ident: str) -> dict[str, int]:  # noqa: ANN001
    nodes = (strata_server.data_dir / "rds" / "instances" / ident).glob("*/postgres.pid")
    return {p.parent.name: int(p.read_text()) for p in nodes}


def test_killed_standby_and_primary_under_load_lose_no_commit(strata_server, created: dict[str, str]) -> None:
    """kill -9 of the standby while clients commit: it is restarted and commits, which wait for
    it, go on; kill -9 of the primary: the standby takes over and has every acknowledged commit."""
    rds = strata_server.client("rds")
    ident = created["mazload"]
    inst = wait_status(rds, ident)
    with pg_connect(inst) as conn:
        conn.execute("CREATE TABLE load (x int primary key)")
        primary_pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        primary = int(open(f"/proc/{primary_pid}/stat").read().rsplit(")", 1)[1].split()[1])
    (standby,) = [pid for pid in _postmasters(strata_server, ident).values() if pid != primary]
    writer = Committer(inst)
    writer.start()
    try:
        eventually(lambda: len(writer.acked) > 50, 60)
        os.kill(standby, signal.SIGKILL)
        eventually(lambda: not pid_alive(standby), 30)
        before = len(writer.acked)
        eventually(lambda: len(writer.acked) > before + 50, 120)  # commits go on: the standby is back

        def in_sync() -> bool:
            with pg_connect(inst) as conn:
                rows = conn.execute("SELECT sync_state FROM pg_stat_replication").fetchall()
                return rows == [("sync",)]

        eventually(in_sync, 60)
        os.kill(primary, signal.SIGKILL)
        eventually(lambda: not pid_alive(primary), 30)
        before = len(writer.acked)
        eventually(lambda: len(writer.acked) > before + 50, 120)  # through the endpoint, on the standby
    finally:
        writer.stop()
    after = wait_status(rds, ident)
    assert after["AvailabilityZone"] == inst["SecondaryAvailabilityZone"]
    with pg_connect(after) as conn:
        present = {row[0] for row in conn.execute("SELECT x FROM load").fetchall()}
    lost = sorted(set(writer.acked) - present)
    assert not lost, f"{len(lost)} acknowledged commits lost, e.g. {lost[:10]}"
    rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True)
