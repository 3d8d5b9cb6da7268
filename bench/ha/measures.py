"""What the proof measures and checks (bench/ha_proof.py): that S3 and DynamoDB are one store
through every gateway, CPU per request in the steady phase, PostgreSQL statements per operation,
the error windows and stalls of the kills, and every acknowledged write read back.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from botocore.exceptions import ClientError
from client_load import BUCKET, TABLE, Load, Record, client
from cluster import Cluster, cpu_seconds, gateway_pid, gateway_responses
from configs import (
    PG_PORT,
    STRATA_PORT,
    Node,
    Secrets,
    Topology,
)
from engine_phase import DbLoad
from pool_phase import SideLoad
from timeline import say


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
