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

The harness's parts are in bench/ha/: configs.py the cluster as data and its configuration files,
cluster.py its processes (namespaces, start, bring-up, take-down), client_load.py the clients and
their load, measures.py what is measured and read back, engine_phase.py the engine host's phase,
timeline.py the shared clock and log. This file is the proof's order of events and its options.

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
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench" / "ha"))

from client_load import BUCKET, Load, client  # noqa: E402
from cluster import (  # noqa: E402
    Cluster,
    bring_up,
    haproxy_stats,
    http_status,
    leader,
    start_patroni,
    wait_for,
    wait_gateway,
)
from configs import (  # noqa: E402
    STRATA_PORT,
    Secrets,
    haproxy_command,
    keepalived_command,
    topology,
)
from engine_phase import DbLoad, Engines, Supervisor, drop_address, kill_engine_host  # noqa: E402
from engine_phase import create as create_engines  # noqa: E402
from measures import (  # noqa: E402
    dynamodb_is_shared,
    report_db,
    report_side,
    s3_objects_shared,
    stalls,
    statements_per_op,
    steady_cpu,
    verify,
    windows,
)
from pool_phase import (  # noqa: E402
    CacheLoad,
    FileLoad,
    PoolEndpoints,
    recovery_checks,
    same_endpoints,
)
from pool_phase import create as create_pool  # noqa: E402
from timeline import now, say  # noqa: E402


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
