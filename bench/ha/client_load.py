"""The proof's clients (bench/ha_proof.py): boto3 through the virtual address with no botocore
retries, and the mixed S3/DynamoDB load whose threads retry an operation themselves until it is
acknowledged, recording every acknowledged write (to read back) and every failed attempt by code
(a code AWS's SDKs would not retry is a violation).
"""

from __future__ import annotations

import hashlib
import random
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from configs import (
    Secrets,
    Topology,
)
from timeline import now

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
