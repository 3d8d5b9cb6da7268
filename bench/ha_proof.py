"""Issue 22's proof of several gateways: kill -9 a gateway, then the HAProxy holding the virtual
address, then the PostgreSQL leader, under load, and lose no acknowledged write.

    sudo .venv/bin/python bench/ha_proof.py [--threads 6] [--steady 20] [--gap 20] [--after 40]
                                            [--front-kill haproxy|node] [--no-dynamodb]
                                            [--no-rejoin] [--no-engines] [--no-cache] [--pool 5]
                                            [--source DIR] [--keep]

Everything runs on this machine, each node in its own network namespace on one bridge
(bench/ha/configs.py): a 3-node etcd, 2 PostgreSQL nodes under Patroni (synchronous replication),
two HAProxy nodes (PostgreSQL: the Patroni leader by its /primary check; Strata: round robin over
the gateways) sharing a virtual address by keepalived (VRRP; clients and gateways use only that
address), and 3 `strata serve --metadata postgresql://... --blob-dir DIR` gateways sharing one blob
directory. The Debian packages are installed when missing (bench/ha/install.sh).

Timeline: a steady phase (CPU per request per gateway from /proc and HAProxy's per-server response
counts), a probe of PostgreSQL statements per operation (pg_stat_statements, one operation type at
a time, sequential), then the mixed load again: gw2 is killed with SIGKILL; `--gap` seconds later
the HAProxy (master and worker) of the node holding the virtual address (its keepalived finds it
dead within a second and gives the address up; the other node takes it and announces it by
gratuitous ARP; the time the address took to move is printed; --front-kill node kills the whole
node instead, and pulls its cable); `--gap` seconds later every process
of the PostgreSQL leader's node (Patroni and PostgreSQL: the node dies, its leader key expires
after the TTL, the synchronous standby is promoted). With --rejoin (default) the dead come back:
the HAProxy 5 s after the address moved (its node stays the backup: nopreempt), and 5 s after the
failover the old leader's Patroni (it rejoins as the synchronous standby, pg_rewind if needed) and
the killed gateway.

The engine host (bench/ha/engine_phase.py): the gateways run with `--engine-address
<subnet>.50/eth0` and `--advertise-url http://<own address>:4566`; an RDS PostgreSQL instance
(db.t3.micro) and an ElastiCache Redis cluster are made through the virtual address (whichever
gateway gets the request forwards it to the engine host), in a security group that lets the
bridge's subnet in. During the kills one more client inserts rows into the instance through the
engine address (psycopg, autocommit, reconnecting after each error; every acknowledged commit
recorded). A gateway that exits by itself (the engine host fences itself, status 75, when it
cannot get its lock back within 24 s of its last heartbeat, or another gateway took the engines
over) is restarted a second later, as systemd's Restart=always would. `--gap` seconds after the leader's kill every process
of the engine host's node (its gateway and engines) is killed, its cable pulled and the engine
address taken off it (a dead machine's address goes with it); printed: the time until another
gateway holds the address, until the instance and the cluster answer at their endpoints again,
and the instance's error windows; at the end every acknowledged row is read back.

The engine address pool (bench/ha/pool_phase.py; `--pool N`, default 5: the gateways get
`--engine-address <subnet>.50-<subnet>.5N/eth0`; 0 leaves it out): a Redis replication group (a
primary and a replica) whose per-node and reader endpoints are pool addresses, and an EFS file
system whose mount target's IpAddress is one. During the kills a Redis client (redis-py, on the
bridge) SETs keys on the primary's node endpoint and GETs older ones through the reader endpoint,
and an NFS client (libnfs' nfs-cp, NFSv4) writes small files through the mount target; after the
engine host's node is killed the time until each answers again on its pool address is printed,
DescribeReplicationGroups and DescribeMountTargets must show the same endpoints, and every
acknowledged key and file is read back (a lost key is reported with how long before the kill it
was acknowledged: AOF everysec may lose the last second; earlier fails the proof).

Clients (boto3 through the virtual address, no botocore retries) retry an operation themselves until it is
acknowledged, recording each failed attempt by code; a failure that AWS's SDKs would not retry
counts as a violation. At the end every acknowledged write is read back (S3 bytes by MD5,
DynamoDB items and counters with ConsistentRead). Error windows: failed attempts of all threads
merged when less than a second apart; a window's length is from its first failed attempt's start
to the end of its last. Stalls: stretches of over a second in which no operation was acknowledged
(a gateway waiting for PostgreSQL answers late rather than with an error). Round trips per
operation: pg_stat_statements' data statements plus BEGIN and COMMIT per write transaction.

One run (2026-12-07, main 53b6a70 with issue 22's S3, DynamoDB and shared-state work; 2-core
machine, load average 2.3): 530 operations/s steady through HAProxy with 6 client threads; gateway
CPU 0.9 ms per request, the PostgreSQL leader node 0.45 ms per operation, HAProxy 0.37 ms, the
load generator half a core; gateway kill: one error window of 0.03 s (3 ConnectionClosedError);
leader kill: one of 17 s (1 503 ServiceUnavailable; no operation acknowledged for 17.3 s = the 15 s
TTL and the promotion); nothing lost (13,411 objects, 8,863 items, 5,756 counter increments).
With two HAProxies under keepalived (2026-12-07, load average 4.8 from other work: 145
operations/s): the HAProxy holding the address killed, the address on the other node 0.8 s
later; one error window of 0.19 s (10 EndpointConnectionError, 2 ConnectionClosedError) and 1.25 s
without an acknowledgement; gateway kill 0.11 s (4), leader kill 17.1 s (3 503); nothing lost
(11,989 operations; 2,885 objects, 1,909 items, 1,243 counter increments read back). Again at load
11.6: moved in 1.5 s, a window of 0.9 s (23 EndpointConnectionError, 6 ConnectionClosedError), 1.7 s
without an acknowledgement; nothing lost (15,379 operations; 4,126 objects, 2,657 items). With
--front-kill node (HAProxy, keepalived and the cable; a shorter run): the address moved 2.8 s
later (three missed advertisements), one error window of 3.25 s (6 ConnectionClosedError, 6
ConnectTimeoutError); nothing lost (1,735 objects, 1,188 items, 616 increments).
With the engine host's phase (2026-12-07, branch h/proof22 on h/host22; load average 6.4 from
other work, 152 operations/s steady; --steady 10 --gap 20 --after 30): 21,416 rows inserted into
the RDS instance through the engine address during the kills, all read back (and 2 whose commit
was not acknowledged). The engine host then fenced itself (exit 75) whenever its lock's
PostgreSQL connection failed (it keeps its engines across a reconnect since), so the HAProxy kill and the leader kill moved the engines too: RDS error
windows of 6.3 s (HAProxy) and 24.5 s (leader: no new host before the promotion, then the
engines' restart); the gateway kill 4.8 s (gw2 was the first host: kill -9, taken over at once
by gw3). The engine host's node killed (cable
pulled): another gateway held the engine address, and the Redis cluster and the instance answered
there, 16.1 and 16.9 s later (HAProxy ends the dead gateway's PostgreSQL sessions after ~11 s of
unanswered keepalives, then the 2 s grace and the engines' start); RDS error window 16.4 s;
S3/DynamoDB: one window of 4.1 s (6 ConnectionClosedError: requests in flight on the dead gateway,
cut when HAProxy marked it down), no stall over 2 s. The leader's kill now also gets HAProxy's own
503 (85): the one gateway left up (the host fenced itself, the killed one was not back) missed
its HTTP check while PostgreSQL failed over. Nothing lost (6,401 objects, 4,186 items).
Again once the host kept its engines across PostgreSQL reconnects (2026-12-07, branch h/pgfo22;
load average 12 to 21; --steady 10 --gap 20 --after 30): no RDS error at the HAProxy or the
leader kill (the engines stayed on their host); the host's node killed: the address moved 28.1 s
later, Redis and RDS answered at 30.9 and 31.9 s (the new host waits out a silent host's 24 s);
18,336 RDS rows, 4,155 objects, 2,678 items read back, nothing lost.
With the pool (2026-12-07, three runs at load average 34, 31 and 8.5; --threads 4 --steady 5
--gap 15 --after 20): the host's node killed, the engine address moved after 27.3 s; the EFS
mount target served a file at its pool address at 30.1-31.0 s, the Redis primary's node endpoint
answered at 31.3-32.9 s, the reader endpoint at 31.5-33.6 s (RDS 33.0-34.2 s); Describe*
unchanged; when the gateway killed first was the host: 7.8 s (NFS), 9.5 s (Redis) without an
acknowledgement; 5,315-6,318 Redis keys and 425-451 NFS files acknowledged, all read back.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import psycopg
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench" / "ha"))

from configs import (  # noqa: E402
    PG_PORT,
    STRATA_PORT,
    Node,
    Secrets,
    Topology,
    etcd_command,
    gateway_command,
    haproxy_command,
    haproxy_config,
    keepalived_command,
    keepalived_config,
    patroni_config,
    topology,
)
from engine_phase import DbLoad, Engines, Supervisor, drop_address, kill_engine_host  # noqa: E402
from engine_phase import create as create_engines  # noqa: E402
from pool_phase import (  # noqa: E402
    CacheLoad,
    FileLoad,
    PoolEndpoints,
    SideLoad,
    recovery_checks,
    same_endpoints,
    unmount_under,
)
from pool_phase import create as create_pool  # noqa: E402

RETRYABLE_CODES = {
    "SlowDown",
    "ServiceUnavailable",
    "InternalError",
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TransactionConflictException",
}
BUCKET = "ha-proof"
TABLE = "ha-proof"
T0 = time.monotonic()


def now() -> float:
    return time.monotonic() - T0


def say(msg: str) -> None:
    print(f"[{now():7.1f}s] {msg}", flush=True)


# -- processes and namespaces ------------------------------------------------------------------


class Cluster:
    """Starts the nodes' processes in their namespaces and takes everything down again."""

    def __init__(self, t: Topology, keys: Secrets) -> None:
        self.t = t
        self.keys = keys
        self.procs: dict[str, subprocess.Popen] = {}
        self.gateway_cmd: Any = None  # Node -> the gateway's command line (set by bring_up)
        self.gateway_env: dict[str, str] = {}

    def sh(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, check=check, capture_output=True, text=True)

    def teardown(self) -> None:
        """Kill every process of every namespace of this prefix, delete them and the bridge."""
        for node in self.t.nodes:
            ns = self.t.netns(node)
            pids = self.sh("ip", "netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
            p.wait()
        unmount_under(self.t.run_dir)  # EFS volumes a killed engine host left mounted
        for node in self.t.nodes:
            self.sh("ip", "netns", "del", self.t.netns(node), check=False)
            self.sh("ip", "link", "del", self.t.veth(node), check=False)
        self.sh("ip", "link", "del", self.t.bridge, check=False)

    def network(self) -> None:
        t = self.t
        self.sh("ip", "link", "add", t.bridge, "type", "bridge")
        self.sh("ip", "addr", "add", f"{t.host_ip}/24", "dev", t.bridge)
        self.sh("ip", "link", "set", t.bridge, "up")
        for node in t.nodes:
            ns, veth = t.netns(node), t.veth(node)
            self.sh("ip", "netns", "add", ns)
            self.sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            self.sh("ip", "link", "set", veth, "master", t.bridge, "up")
            self.sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{node.ip}/24", "dev", "eth0")
            self.sh("ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up")
            self.sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")

    def start(
        self, node: Node, cmd: list[str], *, user: str = "", env: dict | None = None, name: str = ""
    ) -> None:
        """Run `cmd` in the node's namespace; `name` (default the node's) keys the process and its
        log when a node runs more than one (HAProxy and keepalived)."""
        name = name or node.name
        prefix = ["ip", "netns", "exec", self.t.netns(node)]
        if user:  # PostgreSQL refuses to run as root
            prefix += ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"]
        if (before := self.procs.get(name)) is not None:
            before.poll()  # a killed one being restarted: reaped
        log = open(self.t.run_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child holds it
        self.procs[name] = subprocess.Popen(
            prefix + cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=self.t.run_dir,
            start_new_session=True,
        )
        log.close()

    def kill_node(self, node: Node) -> None:
        """The machine dies: SIGKILL to every process of its namespace."""
        for pid in self.sh("ip", "netns", "pids", self.t.netns(node), check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass

    def kill_haproxy(self, node: Node) -> None:
        """HAProxy dies on the node (master and worker, SIGKILL); its keepalived goes on. The
        master is reaped at once: a zombie still matches keepalived's pgrep check."""
        ns_pids = self.sh("ip", "netns", "pids", self.t.netns(node), check=False).stdout.split()
        for pid in ns_pids:
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "haproxy":
                    os.kill(int(pid), signal.SIGKILL)
            except (FileNotFoundError, ProcessLookupError):
                pass
        self.procs[node.name].wait(timeout=10)

    def vip_holder(self) -> Node | None:
        """The HAProxy node whose interface has the virtual address now (None while it moves)."""
        for node in self.t.lbs:
            out = self.sh(
                "ip", "-n", self.t.netns(node), "-o", "-4", "addr", "show", "dev", "eth0", check=False
            )
            if f" {self.t.vip}/" in out.stdout:
                return node
        return None

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.t.run_dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def wait_for(what: str, check: Any, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - not up yet
            last = e
        time.sleep(0.5)
    raise SystemExit(f"timed out waiting for {what}: {last}")


def http_status(ip: str, port: int, path: str) -> int:
    """The status of a plain HTTP GET (Patroni's REST API), 0 when unreachable."""
    try:
        with socket.create_connection((ip, port), timeout=2) as s:
            s.sendall(f"GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n".encode())
            head = s.recv(64).decode(errors="replace")
        return int(head.split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def haproxy_stats(t: Topology, node: Node) -> dict[tuple[str, str], dict[str, str]]:
    """One HAProxy's `show stat`, by (proxy, server)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(t.home(node) / "haproxy.sock"))
        s.sendall(b"show stat\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    lines = data.decode().splitlines()
    header = lines[0].lstrip("# ").split(",")
    out = {}
    for line in lines[1:]:
        if line:
            row = dict(zip(header, line.split(","), strict=False))
            out[(row["pxname"], row["svname"])] = row
    return out


def gateway_responses(t: Topology) -> dict[str, int]:
    """Responses per gateway, summed over both HAProxies (the backup's are those of its checks'
    era only: none, unless the virtual address moved)."""
    out = dict.fromkeys((n.name for n in t.gateways), 0)
    for lb in t.lbs:
        try:
            stats = haproxy_stats(t, lb)
        except OSError:  # a dead HAProxy
            continue
        for n in t.gateways:
            row = stats.get(("gateways", n.name), {})
            out[n.name] += sum(int(row.get(k) or 0) for k in ("hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx"))
    return out


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def gateway_pid(cluster: Cluster, node: Node) -> int:
    return cluster.procs[node.name].pid  # `ip netns exec` execs the command: the same process


# -- bringing the cluster up -------------------------------------------------------------------


def start_patroni(cluster: Cluster, n: Node) -> None:
    cluster.start(n, ["patroni", str(cluster.t.run_dir / n.name / "patroni.yml")], user="postgres")


def bring_up(cluster: Cluster, python: str, source: Path) -> None:
    t, keys = cluster.t, cluster.keys
    cluster.network()
    say("network: bridge and namespaces up")
    for n in t.etcd:
        cluster.start(n, etcd_command(t, n))
    endpoints = ",".join(f"http://{n.ip}:2379" for n in t.etcd)
    wait_for(
        "etcd",
        lambda: (
            cluster.sh("etcdctl", f"--endpoints={endpoints}", "endpoint", "health", check=False).returncode
            == 0
        ),
    )
    say("etcd: 3 members healthy")
    for i, n in enumerate(t.pg):
        home = t.run_dir / n.name
        home.mkdir(mode=0o700)
        (home / "patroni.yml").write_text(patroni_config(t, n, keys))
        shutil.chown(home, "postgres", "postgres")
        shutil.chown(home / "patroni.yml", "postgres", "postgres")
        start_patroni(cluster, n)
        if i == 0:  # the first bootstraps the cluster; the second is cloned from it
            wait_for(
                "the first Patroni node to lead", lambda n=n: http_status(n.ip, 8008, "/primary") == 200, 120
            )
            say(f"patroni: {n.name} leads")
    wait_for(
        "a synchronous standby",
        lambda: any(http_status(n.ip, 8008, "/sync") == 200 for n in t.pg),
        120,
    )
    say("patroni: synchronous standby streaming")
    for n in t.lbs:  # HAProxy on both, keepalived giving the virtual address to one
        t.home(n).mkdir()
        (t.home(n) / "haproxy.cfg").write_text(haproxy_config(t, n))
        (t.home(n) / "keepalived.conf").write_text(keepalived_config(t, n))
        cluster.start(n, haproxy_command(t, n))
        wait_for(f"{n.name}'s HAProxy", lambda n=n: haproxy_stats(t, n))
        cluster.start(n, keepalived_command(t, n), name=f"{n.name}-keepalived")
    holder = wait_for("keepalived to give the virtual address to a node", cluster.vip_holder)
    say(f"keepalived: {t.vip} on {holder.name} ({', '.join(n.name for n in t.lbs)} run HAProxy)")
    admin = f"postgresql://postgres:{keys.superuser}@{t.vip}:{PG_PORT}/postgres"
    with wait_for(
        "PostgreSQL through HAProxy", lambda: psycopg.connect(admin, autocommit=True, connect_timeout=2)
    ) as c:
        c.execute(f"CREATE ROLE strata LOGIN PASSWORD '{keys.strata_db}'")
        c.execute("CREATE DATABASE strata OWNER strata TEMPLATE template0 LOCALE 'C' ENCODING 'UTF8'")
    with psycopg.connect(admin.rsplit("/", 1)[0] + "/strata", autocommit=True) as c:
        c.execute("CREATE EXTENSION pg_stat_statements")
    say("haproxy: PostgreSQL leader reachable through the virtual address; database strata made")
    t.blob_dir.mkdir()
    env = {
        "STRATA_ACCESS_KEY_ID": keys.access_key,
        "STRATA_SECRET_ACCESS_KEY": keys.secret_key,
        # this tree's strata, not the one the virtualenv was installed from
        "PYTHONPATH": str(source),
    }
    cluster.gateway_cmd = lambda n: gateway_command(t, n, keys, python)
    cluster.gateway_env = env
    for n in t.gateways:
        cluster.start(n, cluster.gateway_cmd(n), env=env)
    for n in t.gateways:
        wait_gateway(cluster, n)
    wait_for(
        "both HAProxies to see every gateway up",
        lambda: all(
            haproxy_stats(t, lb)[("gateways", n.name)]["status"] == "UP" for lb in t.lbs for n in t.gateways
        ),
    )
    say(f"strata: {len(t.gateways)} gateways answer; HAProxy in front at {t.strata_url}")


def wait_gateway(cluster: Cluster, n: Node) -> None:
    def up() -> bool:
        if cluster.procs[n.name].poll() is not None:
            raise SystemExit(f"gateway {n.name} exited:\n{cluster.log_tail(n.name)}")
        client(cluster.t, cluster.keys, f"http://{n.ip}:{STRATA_PORT}").list_buckets()
        return True

    wait_for(f"gateway {n.name}", up, 120)


# -- clients and load --------------------------------------------------------------------------


def client(t: Topology, keys: Secrets, url: str, service: str = "s3", retries: int = 1) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=keys.access_key,
        aws_secret_access_key=keys.secret_key,
        config=Config(
            # total_max_attempts counts the first attempt (botocore's max_attempts does not)
            retries={"total_max_attempts": retries, "mode": "standard"},
            connect_timeout=3,
            read_timeout=30,
            max_pool_connections=4,
        ),
    )


def classify(e: Exception) -> tuple[str, bool]:
    """(label, retryable) of a failed attempt, as AWS's SDKs would judge it."""
    if isinstance(e, ClientError):
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        code = e.response.get("Error", {}).get("Code", "?")
        return f"{status} {code}", status >= 500 or code in RETRYABLE_CODES
    if isinstance(e, BotoCoreError):  # connection refused/reset/closed, timeouts
        return type(e).__name__, True
    return type(e).__name__, False


@dataclass
class Record:
    """What the load threads saw (appends from several threads: list.append is atomic)."""

    s3: dict[str, str] = field(default_factory=dict)  # key -> md5 of acknowledged PUT
    items: dict[str, str] = field(default_factory=dict)  # pk -> value of acknowledged PutItem
    counters_acked: Counter = field(default_factory=Counter)
    counters_tried: Counter = field(default_factory=Counter)
    failures: list[tuple[float, float, str, bool, str]] = field(
        default_factory=list
    )  # start, end, label, retryable, op
    done: Counter = field(default_factory=Counter)
    acks: list[tuple[float, float]] = field(default_factory=list)  # each operation: start, acknowledged
    mismatches: list[str] = field(default_factory=list)
    gave_up: list[str] = field(default_factory=list)


class Load:
    """Threads doing a mixed S3/DynamoDB load through HAProxy, retrying until acknowledged."""

    def __init__(self, t: Topology, keys: Secrets, threads: int, dynamodb: bool) -> None:
        self.t, self.keys, self.n, self.dynamodb = t, keys, threads, dynamodb
        self.rec = Record()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        self.stop.clear()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(self.n)]
        for th in self.threads:
            th.start()

    def finish(self) -> None:
        self.stop.set()
        for th in self.threads:
            th.join()

    def attempt(self, op: str, fn: Any) -> Any:
        """Run `fn` until it succeeds; every failed attempt recorded. None if it gave up."""
        delay = 0.05
        deadline = time.monotonic() + 120
        began = now()
        while True:
            start = now()
            try:
                value = fn()
                self.rec.acks.append((began, now()))
                return value
            except Exception as e:  # noqa: BLE001 - every failure is recorded by code
                label, retryable = classify(e)
                self.rec.failures.append((start, now(), label, retryable, op))
                if not retryable or time.monotonic() > deadline:
                    self.rec.gave_up.append(f"{op}: {label}: {e}")
                    return None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _run(self, i: int) -> None:
        s3 = client(self.t, self.keys, self.t.strata_url)
        ddb = client(self.t, self.keys, self.t.strata_url, "dynamodb") if self.dynamodb else None
        rng = random.Random(i)
        mine: list[str] = []
        items: list[str] = []
        seq = 0
        ops = ["s3_put"] * 3 + ["s3_get"] * 2
        if ddb is not None:
            ops += ["ddb_put"] * 2 + ["ddb_get", "ddb_update"]
        while not self.stop.is_set():
            op = rng.choice(ops)
            seq += 1
            if op == "s3_put" or (op == "s3_get" and not mine):
                op = "s3_put"
                key = f"t{i}/{seq}"
                body = rng.randbytes(rng.randint(1, 16) * 1024)
                if (
                    self.attempt(
                        op, lambda key=key, body=body: s3.put_object(Bucket=BUCKET, Key=key, Body=body)
                    )
                    is not None
                ):
                    self.rec.s3[key] = hashlib.md5(body).hexdigest()
                    mine.append(key)
            elif op == "s3_get":
                key = rng.choice(mine)
                r = self.attempt(op, lambda key=key: s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
                if r is not None and hashlib.md5(r).hexdigest() != self.rec.s3[key]:
                    self.rec.mismatches.append(f"GET {key} returned other bytes")
            elif op == "ddb_put" or (op == "ddb_get" and not items):
                op = "ddb_put"
                pk, value = f"t{i}-{seq}", secrets.token_hex(8)
                item = {"pk": {"S": pk}, "v": {"S": value}}
                if self.attempt(op, lambda item=item: ddb.put_item(TableName=TABLE, Item=item)) is not None:
                    self.rec.items[pk] = value
                    items.append(pk)
            elif op == "ddb_get":
                pk = rng.choice(items)
                r = self.attempt(
                    op,
                    lambda pk=pk: ddb.get_item(TableName=TABLE, Key={"pk": {"S": pk}}, ConsistentRead=True),
                )
                if r is not None and r.get("Item", {}).get("v", {}).get("S") != self.rec.items[pk]:
                    self.rec.mismatches.append(f"GetItem {pk} returned {r.get('Item')}")
            else:
                counter = f"counter-t{i}"

                def update(counter: str = counter) -> Any:
                    self.rec.counters_tried[counter] += 1  # an attempt may apply and still fail
                    return ddb.update_item(
                        TableName=TABLE,
                        Key={"pk": {"S": counter}},
                        UpdateExpression="ADD n :one",
                        ExpressionAttributeValues={":one": {"N": "1"}},
                    )

                if self.attempt(op, update) is not None:
                    self.rec.counters_acked[counter] += 1
            if not self.stop.is_set():
                with self.lock:
                    self.rec.done[op] += 1


# -- the proof ---------------------------------------------------------------------------------


def dynamodb_is_shared(t: Topology, keys: Secrets) -> tuple[bool, str]:
    """Whether a table made through one gateway is there through the others."""
    first = client(t, keys, f"http://{t.gateways[0].ip}:{STRATA_PORT}", "dynamodb", retries=3)
    first.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    first.get_waiter("table_exists").wait(TableName=TABLE)
    for n in t.gateways[1:]:
        other = client(t, keys, f"http://{n.ip}:{STRATA_PORT}", "dynamodb", retries=3)
        try:
            other.describe_table(TableName=TABLE)
        except ClientError as e:
            return False, f"a table made through {t.gateways[0].name} is not seen through {n.name}: {e}"
    return True, "a table made through gw1 is seen through every gateway"


def s3_objects_shared(t: Topology, keys: Secrets) -> tuple[bool, str]:
    """Whether an object written through one gateway reads (the same bytes) through the others."""
    body = os.urandom(1024)
    first = client(t, keys, f"http://{t.gateways[0].ip}:{STRATA_PORT}", retries=3)
    first.put_object(Bucket=BUCKET, Key="shared-check", Body=body)
    for n in t.gateways[1:]:
        other = client(t, keys, f"http://{n.ip}:{STRATA_PORT}", retries=3)
        try:
            got = other.get_object(Bucket=BUCKET, Key="shared-check")["Body"].read()
        except ClientError as e:
            return (
                False,
                f"an object written through {t.gateways[0].name} does not read through {n.name}: {e}",
            )
        if got != body:
            return False, f"an object written through {t.gateways[0].name} reads other bytes through {n.name}"
    return True, f"an object written through {t.gateways[0].name} reads through every gateway"


def node_cpu(cluster: Cluster, node: Node) -> float:
    """CPU seconds of the processes now in the node's namespace (PostgreSQL's backends are
    long-lived pooled connections, so a phase's difference is nearly all of it)."""
    total = 0.0
    for pid in cluster.sh("ip", "netns", "pids", cluster.t.netns(node), check=False).stdout.split():
        try:
            total += cpu_seconds(int(pid))
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def steady_cpu(cluster: Cluster, load: Load, seconds: float) -> None:
    """CPU per request per gateway (HAProxy's per-server responses, /proc), and of the rest."""
    t = cluster.t
    pids = {n.name: gateway_pid(cluster, n) for n in t.gateways}
    others = [*t.pg, *t.lbs]
    cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
    other0 = {n.name: node_cpu(cluster, n) for n in others}
    me0 = sum(os.times()[:2])
    resp0 = gateway_responses(t)
    done0 = sum(load.rec.done.values())
    time.sleep(seconds)
    cpu1 = {k: cpu_seconds(p) for k, p in pids.items()}
    other1 = {n.name: node_cpu(cluster, n) for n in others}
    me1 = sum(os.times()[:2])
    resp1 = gateway_responses(t)
    ops = sum(load.rec.done.values()) - done0
    say(
        f"steady phase: {ops} operations acknowledged in {seconds:.0f} s = {ops / seconds:.0f}/s through HAProxy"
        f" ({load.n} client threads)"
    )
    for n in t.gateways:
        r = resp1[n.name] - resp0[n.name]
        c = cpu1[n.name] - cpu0[n.name]
        per = f"{c / r * 1000:.2f} ms CPU/request" if r else "no requests"
        say(f"  {n.name}: {r} requests, {c:.1f} s CPU ({c / seconds * 100:.0f}% of a core), {per}")
    for n in others:
        c = other1[n.name] - other0[n.name]
        per = f", {c / ops * 1000:.2f} ms per operation" if ops else ""
        say(f"  {n.name} (all its processes): {c:.1f} s CPU ({c / seconds * 100:.0f}% of a core){per}")
    c = me1 - me0
    say(f"  load generator (boto3): {c:.1f} s CPU ({c / seconds * 100:.0f}% of a core)")
    say(f"  machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (other work included)")


def statements_per_op(t: Topology, keys: Secrets, dynamodb: bool, n: int = 100) -> None:
    """PostgreSQL statements (pg_stat_statements calls) and commits per operation, sequential."""
    admin = f"postgresql://postgres:{keys.superuser}@{t.vip}:{PG_PORT}/strata"
    s3 = client(t, keys, t.strata_url, retries=5)
    ddb = client(t, keys, t.strata_url, "dynamodb", retries=5)
    body = os.urandom(4096)
    probes: list[tuple[str, Any]] = [
        ("S3 PutObject", lambda i: s3.put_object(Bucket=BUCKET, Key=f"probe/{i}", Body=body)),
        ("S3 GetObject", lambda i: s3.get_object(Bucket=BUCKET, Key=f"probe/{i}")["Body"].read()),
        ("S3 HeadObject", lambda i: s3.head_object(Bucket=BUCKET, Key=f"probe/{i}")),
    ]
    if dynamodb:
        probes += [
            ("DynamoDB PutItem", lambda i: ddb.put_item(TableName=TABLE, Item={"pk": {"S": f"probe{i}"}})),
            (
                "DynamoDB GetItem",
                lambda i: ddb.get_item(TableName=TABLE, Key={"pk": {"S": f"probe{i}"}}, ConsistentRead=True),
            ),
            (
                "DynamoDB UpdateItem",
                lambda i: ddb.update_item(
                    TableName=TABLE,
                    Key={"pk": {"S": f"probe{i}"}},
                    UpdateExpression="ADD n :one",
                    ExpressionAttributeValues={":one": {"N": "1"}},
                ),
            ),
        ]
    # Data statements, and write transactions (BEGIN; sent with the store's lock and SAVEPOINT as one
    # round trip). pg_stat_statements does not track COMMIT: one per write transaction here (a
    # sequential client, so no group holds two writes), its own round trip (the WAL flush and the
    # synchronous standby's answer). So round trips = data statements + 2 x write transactions.
    count = (
        "SELECT coalesce(sum(calls) FILTER (WHERE kind = 'data'), 0),"
        " coalesce(sum(calls) FILTER (WHERE kind = 'begin'), 0) FROM ("
        "  SELECT s.calls, CASE WHEN s.query ~* '^\\s*begin' THEN 'begin'"
        "    WHEN s.query ~* '^\\s*(savepoint|release|rollback|commit|select pg_advisory_xact_lock)' THEN 'tx'"
        "    ELSE 'data' END AS kind"
        "  FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = 'strata') AS q"
    )

    def measure(c: psycopg.Connection, work: Any) -> tuple[float, list[int]]:
        c.execute("SELECT pg_stat_statements_reset()")
        t0 = time.perf_counter()
        work()
        dt = time.perf_counter() - t0
        return dt, [int(x) for x in c.execute(count).fetchone()]  # type: ignore[union-attr]

    with psycopg.connect(admin, autocommit=True) as c:
        # the gateways' own background statements (clock, scheduler lock), subtracted below
        idle, base = measure(c, lambda: time.sleep(5))
        say(
            f"  idle (3 gateways' background work): {base[0] / idle:.1f} data statements,"
            f" {base[1] / idle:.1f} write transactions a second (subtracted below)"
        )
        for name, fn in probes:
            dt, got = measure(c, lambda fn=fn: [fn(i) for i in range(n)])
            data, writes = (max(0.0, (g - b / idle * dt) / n) for g, b in zip(got, base, strict=True))
            say(
                f"  {name}: {data:.1f} data statements, {writes:.1f} write transactions = {data + 2 * writes:.1f}"
                f" round trips per operation; {dt / n * 1000:.1f} ms each, one client"
            )
            if name in ("S3 PutObject", "DynamoDB PutItem"):  # what one write sends
                rows = c.execute(
                    "SELECT s.calls, regexp_replace(s.query, '\\s+', ' ', 'g') FROM pg_stat_statements s"
                    " JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = 'strata' AND s.calls >= %s"
                    " ORDER BY s.calls DESC LIMIT 12",
                    (n // 2,),
                ).fetchall()
                for calls, query in rows:
                    say(f"      {calls / n:4.1f} x {query[:90]}")


def windows(failures: list[tuple[float, float, str, bool, str]]) -> list[tuple[float, float, Counter]]:
    """Failed attempts of all threads merged into windows (less than 1 s apart)."""
    out: list[tuple[float, float, Counter]] = []
    for start, end, label, _, _ in sorted(failures):
        if out and start - out[-1][1] < 1.0:
            s, e, codes = out[-1]
            codes[label] += 1
            out[-1] = (s, max(e, end), codes)
        else:
            out.append((start, end, Counter({label: 1})))
    return out


def stalls(acks: list[tuple[float, float]], start: float, end: float) -> list[tuple[float, float]]:
    """Stretches of more than a second in which no operation was acknowledged (a gateway that
    holds requests while PostgreSQL fails over answers late rather than with an error)."""
    times = sorted(a for _, a in acks if start <= a <= end)
    out = []
    for a, b in zip([start, *times], [*times, end], strict=True):
        if b - a > 1.0:
            out.append((a, b - a))
    return out


def verify(t: Topology, keys: Secrets, rec: Record, dynamodb: bool) -> int:
    """Read every acknowledged write back; the number of lost or wrong ones."""
    s3 = client(t, keys, t.strata_url, retries=10)

    def check(key: str, md5: str) -> int:
        try:
            body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        except ClientError as e:
            say(f"LOST: s3://{BUCKET}/{key}: {e}")
            return 1
        if hashlib.md5(body).hexdigest() != md5:
            say(f"WRONG BYTES: s3://{BUCKET}/{key}")
            return 1
        return 0

    with ThreadPoolExecutor(4) as pool:  # (a botocore client may be shared by threads)
        lost = sum(pool.map(check, rec.s3.keys(), rec.s3.values()))
    say(f"verify: {len(rec.s3)} acknowledged S3 objects read back, {lost} lost or wrong")
    if dynamodb:
        ddb = client(t, keys, t.strata_url, "dynamodb", retries=10)
        bad = 0
        for pk, value in rec.items.items():
            got = ddb.get_item(TableName=TABLE, Key={"pk": {"S": pk}}, ConsistentRead=True).get("Item")
            if not got or got["v"]["S"] != value:
                bad += 1
                say(f"LOST: item {pk}: {got}")
        for counter, acked in rec.counters_acked.items():
            got = ddb.get_item(TableName=TABLE, Key={"pk": {"S": counter}}, ConsistentRead=True).get("Item")
            n = int(got["n"]["N"]) if got else 0
            if not acked <= n <= rec.counters_tried[counter]:
                bad += 1
                say(f"COUNTER {counter}: {n}, acknowledged {acked}, attempted {rec.counters_tried[counter]}")
        say(
            f"verify: {len(rec.items)} acknowledged items and {len(rec.counters_acked)} counters"
            f" ({sum(rec.counters_acked.values())} acknowledged increments) read back, {bad} lost or wrong"
        )
        lost += bad
    return lost


def report_db(
    db: DbLoad, events: list[tuple[float, str]], took: dict[str, float], start: float, end: float
) -> None:
    """How long the engine host's takeover took, then the RDS client's commits, error windows and
    stalls."""
    for what, seconds in took.items():
        say(f"engine host killed -> {what}: {seconds:.1f} s")
    report_side("RDS", db, events, start, end)


def report_side(name: str, side: SideLoad, events: list[tuple[float, str]], start: float, end: float) -> None:
    """A client's writes, its failed attempts as error windows, and its stretches without an
    acknowledgement (over 1 s), each after the event it followed."""
    say(f"{name}: {len(side.acks)} writes acknowledged, {len(side.failures)} failed attempts (each retried)")
    for s, e, c in windows(side.failures):
        before = [ev for ev in events if ev[0] <= s + 0.5]
        cause = f"after: {before[-1][1]}" if before else "before the kills"
        say(f"  {name} error window at {s:6.1f}s for {e - s:5.2f} s: {dict(c)} ({cause})")
    for s, d in stalls(side.acks, start, end):
        before = [ev for ev in events if ev[0] <= s + 0.5]
        say(
            f"  {name}: nothing acknowledged for {d:5.2f} s at {s:6.1f}s ({f'after: {before[-1][1]}' if before else ''})"
        )


def leader(t: Topology) -> Node:
    return wait_for(
        "a Patroni leader",
        lambda: next((n for n in t.pg if http_status(n.ip, 8008, "/primary") == 200), None),
    )


def kill_front(cluster: Cluster, events: list[tuple[float, str]], args: argparse.Namespace) -> None:
    """kill -9 the HAProxy holding the virtual address (--front-kill haproxy: its keepalived goes
    on, finds it dead and gives the address up), or the whole node (node: HAProxy and keepalived
    killed and its cable pulled; the peer takes the address after three missed advertisements).
    With --rejoin what was killed is restarted 5 s after the address moved, and its node stays the
    backup (nopreempt). Returns --gap seconds after the kill."""
    t = cluster.t
    front = wait_for("the virtual address", cluster.vip_holder)
    began = time.monotonic()
    ns = t.netns(front)
    if args.front_kill == "node":
        events.append((now(), f"kill -9 node {front.name} (HAProxy, keepalived; holds the virtual address)"))
        cluster.kill_node(front)
        # a dead machine's interface is gone; the address a killed keepalived leaves behind with it
        cluster.sh("ip", "-n", ns, "link", "set", "eth0", "down")
        cluster.sh("ip", "-n", ns, "addr", "del", f"{t.vip}/24", "dev", "eth0", check=False)
        for name in (front.name, f"{front.name}-keepalived"):
            cluster.procs[name].wait(timeout=10)
    else:
        events.append((now(), f"kill -9 HAProxy on {front.name} (holds the virtual address {t.vip})"))
        cluster.kill_haproxy(front)
    say(events[-1][1])
    while (holder := cluster.vip_holder()) in (None, front):
        if time.monotonic() - began > 30:
            raise SystemExit(
                f"the virtual address did not move:\n{cluster.log_tail(front.name + '-keepalived')}"
            )
        time.sleep(0.05)
    assert holder is not None
    events.append(
        (now(), f"the virtual address is on {holder.name}, {time.monotonic() - began:.2f} s after the kill")
    )
    say(events[-1][1])
    if args.rejoin:
        time.sleep(5)
        what = "HAProxy and keepalived" if args.front_kill == "node" else "HAProxy"
        events.append((now(), f"restart {what} on {front.name}"))
        say(events[-1][1])
        if args.front_kill == "node":
            cluster.sh("ip", "-n", ns, "link", "set", "eth0", "up")
        cluster.start(front, haproxy_command(t, front))
        wait_for(f"{front.name}'s HAProxy", lambda: haproxy_stats(t, front))
        if args.front_kill == "node":
            cluster.start(front, keepalived_command(t, front), name=f"{front.name}-keepalived")
        time.sleep(4)  # its keepalived's check passes twice (rise 2): the backup again
        holder = cluster.vip_holder()
        events.append((now(), f"{front.name} is back; the virtual address is on {holder and holder.name}"))
        say(events[-1][1])
    time.sleep(max(0.0, args.gap - (time.monotonic() - began)))


def prove(cluster: Cluster, args: argparse.Namespace) -> int:
    t, keys = cluster.t, cluster.keys
    s3 = client(t, keys, t.strata_url, retries=5)
    s3.create_bucket(Bucket=BUCKET)
    for n in t.gateways:
        client(t, keys, f"http://{n.ip}:{STRATA_PORT}", retries=3).head_bucket(Bucket=BUCKET)
    say("s3: a bucket made through HAProxy is seen through every gateway")
    shared, why = s3_objects_shared(t, keys)
    say(f"s3: {why}" + ("" if shared else " -- acknowledged objects will fail to read (the proof fails)"))
    dynamodb = args.dynamodb
    if dynamodb:
        dynamodb, why = dynamodb_is_shared(t, keys)
        say(f"dynamodb: {why}" + ("" if dynamodb else " -- DynamoDB left out of the load"))
    events: list[tuple[float, str]] = []
    supervisor = Supervisor(cluster, say, now, events)
    engines: Engines | None = None
    if args.engines:
        engines = create_engines(
            t, lambda service: client(t, keys, t.strata_url, service, retries=5), say, args.cache
        )
    ends: PoolEndpoints | None = None
    if engines and t.engine_pool:
        ends = create_pool(t, lambda service: client(t, keys, t.strata_url, service, retries=5), say)
    load = Load(t, keys, args.threads, dynamodb)
    load.start()
    time.sleep(3)  # warm up (connections, caches)
    steady_cpu(cluster, load, args.steady)
    load.finish()
    say(
        "PostgreSQL statements per operation (pg_stat_statements; statements Strata pipelines share a"
        " round trip), 100 sequential operations each:"
    )
    statements_per_op(t, keys, dynamodb)
    db_load = DbLoad(engines.db, now) if engines else None
    cache_load = CacheLoad(ends, now) if ends else None
    file_load = FileLoad(ends, now) if ends else None
    load.start()
    for side in (db_load, cache_load, file_load):
        if side:
            side.start()
    kill_phase = now()
    time.sleep(5)
    victim = t.gateways[1]
    events.append((now(), f"kill -9 gateway {victim.name}"))
    cluster.kill_node(victim)
    if engines:
        drop_address(cluster, victim)
    say(events[-1][1])
    time.sleep(args.gap)
    kill_front(cluster, events, args)
    old = leader(t)
    events.append((now(), f"kill -9 PostgreSQL leader node {old.name} (Patroni and PostgreSQL)"))
    cluster.kill_node(old)
    say(events[-1][1])
    new = wait_for(
        "a new Patroni leader",
        lambda: next((n for n in t.pg if n != old and http_status(n.ip, 8008, "/primary") == 200), None),
        120,
    )
    events.append((now(), f"{new.name} is the Patroni leader"))
    say(events[-1][1])
    if args.rejoin:  # the dead come back: the old leader as the new standby, the gateway serving
        time.sleep(5)
        events.append((now(), f"restart {old.name} (Patroni) and gateway {victim.name}"))
        say(events[-1][1])
        start_patroni(cluster, old)
        cluster.start(victim, cluster.gateway_cmd(victim), env=cluster.gateway_env)
        wait_gateway(cluster, victim)
        events.append((now(), f"gateway {victim.name} answers again"))
        say(events[-1][1])
        wait_for(f"{old.name} as synchronous standby", lambda: http_status(old.ip, 8008, "/sync") == 200, 180)
        events.append((now(), f"{old.name} is the synchronous standby again"))
        say(events[-1][1])
    took: dict[str, float] = {}
    host_killed = 0.0
    if engines:
        time.sleep(args.gap)
        more = recovery_checks(ends, file_load) if ends and file_load else None
        _, took = kill_engine_host(cluster, engines, events, say, now, args.rejoin, more)
        host_killed = next(at for at, what in events if what.startswith("kill -9 engine host"))
    time.sleep(args.after)
    load.finish()
    for side in (db_load, cache_load, file_load):
        if side:
            side.finish()
    supervisor.stop.set()
    load_end = now()
    rec = load.rec
    say(f"load: {dict(rec.done)} operations acknowledged")
    failed = [f for f in rec.failures]
    codes = Counter((label, retryable) for _, _, label, retryable, _ in failed)
    say(f"failed attempts: {len(failed)} (each retried by the client until acknowledged)")
    for (label, retryable), k in codes.most_common():
        say(f"  {k:5d}  {label}  {'retryable' if retryable else 'NOT RETRYABLE'}")
    ws = windows(failed)
    say(f"error windows: {len(ws)}")
    for s, e, c in ws:
        before = [ev for ev in events if ev[0] <= s + 0.5]
        cause = f"after: {before[-1][1]}" if before else "before the kills"
        say(f"  at {s:6.1f}s for {e - s:5.2f} s: {sum(c.values())} failed attempts {dict(c)} ({cause})")
    for lb in t.lbs:
        stats = haproxy_stats(t, lb)
        for n in t.gateways:
            row = stats.get(("gateways", n.name), {})
            say(
                f"haproxy {lb.name} -> {n.name}: {row.get('wretr') or 0} connection retries,"
                f" {row.get('wredis') or 0} redispatches, {row.get('eresp') or 0} response errors,"
                f" {row.get('hrsp_5xx') or 0} 5xx answered (since its start)"
            )
    phase = [(b, a) for b, a in rec.acks if a >= kill_phase]
    slow = sorted(a - b for b, a in phase)
    if slow:
        say(
            f"operation latency after the kills (retries included): median {slow[len(slow) // 2] * 1000:.0f} ms,"
            f" 99th percentile {slow[int(len(slow) * 0.99)] * 1000:.0f} ms, longest {slow[-1]:.1f} s,"
            f" {sum(1 for x in slow if x > 1.0)} operations over 1 s"
        )
    st = stalls(rec.acks, kill_phase, load_end)
    say(f"stalls (no operation acknowledged for over 1 s): {len(st)}")
    for s, d in st:
        before = [ev for ev in events if ev[0] <= s + 0.5]
        say(f"  at {s:6.1f}s for {d:5.2f} s ({f'after: {before[-1][1]}' if before else 'before the kills'})")
    if db_load:
        report_db(db_load, events, took, kill_phase, load_end)
    for name, side in (("Redis (pool)", cache_load), ("NFS (pool)", file_load)):
        if side:
            report_side(name, side, events, kill_phase, load_end)
    not_retryable = sum(k for (_, r), k in codes.items() if not r)
    lost = verify(t, keys, rec, dynamodb)
    if db_load:
        lost += db_load.verify(say)
    if ends and cache_load and file_load:
        same, why = same_endpoints(lambda service: client(t, keys, t.strata_url, service, retries=5), ends)
        say(f"pool: {why}")
        gone, early = cache_load.verify(host_killed, say)
        lost += early + file_load.verify(say) + (0 if same else 1)
        if gone:
            say(f"  {gone} Redis keys lost, {early} of them acknowledged over 1.5 s before the kill")
    ok = lost == 0 and not_retryable == 0 and not rec.mismatches and not rec.gave_up
    for m in rec.mismatches[:10] + rec.gave_up[:10]:
        say(f"  {m}")
    say(
        f"RESULT: {'PASS' if ok else 'FAIL'}: {lost} acknowledged writes lost, {not_retryable} non-retryable errors, "
        f"{len(rec.mismatches)} wrong reads, {len(rec.gave_up)} operations given up"
    )
    return 0 if ok else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=6)
    ap.add_argument("--steady", type=float, default=20, help="seconds of the steady phase (CPU per request)")
    ap.add_argument("--gap", type=float, default=20, help="seconds between two kills")
    ap.add_argument("--after", type=float, default=40, help="seconds of load after the leader's kill")
    ap.add_argument(
        "--front-kill",
        choices=("haproxy", "node"),
        default="haproxy",
        help="what dies on the node holding the virtual address: its HAProxy (default), or the node"
        " (HAProxy, keepalived and its network)",
    )
    ap.add_argument("--dynamodb", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument(
        "--engines",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="an RDS PostgreSQL instance written through the engine address, and at the end the engine"
        " host's node killed",
    )
    ap.add_argument(
        "--cache",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="an ElastiCache Redis cluster too",
    )
    ap.add_argument(
        "--pool",
        type=int,
        default=5,
        help="engine address pool size (the gateways' --engine-address .50-.5N/eth0): a Redis"
        " replication group and an EFS mount target served on pool addresses, written through them"
        " during the kills and read back after the host's node is killed; 0: one engine address",
    )
    ap.add_argument(
        "--rejoin",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="restart what was killed: the HAProxy 5 s after the virtual address moved (its node stays"
        " the backup); after the failover, the old leader (it rejoins as standby) and the gateway",
    )
    ap.add_argument(
        "--source", type=Path, default=ROOT, help="the Strata tree the gateways run (default: this one)"
    )
    ap.add_argument("--keep", action="store_true", help="keep the run directory (logs, data)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces, apt-get)")
    subprocess.run(["sh", str(ROOT / "bench" / "ha" / "install.sh")], check=True)
    run_dir = Path(tempfile.mkdtemp(prefix="ha-proof-"))
    run_dir.chmod(0o755)  # postgres (Patroni) must reach its directory
    t = topology(run_dir, pool=args.pool if args.engines else 0)
    keys = Secrets(
        *(secrets.token_hex(12) for _ in range(3)),
        "AKIAHAPROOF" + secrets.token_hex(5).upper()[:9],
        secrets.token_hex(20),
    )
    cluster = Cluster(t, keys)
    cluster.teardown()  # what a run killed without cleaning up left
    # SIGTERM/SIGHUP end the run through the finally below, as Ctrl-C does.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(130))
    try:
        bring_up(cluster, str(ROOT / ".venv" / "bin" / "python"), args.source.resolve())
        return prove(cluster, args)
    except BaseException:
        names = [n.name for n in (*t.pg, *t.gateways)]
        names += [f"{n.name}{s}" for n in t.lbs for s in ("", "-keepalived")]
        for name in names:  # (etcd's logs are in the run directory: --keep)
            tail = cluster.log_tail(name, 8)
            if tail:
                print(f"--- {name}.log (last lines)\n{tail}", file=sys.stderr)
        raise
    finally:
        cluster.teardown()
        if args.keep:
            print(f"run directory kept: {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
        say("cleaned up: processes killed, namespaces and bridge removed")


if __name__ == "__main__":
    sys.exit(main())
