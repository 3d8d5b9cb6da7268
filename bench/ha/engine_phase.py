"""The engine host's part of issue 22's proof (bench/ha_proof.py): an RDS PostgreSQL instance and an
ElastiCache Redis cluster made through the virtual address (any gateway; the engine host runs
them), a client inserting rows through the engine address, the engine host's whole node killed,
and every acknowledged row read back from the engine the new host restarted.

The engine address (configs.Topology.engine_ip) is on the engine host's eth0: a client on the
bridge reaches the engines there wherever they run. When the node dies its address would stay on
its interface (the namespace outlives its processes), so the harness takes the link down and the
address off, as a dead machine's would vanish.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
import redis
from configs import PG_PORT, STRATA_PORT, Node, Topology
from pool_phase import SideLoad, made

DB = "ha-proof-db"
CACHE = "ha-proof-cache"
USER = "master"
PASSWORD = "ha-proof-password"  # the instance is reachable from the bridge only
EXIT_FENCED = 75  # a gateway that lost its engine host lock exits with this (README: Fencing)


@dataclass
class Engines:
    db: tuple[str, int]  # the instance's endpoint (address, port)
    cache: tuple[str, int] | None  # the cluster's node endpoint


def address_holder(cluster: Any, gateways: list[Node]) -> Node | None:
    """The gateway whose eth0 holds the engine address: the engine host claims it as it takes the
    engines over (its /_strata/health says so too, but the admin API answers loopback clients
    only, and a gateway here listens on its bridge address)."""
    t = cluster.t
    for n in gateways:
        out = cluster.sh("ip", "-n", t.netns(n), "-o", "-4", "addr", "show", "dev", "eth0", check=False)
        if f" {t.engine_ip}/" in out.stdout:
            return n
    return None


def advertised_host(t: Topology, superuser: str) -> Node | None:
    """The gateway whose URL the engine host advertised in PostgreSQL (the last host's: it may
    be dead until the next advertises itself)."""
    dsn = f"postgresql://postgres:{superuser}@{t.vip}:{PG_PORT}/strata"
    try:
        with psycopg.connect(dsn, connect_timeout=3) as c:
            row = c.execute("SELECT body FROM engine_host.documents WHERE kind = 'engines'").fetchone()
    except psycopg.Error:
        return None
    if not row:
        return None
    body = row[0] if isinstance(row[0], dict) else json.loads(row[0])
    url = body["url"]
    return next((n for n in t.gateways if url == f"http://{n.ip}:{STRATA_PORT}"), None)


def drop_address(cluster: Any, node: Node) -> None:
    """A dead machine's addresses go with it: the engine address and its pool off the killed
    node's eth0 (its namespace outlives its processes; a gateway killed with -9 does not give
    them up)."""
    t = cluster.t
    for address in t.engine_addresses:
        cluster.sh("ip", "-n", t.netns(node), "addr", "del", f"{address}/32", "dev", "eth0", check=False)


def create(t: Topology, client: Callable[..., Any], say: Callable[[str], None], cache: bool) -> Engines:
    """The smallest RDS PostgreSQL instance (and a one-node Redis cluster) through the virtual
    address, in a security group that lets the bridge's subnet in, waited for until available."""
    ec2, rds = client("ec2"), client("rds")
    made(
        lambda: ec2.create_security_group(GroupName="ha-proof", Description="the proof's clients"),
        "InvalidGroup.Duplicate",
    )
    sg = ec2.describe_security_groups(GroupNames=["ha-proof"])["SecurityGroups"][0]["GroupId"]
    made(
        lambda: ec2.authorize_security_group_ingress(
            GroupId=sg, IpProtocol="tcp", FromPort=0, ToPort=65535, CidrIp=f"{t.subnet}.0/24"
        ),
        "InvalidPermission.Duplicate",
    )
    made(
        lambda: rds.create_db_instance(
            DBInstanceIdentifier=DB,
            Engine="postgres",
            DBInstanceClass="db.t3.micro",
            AllocatedStorage=20,
            MasterUsername=USER,
            MasterUserPassword=PASSWORD,
            DBName="app",
            VpcSecurityGroupIds=[sg],
        ),
        "DBInstanceAlreadyExists",
    )
    ec = client("elasticache")
    if cache:
        made(
            lambda: ec.create_cache_cluster(
                CacheClusterId=CACHE, Engine="redis", CacheNodeType="cache.t3.micro", SecurityGroupIds=[sg]
            ),
            "CacheClusterAlreadyExists",
        )
    deadline = time.monotonic() + 300
    while (inst := rds.describe_db_instances(DBInstanceIdentifier=DB)["DBInstances"][0])[
        "DBInstanceStatus"
    ] != "available":
        if inst["DBInstanceStatus"] == "failed" or time.monotonic() > deadline:
            raise SystemExit(f"RDS instance {DB}: {inst['DBInstanceStatus']}")
        time.sleep(1)
    db = (inst["Endpoint"]["Address"], int(inst["Endpoint"]["Port"]))
    node = None
    if cache:
        while (
            c := ec.describe_cache_clusters(CacheClusterId=CACHE, ShowCacheNodeInfo=True)["CacheClusters"][0]
        )["CacheClusterStatus"] != "available":
            if time.monotonic() > deadline:
                raise SystemExit(f"ElastiCache cluster {CACHE}: {c['CacheClusterStatus']}")
            time.sleep(1)
        ep = c["CacheNodes"][0]["Endpoint"]
        node = (ep["Address"], int(ep["Port"]))
    with connect(db) as c:
        c.execute("CREATE TABLE proof (id bigint PRIMARY KEY)")
    say(
        f"engines: RDS PostgreSQL {DB} at {db[0]}:{db[1]}"
        + (f", ElastiCache Redis {CACHE} at {node[0]}:{node[1]}" if node else "")
        + f" (the engine address is {t.engine_ip})"
    )
    return Engines(db, node)


def connect(db: tuple[str, int]) -> psycopg.Connection:
    """Autocommit, and TCP settings that notice a vanished peer in seconds: a connection to the
    dead host fails once the new one answers for the address (it resets what it does not know),
    or after 5 s of unacknowledged data."""
    return psycopg.connect(
        host=db[0],
        port=db[1],
        user=USER,
        password=PASSWORD,
        dbname="app",
        autocommit=True,
        connect_timeout=3,
        keepalives=1,
        keepalives_idle=2,
        keepalives_interval=1,
        keepalives_count=3,
        tcp_user_timeout=5000,
    )


@dataclass
class DbLoad(SideLoad):
    """One thread inserting rows into the instance through its endpoint, each acknowledged commit
    recorded, reconnecting after every error (each failed attempt recorded by type)."""

    db: tuple[str, int]
    now: Callable[[], float]
    acked: list[int] = field(default_factory=list)
    tried: int = 0

    def _run(self) -> None:
        conn: psycopg.Connection | None = None
        delay = 0.05
        while not self.stop.is_set():
            self.tried += 1
            row = self.tried
            start = self.now()
            try:
                if conn is None:
                    conn = connect(self.db)
                conn.execute("INSERT INTO proof (id) VALUES (%s)", (row,))
                self.acked.append(row)
                self.acks.append((start, self.now()))
                delay = 0.05
            except psycopg.Error as e:
                self.failures.append((start, self.now(), type(e).__name__, True, "db_insert"))
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)  # (failed attempts under 1 s apart make one window)
        if conn is not None:
            conn.close()

    def verify(self, say: Callable[[str], None]) -> int:
        """Every acknowledged row read back; the number missing."""
        with connect(self.db) as c:
            have = {r[0] for r in c.execute("SELECT id FROM proof").fetchall()}
        lost = [r for r in self.acked if r not in have]
        extra = len(have) - (len(self.acked) - len(lost))
        say(
            f"verify: {len(self.acked)} acknowledged RDS rows read back, {len(lost)} lost"
            f" ({extra} rows whose commit was not acknowledged are there too)"
        )
        return len(lost)


class Supervisor:
    """Restarts a gateway that exits by itself, as systemd's Restart=always would (README: a host
    that loses its lock's connection fences itself and exits with status 75); the ones the proof
    kills are restarted by the proof."""

    def __init__(
        self, cluster: Any, say: Callable[[str], None], now: Callable[[], float], events: list
    ) -> None:
        self.cluster, self.say, self.now, self.events = cluster, say, now, events
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        c = self.cluster
        streak: dict[str, int] = {}  # exits by gateway and status
        while not self.stop.wait(1.0):  # systemd's RestartSec, roughly
            for n in c.t.gateways:
                p = c.procs.get(n.name)
                if p is None or p.poll() is None:
                    continue
                if p.returncode <= 0:  # killed by the proof (it restarts those itself)
                    streak.pop(n.name, None)
                    continue
                key = f"{n.name}:{p.returncode}"
                streak[key] = streak.get(key, 0) + 1
                if streak[key] in (1, 5, 20):  # the first, and a few after (no flood)
                    tail = " | ".join(c.log_tail(n.name, 2).splitlines())[-140:]
                    again = f" (its exit number {streak[key]} with this status)" if streak[key] > 1 else ""
                    self.events.append(
                        (
                            self.now(),
                            f"gateway {n.name} exited with status {p.returncode}, restarted{again}: {tail}",
                        )
                    )
                    self.say(self.events[-1][1])
                c.start(n, c.gateway_cmd(n), env=c.gateway_env)


def answers_db(db: tuple[str, int]) -> bool:
    try:
        with connect(db) as c:
            return c.execute("SELECT 1").fetchone() == (1,)
    except psycopg.Error:
        return False


def answers_cache(cache: tuple[str, int]) -> bool:
    try:
        return bool(redis.Redis(cache[0], cache[1], socket_timeout=2, socket_connect_timeout=2).ping())
    except (redis.RedisError, OSError):
        return False


def kill_engine_host(
    cluster: Any,
    engines: Engines,
    events: list,
    say: Callable[[str], None],
    now: Callable[[], float],
    rejoin: bool,
    more: dict[str, Callable[[], bool]] | None = None,
) -> tuple[Node, dict[str, float]]:
    """Every process of the engine host's node killed (its engines with it), its cable pulled and
    the engine addresses gone with it; then the time until another gateway is the host, until the
    instance answers at its endpoint again, until the cache does and each of `more` (what answers
    on pool addresses) passes. With `rejoin` the node's gateway is started again (it forwards:
    the new host keeps the engines)."""
    t = cluster.t
    gateways = list(t.gateways)
    host = wait_until(
        lambda: (h := advertised_host(t, cluster.keys.superuser)) and address_holder(cluster, [h]),
        "an engine host holding the engine address",
        120,
    )
    ns = t.netns(host)
    began = time.monotonic()
    events.append((now(), f"kill -9 engine host node {host.name} (gateway and engines; cable pulled)"))
    cluster.kill_node(host)
    cluster.sh("ip", "-n", ns, "link", "set", "eth0", "down")
    drop_address(cluster, host)
    cluster.procs[host.name].wait(timeout=10)
    say(events[-1][1])
    others = [n for n in gateways if n != host]
    took: dict[str, float] = {}
    pending = {
        "another gateway holds the engine address": lambda: address_holder(cluster, others) is not None,
        "the RDS instance answers at its endpoint": lambda: answers_db(engines.db),
    }
    if engines.cache:
        pending["the Redis cluster answers at its endpoint"] = lambda: answers_cache(engines.cache)
    pending.update(more or {})
    lock = threading.Lock()

    def watch(what: str, check: Callable[[], bool]) -> None:
        # each check polled by a thread of its own: one waiting out its timeout on a dead
        # address does not delay the others' times
        while time.monotonic() - began < 240 and not check():
            time.sleep(0.2)
        if time.monotonic() - began < 240:
            with lock:
                took[what] = time.monotonic() - began
                new = address_holder(cluster, others)
                events.append((now(), f"{what} ({new and new.name}), {took[what]:.1f} s after the kill"))
                say(events[-1][1])

    watchers = [threading.Thread(target=watch, args=item, daemon=True) for item in pending.items()]
    for w in watchers:
        w.start()
    for w in watchers:
        w.join()
    if never := [what for what in pending if what not in took]:
        raise SystemExit(f"after the engine host's kill, never: {', '.join(never)}")
    if rejoin:
        cluster.sh("ip", "-n", ns, "link", "set", "eth0", "up")
        cluster.start(host, cluster.gateway_cmd(host), env=cluster.gateway_env)
        events.append((now(), f"restart gateway {host.name} (it forwards)"))
        say(events[-1][1])
    return host, took


def wait_until(check: Callable[[], Any], what: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.5)
    raise SystemExit(f"timed out waiting for {what}")
