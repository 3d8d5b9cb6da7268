"""Crash campaign: concurrent S3 and DynamoDB writes, kill -9 at a random moment, restart, check.

Each round starts the server, runs worker threads for a random 0.3-3 s and kills the server
(SIGKILL: no shutdown code runs) while requests are in flight, then restarts it and checks:

- every key's state is the one of its last acknowledged write, or of the one write that was in
  flight when the server died (S3: body byte for byte, ETag of simple PUTs, user metadata and
  Content-Type; DynamoDB: the whole item, read with ConsistentRead);
- a state matching no write at all is "torn"; an older state or a missing key is "lost";
- a TransactWriteItems in flight at the kill is all or nothing ("partial" otherwise);
- after recovery no temp file is left in the data dir and every blob is referenced ("leaked").

Every key is owned by one worker, so its writes are sequential and the model knows each write's
resulting state; a worker stops at its first failure (the kill). Bodies are derived from
(key, generation), so nothing but their size and digest is kept in memory.

Usage: python bench/crash_campaign.py [--rounds 100] [--seed N] [--data-dir DIR]
Prints one line per round and a JSON summary; exits 1 if anything was lost, torn, partial or leaked.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from strata.fsck import check_data_dir  # noqa: E402
from tests.strata_process import StrataProcess  # noqa: E402

KiB, MiB = 1024, 1024 * 1024
BUCKET = "crash-campaign"
TABLE = "CrashItems"
PART = 128 * KiB  # multipart part size (the server's minimum is lowered to this for the campaign)
S3_SIZES = (0, 1, 1000, 60 * KiB, 70 * KiB, 300 * KiB, 1 * MiB + 7)
BIG = 9 * MiB + 1  # streamed through the O_DIRECT spool
KEYS_PER_WORKER = 10
ABSENT = None


def body_for(origin: str, gen: int, sizes: tuple[int, ...]) -> bytes:
    """The deterministic body of a write (parts concatenated for multipart)."""
    out = []
    for i, size in enumerate(sizes):
        seed = hashlib.sha256(f"{origin}:{gen}:{i}".encode()).digest()
        out.append((seed * (size // 32 + 1))[:size])
    return b"".join(out)


@dataclass(frozen=True)
class ObjState:
    """What an S3 key holds after a write: the body's origin and layout, metadata, type."""

    origin: str
    gen: int
    sizes: tuple[int, ...]
    multipart: bool = False

    def body(self) -> bytes:
        return body_for(self.origin, self.gen, self.sizes)

    @property
    def metadata(self) -> dict[str, str]:
        return {"origin": self.origin, "gen": str(self.gen)}

    @property
    def content_type(self) -> str:
        return f"application/x-crash-{self.gen}"


@dataclass
class Track:
    """One key: its last acknowledged state, the states of writes not (yet) acknowledged, history."""

    acked: Any = ABSENT
    pending: list[Any] = field(default_factory=list)
    history: list[Any] = field(default_factory=list)

    def begin(self, state: Any) -> None:
        self.pending.append(state)
        self.history.append(state)

    def ack(self, state: Any) -> None:
        self.acked = state
        self.pending = []


@dataclass
class Tx:
    """A TransactWriteItems: its new state per key; acked or not."""

    txid: str
    new: dict[str, dict]
    acked: bool = False


@dataclass
class Totals:
    rounds: int = 0
    acked_writes: int = 0
    acked_s3: int = 0
    acked_ddb: int = 0
    acked_tx: int = 0
    in_flight_at_kill: int = 0
    key_states_checked: int = 0
    in_flight_applied: int = 0
    tx_in_flight_checked: int = 0
    lost: int = 0
    torn: int = 0
    partial_tx: int = 0
    leaked: int = 0
    orphan_blobs: int = 0
    unexpected_errors: int = 0
    problems: list[str] = field(default_factory=list)


class Campaign:
    def __init__(self, data_dir: Path, *, s3_workers: int = 3, ddb_workers: int = 3, seed: int = 0) -> None:
        # DynamoDB's capacity off: the campaign's writers (no retries) go far past a new on-demand
        # table's 4,000 WCU a second, and what it checks is durability, not throttling.
        self.server = StrataProcess(
            data_dir,
            extra_env={"STRATA_LIMIT_S3_MIN_PART_SIZE": str(PART), "STRATA_DYNAMODB_THROTTLING": "off"},
        )
        self.rng = random.Random(seed)
        self.s3_workers, self.ddb_workers = s3_workers, ddb_workers
        self.s3: dict[str, Track] = {}
        self.ddb: dict[str, Track] = {}
        self.txs: list[Tx] = []
        self.totals = Totals()
        self.lock = threading.Lock()
        self.killing = threading.Event()  # set just before the kill: errors after it are expected
        self.gen = 0
        self._digests: dict[ObjState, str] = {}

    # -- set-up ----------------------------------------------------------------------------------

    def client(self, service: str, timeout: float = 10) -> Any:
        cfg = Config(retries={"max_attempts": 0}, connect_timeout=2, read_timeout=timeout)
        return self.server.client(service, config=cfg)

    def setup(self) -> None:
        self.server.start()
        self.client("s3").create_bucket(Bucket=BUCKET)
        ddb = self.client("dynamodb")
        ddb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for w in range(self.s3_workers):
            for i in range(KEYS_PER_WORKER):
                self.s3[f"w{w}/k{i}"] = Track()
        for w in range(self.ddb_workers):
            for i in range(KEYS_PER_WORKER * 2):
                self.ddb[f"w{w}/i{i}"] = Track()

    def next_gen(self) -> int:
        with self.lock:
            self.gen += 1
            return self.gen

    # -- S3 workload -----------------------------------------------------------------------------

    def s3_worker(self, w: int, stop: threading.Event, ready: threading.Barrier) -> None:
        s3 = self.client("s3")
        ready.wait()
        keys = [k for k in self.s3 if k.startswith(f"w{w}/")]
        rng = random.Random(self.rng.random())
        ops: list[tuple[float, Callable[[Any, list[str], random.Random], None]]] = [
            (0.45, self._put),
            (0.15, self._multipart),
            (0.2, self._copy),
            (0.2, self._delete_objects),
        ]
        while not stop.is_set():
            op = rng.choices([o for _, o in ops], [p for p, _ in ops])[0]
            if not self._attempt(op, s3, keys, rng):
                return

    def _attempt(self, op: Callable, client: Any, keys: list[str], rng: random.Random) -> bool:
        try:
            op(client, keys, rng)
            return True
        except (BotoCoreError, ClientError, OSError) as e:
            if not self.killing.is_set():
                with self.lock:
                    self.totals.unexpected_errors += 1
                    self.totals.problems.append(f"error while the server ran: {e!r}")
            return False

    def _acked(self, n: int, kind: str) -> None:
        with self.lock:
            self.totals.acked_writes += n
            setattr(self.totals, kind, getattr(self.totals, kind) + n)

    def _put(self, s3: Any, keys: list[str], rng: random.Random) -> None:
        key = rng.choice(keys)
        size = BIG if rng.random() < 0.05 else rng.choice(S3_SIZES)
        state = ObjState(key, self.next_gen(), (size,))
        self.s3[key].begin(state)
        body = state.body()
        r = s3.put_object(
            Bucket=BUCKET, Key=key, Body=body, Metadata=state.metadata, ContentType=state.content_type
        )
        if r["ETag"] != f'"{hashlib.md5(body).hexdigest()}"':
            raise AssertionError(f"ETag of {key}")
        self.s3[key].ack(state)
        self._acked(1, "acked_s3")

    def _multipart(self, s3: Any, keys: list[str], rng: random.Random) -> None:
        key = rng.choice(keys)
        sizes = tuple([PART] * rng.randint(1, 3) + [rng.randint(1, PART)])
        state = ObjState(key, self.next_gen(), sizes, multipart=True)
        up = s3.create_multipart_upload(
            Bucket=BUCKET, Key=key, Metadata=state.metadata, ContentType=state.content_type
        )["UploadId"]
        parts = []
        for n, size in enumerate(sizes, 1):
            data = body_for(key, state.gen, (0,) * (n - 1) + (size,))
            etag = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=up, PartNumber=n, Body=data)["ETag"]
            parts.append({"PartNumber": n, "ETag": etag})
        self.s3[key].begin(state)
        s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=up, MultipartUpload={"Parts": parts})
        self.s3[key].ack(state)
        self._acked(1, "acked_s3")

    def _copy(self, s3: Any, keys: list[str], rng: random.Random) -> None:
        src, dst = rng.sample(keys, 2)
        state = self.s3[src].acked
        if state is ABSENT:
            return self._put(s3, keys, rng)
        self.s3[dst].begin(state)
        s3.copy_object(Bucket=BUCKET, Key=dst, CopySource={"Bucket": BUCKET, "Key": src})
        self.s3[dst].ack(state)
        self._acked(1, "acked_s3")

    def _delete_objects(self, s3: Any, keys: list[str], rng: random.Random) -> None:
        victims = rng.sample(keys, rng.randint(1, 4))
        for k in victims:
            self.s3[k].begin(ABSENT)
        r = s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in victims]})
        if r.get("Errors"):
            raise AssertionError(f"DeleteObjects errors {r['Errors']}")
        for k in victims:
            self.s3[k].ack(ABSENT)
        self._acked(len(victims), "acked_s3")

    # -- DynamoDB workload -----------------------------------------------------------------------

    def ddb_worker(self, w: int, stop: threading.Event, ready: threading.Barrier) -> None:
        ddb = self.client("dynamodb")
        ready.wait()
        keys = [k for k in self.ddb if k.startswith(f"w{w}/")]
        rng = random.Random(self.rng.random())
        ops = [
            (0.3, self._put_item),
            (0.3, self._update_item),
            (0.2, self._batch_write),
            (0.2, self._transact),
        ]
        while not stop.is_set():
            op = rng.choices([o for _, o in ops], [p for p, _ in ops])[0]
            if not self._attempt(op, ddb, keys, rng):
                return

    @staticmethod
    def _item(key: str, gen: int, rng: random.Random, **extra: Any) -> dict:
        blob = hashlib.sha256(f"{key}:{gen}".encode()).digest() * rng.randint(0, 300)
        return {"id": key, "gen": gen, "v": f"v{gen}", "blob": blob, **extra}

    def _put_item(self, ddb: Any, keys: list[str], rng: random.Random) -> None:
        key = rng.choice(keys)
        item = self._item(key, self.next_gen(), rng)
        self.ddb[key].begin(item)
        ddb.put_item(TableName=TABLE, Item=to_wire(item))
        self.ddb[key].ack(item)
        self._acked(1, "acked_ddb")

    def _update_item(self, ddb: Any, keys: list[str], rng: random.Random) -> None:
        key = rng.choice(keys)
        gen = self.next_gen()
        old = self.ddb[key].acked
        new = {**(old or {"id": key}), "gen": gen, "v": f"u{gen}", "cnt": (old or {}).get("cnt", 0) + 1}
        self.ddb[key].begin(new)
        r = ddb.update_item(
            TableName=TABLE,
            Key={"id": {"S": key}},
            UpdateExpression="SET gen = :g, v = :v ADD cnt :one",
            ExpressionAttributeValues={":g": {"N": str(gen)}, ":v": {"S": f"u{gen}"}, ":one": {"N": "1"}},
            ReturnValues="ALL_NEW",
        )
        if from_wire(r["Attributes"]) != new:
            raise AssertionError(f"UpdateItem of {key} returned {r['Attributes']}, model {new}")
        self.ddb[key].ack(new)
        self._acked(1, "acked_ddb")

    def _batch_write(self, ddb: Any, keys: list[str], rng: random.Random) -> None:
        chosen = rng.sample(keys, rng.randint(2, min(10, len(keys))))
        requests, states = [], {}
        for key in chosen:
            if rng.random() < 0.25:
                states[key] = ABSENT
                requests.append({"DeleteRequest": {"Key": {"id": {"S": key}}}})
            else:
                states[key] = self._item(key, self.next_gen(), rng, via="batch")
                requests.append({"PutRequest": {"Item": to_wire(states[key])}})
        for key, state in states.items():
            self.ddb[key].begin(state)
        r = ddb.batch_write_item(RequestItems={TABLE: requests})
        unprocessed = {
            (q.get("PutRequest", {}).get("Item") or q["DeleteRequest"]["Key"])["id"]["S"]
            for q in r.get("UnprocessedItems", {}).get(TABLE, [])
        }
        for key, state in states.items():
            if key in unprocessed:  # definitely not applied
                self.ddb[key].pending.remove(state)
            else:
                self.ddb[key].ack(state)
        self._acked(len(states) - len(unprocessed), "acked_ddb")

    def _transact(self, ddb: Any, keys: list[str], rng: random.Random) -> None:
        chosen = rng.sample(keys, rng.randint(2, min(8, len(keys))))
        gen = self.next_gen()
        txid = f"tx{gen}"
        items, new = [], {}
        for key in chosen:
            old = self.ddb[key].acked
            cond = (
                {"ConditionExpression": "attribute_not_exists(id)"}
                if old is ABSENT
                else {
                    "ConditionExpression": "gen = :old",
                    "ExpressionAttributeValues": {":old": {"N": str(old["gen"])}},
                }
            )
            if old is not ABSENT and rng.random() < 0.5:
                new[key] = {**old, "gen": gen, "tx": txid}
                vals = dict(cond.get("ExpressionAttributeValues", {}))
                vals.update({":g": {"N": str(gen)}, ":t": {"S": txid}})
                items.append(
                    {
                        "Update": {
                            "TableName": TABLE,
                            "Key": {"id": {"S": key}},
                            "UpdateExpression": "SET gen = :g, tx = :t",
                            "ConditionExpression": cond["ConditionExpression"],
                            "ExpressionAttributeValues": vals,
                        }
                    }
                )
            else:
                new[key] = self._item(key, gen, rng, tx=txid)
                items.append({"Put": {"TableName": TABLE, "Item": to_wire(new[key]), **cond}})
        tx = Tx(txid, new)
        with self.lock:
            self.txs.append(tx)
        for key, state in new.items():
            self.ddb[key].begin(state)
        ddb.transact_write_items(TransactItems=items)
        tx.acked = True
        for key, state in new.items():
            self.ddb[key].ack(state)
        self._acked(len(new), "acked_ddb")
        with self.lock:
            self.totals.acked_tx += 1

    # -- a round ---------------------------------------------------------------------------------

    def round(self, n: int) -> dict[str, int]:
        before = (self.totals.lost, self.totals.torn, self.totals.partial_tx, self.totals.leaked)
        acked0 = self.totals.acked_writes
        stop = threading.Event()
        ready = threading.Barrier(self.s3_workers + self.ddb_workers + 1)
        threads = [
            threading.Thread(target=self.s3_worker, args=(w, stop, ready), daemon=True)
            for w in range(self.s3_workers)
        ] + [
            threading.Thread(target=self.ddb_worker, args=(w, stop, ready), daemon=True)
            for w in range(self.ddb_workers)
        ]
        for t in threads:
            t.start()
        ready.wait(120)  # every worker has its client: the random delay is all load
        time.sleep(self.rng.uniform(0.3, 3.0))
        self.killing.set()
        self.server.kill()
        stop.set()
        for t in threads:
            t.join(60)
        in_flight = sum(1 for t in (*self.s3.values(), *self.ddb.values()) if t.pending)
        self.totals.in_flight_at_kill += in_flight
        self.server.start()
        self.killing.clear()
        self.verify()
        self.check_leaks()
        self.totals.rounds += 1
        lost, torn, partial, leaked = (
            a - b
            for a, b in zip(
                (self.totals.lost, self.totals.torn, self.totals.partial_tx, self.totals.leaked),
                before,
                strict=True,
            )
        )
        return {
            "round": n,
            "acked": self.totals.acked_writes - acked0,
            "in_flight": in_flight,
            "lost": lost,
            "torn": torn,
            "partial_tx": partial,
            "leaked": leaked,
        }

    # -- checks ----------------------------------------------------------------------------------

    def _digest(self, state: ObjState) -> str:
        d = self._digests.get(state)
        if d is None:
            d = self._digests[state] = hashlib.sha256(state.body()).hexdigest()
        return d

    def _judge(self, name: str, track: Track, found: Any, same: Callable[[Any, Any], bool]) -> None:
        self.totals.key_states_checked += 1
        allowed = [track.acked, *track.pending]
        if any(same(found, s) for s in allowed):
            if track.pending and not same(found, track.acked):
                self.totals.in_flight_applied += 1
        elif found is ABSENT or any(same(found, s) for s in track.history):
            self.totals.lost += 1
            self.totals.problems.append(f"lost {name}: found {_short(found)}, acked {_short(track.acked)}")
        else:
            self.totals.torn += 1
            self.totals.problems.append(f"torn {name}: found {_short(found)}")
        # The state now on disk is the truth from here on (it was read back after a restart).
        match = next((s for s in allowed if same(found, s)), found)
        track.acked, track.pending = match, []
        track.history = track.history[-20:]

    def verify(self) -> None:
        s3 = self.client("s3", timeout=60)
        for key, track in self.s3.items():
            try:
                r = s3.get_object(Bucket=BUCKET, Key=key)
            except ClientError as e:
                if e.response["Error"]["Code"] != "NoSuchKey":
                    raise
                found: Any = ABSENT
            else:
                body = r["Body"].read()
                found = ("obj", hashlib.sha256(body).hexdigest(), r.get("Metadata", {}), r["ContentType"])
                if "-" not in r["ETag"] and r["ETag"] != f'"{hashlib.md5(body).hexdigest()}"':
                    found = ("etag-mismatch", r["ETag"])

            def same_obj(f: Any, s: Any) -> bool:
                if s is ABSENT or f is ABSENT:
                    return f is s
                return f == ("obj", self._digest(s), s.metadata, s.content_type)

            self._judge(key, track, found, same_obj)
        ddb = self.client("dynamodb", timeout=60)
        found_items: dict[str, Any] = {}
        for key, track in self.ddb.items():
            r = ddb.get_item(TableName=TABLE, Key={"id": {"S": key}}, ConsistentRead=True)
            found = from_wire(r["Item"]) if "Item" in r else ABSENT
            found_items[key] = found
            self._judge(key, track, found, lambda f, s: f == s)
        for tx in self.txs:
            if tx.acked:
                continue
            self.totals.tx_in_flight_checked += 1
            applied = [found_items.get(k) == state for k, state in tx.new.items()]
            if any(applied) and not all(applied):
                self.totals.partial_tx += 1
                self.totals.problems.append(f"partial {tx.txid}: {applied}")
        self.txs = []

    def check_leaks(self) -> None:
        """After recovery: no temp file anywhere in the data dir, no unreferenced blob."""
        report = check_data_dir(self.server.data_dir, include_services=("s3",), live=True)
        self.totals.leaked += len(report.temp_files)
        self.totals.orphan_blobs += len(report.orphan_blobs)
        for p in report.temp_files:
            self.totals.problems.append(f"leaked temp file {p}")
        for p in report.orphan_blobs:
            self.totals.problems.append(f"orphan blob {p}")
        # Leftover multipart uploads of killed CompleteMultipartUpload calls are legitimate (S3
        # keeps them until aborted); abort them so the next round starts clean.
        s3 = self.client("s3")
        for u in s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []):
            s3.abort_multipart_upload(Bucket=BUCKET, Key=u["Key"], UploadId=u["UploadId"])

    def final_fsck(self) -> dict[str, int]:
        """Stop the server gracefully and check the whole data dir offline."""
        self.server.stop()
        report = check_data_dir(self.server.data_dir)
        for line in report.problems():
            self.totals.problems.append(f"fsck: {line}")
        return report.counts()


def to_wire(item: dict) -> dict:
    out: dict[str, Any] = {}
    for k, v in item.items():
        if isinstance(v, bool) or not isinstance(v, int | str | bytes):
            raise TypeError(k)
        out[k] = {"N": str(v)} if isinstance(v, int) else {"S": v} if isinstance(v, str) else {"B": v}
    return out


def from_wire(item: dict) -> dict:
    out: dict[str, Any] = {}
    for k, v in item.items():
        ((t, x),) = v.items()
        out[k] = int(x) if t == "N" else x
    return out


def _short(state: Any) -> str:
    if isinstance(state, dict):
        return f"item gen={state.get('gen')} v={state.get('v')} tx={state.get('tx')}"
    if isinstance(state, ObjState):
        return f"obj gen={state.gen} sizes={state.sizes}"
    return repr(state)[:120]


def run_campaign(data_dir: Path, rounds: int, *, seed: int = 0, log: Callable[[str], None] = print) -> Totals:
    """Run `rounds` kill -9 rounds against a server in `data_dir`; the totals."""
    campaign = Campaign(data_dir, seed=seed)
    campaign.setup()
    try:
        for n in range(1, rounds + 1):
            log(json.dumps(campaign.round(n)))
        fsck = campaign.final_fsck()
        log(json.dumps({"final_fsck": fsck}))
    finally:
        campaign.server.kill()
    return campaign.totals


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--data-dir", type=Path)
    args = ap.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="strata-crash-")) / "data"
    started = time.monotonic()
    totals = run_campaign(data_dir, args.rounds, seed=args.seed)
    summary = {k: v for k, v in vars(totals).items() if k != "problems"}
    summary["seed"] = args.seed
    summary["seconds"] = round(time.monotonic() - started)
    print(json.dumps(summary, indent=1))
    for p in totals.problems[:50]:
        print("PROBLEM", p)
    bad = totals.lost + totals.torn + totals.partial_tx + totals.leaked + totals.orphan_blobs
    return 1 if bad or totals.problems else 0


if __name__ == "__main__":
    sys.exit(main())
