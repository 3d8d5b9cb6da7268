"""Model-driven random requests against a running Strata: no crash, no 5xx, no hang.

Every operation of every served service (S3, DynamoDB, RDS, ElastiCache, STS, EFS) gets inputs
generated from its botocore input shape: mostly well-typed values drawn from small pools of names that exist
(so requests reach the providers, not only the validators), mixed with invalid ones (out of range,
wrong length, odd strings, missing required members, conflicting union members). A share of the
serialized requests is then mutated on the wire (JSON values of the wrong type, query parameters
replaced, XML bodies cut or garbled, path bytes that are not UTF-8). Each request is signed with
SigV4 like botocore signs it and sent over a keep-alive connection.

Each answer is checked as an SDK would read it, with botocore's own response parser:
- any 5xx is a finding, except 501 NotImplemented (an operation Strata does not have yet: counted
  per operation, not a crash);
- a 4xx must parse into an error with a code (the protocol's error shape);
- a 2xx must parse against the output shape;
- no answer within --timeout seconds is a hang.

Operations that start engines (RDS instances and clusters, cache clusters, replication groups,
snapshots, restores, failovers) are skipped: a valid random CreateDBInstance would start PostgreSQL.
Describe/List/Delete and the cheap ones (parameter, subnet and option groups, tags, users) stay.

    python bench/fuzz_requests.py --endpoint http://127.0.0.1:4566 --requests 1000000 --workers 3

Findings go to --out (JSON lines: the request as sent and the answer); the summary to stdout.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import multiprocessing
import random
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import botocore.session
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import create_request_object, prepare_request_dict
from botocore.credentials import Credentials
from botocore.model import OperationModel, ServiceModel
from botocore.parsers import create_parser
from botocore.serialize import create_serializer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fuzz_inputs import REGION, Maker, Pools, mutate  # noqa: E402  (a sibling module, not a package)

SERVICES = ("s3", "dynamodb", "rds", "elasticache", "sts", "efs")
CREDS = Credentials("test", "test")

# Operations that would start (or restart) a real engine, or copy one.
_ENGINE_OPS = re.compile(
    r"^(Create|Restore|Start|Stop|Reboot|Failover|Promote|Switchover|Increase|Decrease|TestFailover|"
    r"Modify|Copy|Purchase|Rebalance|Complete|Register|Apply|Backtrack|Import|Batch|Authorize|Revoke)"
)
_CHEAP_OPS = re.compile(r"(ParameterGroup|SubnetGroup|OptionGroup|SecurityGroup|Tags|User|UserGroup)s?$")


def engine_free(service: str, operation: str) -> bool:
    """Whether an operation can be fuzzed without starting database, cache or NFS engines."""
    if service == "efs":
        return operation != "CreateMountTarget"
    if service not in ("rds", "elasticache"):
        return True
    if _ENGINE_OPS.match(operation) is None:
        return True
    return _CHEAP_OPS.search(operation) is not None and not operation.startswith(("Restore", "Failover"))


@dataclass
class Result:
    sent: int = 0
    statuses: Counter = field(default_factory=Counter)
    not_implemented: Counter = field(default_factory=Counter)
    findings: list[dict] = field(default_factory=list)
    skipped: int = 0

    def merge(self, other: Result) -> None:
        self.sent += other.sent
        self.statuses.update(other.statuses)
        self.not_implemented.update(other.not_implemented)
        self.findings.extend(other.findings)
        self.skipped += other.skipped


class Fuzzer:
    def __init__(self, endpoint: str, seed: int, pools: Pools, timeout: float = 60.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        u = urlsplit(self.endpoint)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.rng = random.Random(seed)
        self.maker = Maker(self.rng, pools)
        self.timeout = timeout
        session = botocore.session.get_session()
        self.models: dict[str, ServiceModel] = {s: session.get_service_model(s) for s in SERVICES}
        self.ops: dict[str, list[OperationModel]] = {
            s: [m.operation_model(n) for n in m.operation_names if engine_free(s, n)]
            for s, m in self.models.items()
        }
        self.serializers = {
            s: create_serializer(m.protocol, include_validation=False) for s, m in self.models.items()
        }
        self.parsers = {s: create_parser(m.protocol) for s, m in self.models.items()}
        self.conn: http.client.HTTPConnection | None = None
        self.unimplemented: set[tuple[str, str]] = set()
        self.previous: tuple[str, OperationModel, Any] | None = None

    # -- one request -----------------------------------------------------------------------------

    def build(self, service: str) -> tuple[OperationModel, Any] | None:
        rng = self.rng
        op = rng.choice(self.ops[service])
        for _ in range(8):  # mostly operations Strata has: a 501 teaches nothing twice
            if (service, op.name) not in self.unimplemented or rng.random() < 0.02:
                break
            op = rng.choice(self.ops[service])
        model = self.models[service]
        params = self.maker.structure(op.input_shape, 0) if op.input_shape is not None else {}
        try:
            req = self.serializers[service].serialize_to_request(params, op)
        except Exception:  # noqa: BLE001 - botocore cannot serialize every invalid value; skip those
            return None
        req["host_prefix"] = None
        if rng.random() < 0.2:
            mutate(rng, model.protocol, req)
        if service == "s3" and isinstance(req.get("body"), bytes) and req["body"] and rng.random() < 0.7:
            req["headers"]["Content-MD5"] = base64.b64encode(hashlib.md5(req["body"]).digest()).decode()
        req.setdefault("context", {})
        try:
            prepare_request_dict(req, self.endpoint)
            aws = create_request_object(req)
            signer = S3SigV4Auth if service == "s3" else SigV4Auth
            signer(CREDS, model.signing_name or service, REGION).add_auth(aws)
            prepared = aws.prepare()
        except Exception:  # noqa: BLE001 - e.g. a header value botocore refuses to send
            return None
        return op, prepared

    def send(self, prepared: Any) -> tuple[int, dict[str, str], bytes] | None:
        """Send one prepared request; None when no answer came within the timeout (a hang)."""
        u = urlsplit(prepared.url)
        target = (u.path or "/") + (f"?{u.query}" if u.query else "")
        body = prepared.body or b""
        if isinstance(body, str):
            body = body.encode()
        headers = {k: v.encode("utf-8") if isinstance(v, str) else v for k, v in prepared.headers.items()}
        # A random ContentLength member (S3 PutObject, UploadPart) must not lie about the framing:
        # the server would rightly read the next request as this one's body.
        headers = {
            k: v for k, v in headers.items() if k.lower() not in ("content-length", "transfer-encoding")
        }
        headers["Content-Length"] = str(len(body))
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(prepared.method, target, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                answer = resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
                if resp.getheader("connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return answer
            except TimeoutError:
                self.conn.close()
                self.conn = None
                return None
            except (OSError, http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        return None

    def check(self, service: str, op: OperationModel, prepared: Any, answer: Any, result: Result) -> None:
        if answer is None:
            result.statuses["hang"] += 1
            result.findings.append(_finding("hang", service, op, prepared, None))
            return
        status, headers, body = answer
        result.statuses[status // 100 * 100] += 1
        parsed: dict | None = None
        problem = None
        try:
            response = {"status_code": status, "headers": headers, "body": body}
            if op.has_streaming_output and status < 300:
                response["body"] = _Stream(body)
            parsed = self.parsers[service].parse(response, op.output_shape)
        except Exception as e:  # noqa: BLE001 - an answer botocore cannot read is a finding
            problem = f"unparseable: {type(e).__name__}: {e}"
        code = (parsed or {}).get("Error", {}).get("Code") if parsed else None
        if status == 501 and code == "NotImplemented":
            result.not_implemented[f"{service}.{op.name}"] += 1
            result.statuses[501] += 1
            result.statuses[500] -= 1
            self.unimplemented.add((service, op.name))
            return
        if status == 501 and prepared.method == "HEAD":
            # A HEAD answer has no body to name its code: S3's 501 there is its NotImplemented
            # refusal of a header Strata does not support (SSE-C), not a crash.
            result.statuses[501] += 1
            result.statuses[500] -= 1
            result.statuses["head-501"] += 1
            return
        if problem and status < 300 and not _is_document(headers):
            # A 2xx that is not a document: the request became another operation (an empty UploadId
            # that botocore leaves out, a mutated query key) and got, say, object bytes. Not a fault.
            result.statuses["2xx-other-operation"] += 1
            return
        if status >= 500:
            problem = f"status {status}"
        elif status >= 300 and problem is None and not code:
            problem = "error without a code"
        if problem:
            finding = _finding(problem, service, op, prepared, answer)
            if self.previous is not None:  # what went before on this connection
                finding["previous"] = _finding("previous", *self.previous, None)
            result.findings.append(finding)

    def run(self, count: int, progress: Any = None) -> Result:
        result = Result()
        services = list(SERVICES)
        for i in range(count):
            service = self.rng.choice(services)
            built = self.build(service)
            if built is None:
                result.skipped += 1
                continue
            op, prepared = built
            try:
                answer = self.send(prepared)
            except (ValueError, UnicodeError):  # http.client refuses to send it (e.g. a newline in a header)
                result.skipped += 1
                continue
            except OSError as e:
                result.statuses["connection-error"] += 1
                result.findings.append(_finding(f"connection: {e}", service, op, prepared, None))
                time.sleep(0.5)
                continue
            result.sent += 1
            self.check(service, op, prepared, answer, result)
            self.previous = (service, op, prepared) if self.conn is not None else None
            if progress is not None and i % 500 == 0:
                progress(result)
        if self.conn is not None:
            self.conn.close()
        return result


def _is_document(headers: dict[str, str]) -> bool:
    content_type = headers.get("content-type", "")
    return "xml" in content_type or "json" in content_type


class _Stream:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, *_: Any) -> bytes:
        data, self.data = self.data, b""
        return data

    def stream(self, **_: Any) -> Any:
        yield self.read()


def _finding(problem: str, service: str, op: OperationModel, prepared: Any, answer: Any) -> dict:
    body = prepared.body or b""
    if isinstance(body, bytes):
        body = body[:2000].decode("utf-8", "replace")
    out = {
        "problem": problem,
        "operation": f"{service}.{op.name}",
        "method": prepared.method,
        "url": prepared.url[:2000],
        "headers": {
            k: (v.decode("latin-1") if isinstance(v, bytes) else v) for k, v in prepared.headers.items()
        },
        "body": str(body)[:2000],
    }
    if answer is not None:
        out["status"] = answer[0]
        out["answer"] = answer[2][:1000].decode("utf-8", "replace")
    return out


# -- setup and the command line ------------------------------------------------------------------


def setup(endpoint: str, pools: Pools) -> None:
    """Create the pooled resources (idempotent)."""
    import boto3
    from botocore.config import Config

    session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)
    cfg = Config(retries={"max_attempts": 1})
    s3 = session.client("s3", endpoint_url=endpoint, config=cfg)
    for b in pools.buckets:
        try:
            s3.create_bucket(Bucket=b)
        except s3.exceptions.ClientError:
            pass
    s3.put_bucket_versioning(Bucket=pools.buckets[1], VersioningConfiguration={"Status": "Enabled"})
    for b in pools.buckets:
        for k in pools.keys:
            s3.put_object(Bucket=b, Key=k, Body=b"x" * (200_000 if k == "big" else 10))
    ddb = session.client("dynamodb", endpoint_url=endpoint, config=cfg)
    try:
        ddb.create_table(
            TableName=pools.table,
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "N"},
                {"AttributeName": "a", "AttributeType": "S"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "gsi",
                    "KeySchema": [{"AttributeName": "a", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
        )
    except ddb.exceptions.ClientError:
        pass
    for i in range(5):
        ddb.put_item(
            TableName=pools.table,
            Item={"pk": {"S": "k"}, "sk": {"N": str(i)}, "a": {"S": "v"}, "l": {"L": [{"N": "1"}]}},
        )


def _worker(args: tuple[str, int, int, str, float]) -> Result:
    endpoint, seed, count, prefix, timeout = args
    return Fuzzer(endpoint, seed, Pools(prefix), timeout).run(count)


def fuzz(
    endpoint: str, requests: int, seed: int, workers: int = 1, prefix: str = "fuzz", timeout: float = 60.0
) -> Result:
    """Run `requests` random requests (split over `workers` processes) and return the tally."""
    pools = Pools(prefix)
    setup(endpoint, pools)
    if workers <= 1:
        return Fuzzer(endpoint, seed, pools, timeout).run(requests)
    chunk = 20_000
    jobs = []
    n = 0
    while n < requests:
        size = min(chunk, requests - n)
        jobs.append((endpoint, seed * 1_000_003 + len(jobs), size, prefix, timeout))
        n += size
    total = Result()
    started = time.monotonic()
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for part in pool.imap_unordered(_worker, jobs):
            total.merge(part)
            rate = total.sent / max(time.monotonic() - started, 1e-9)
            print(
                f"{total.sent} sent ({rate:.0f}/s), statuses {dict(total.statuses)}, "
                f"findings {len(total.findings)}",
                file=sys.stderr,
                flush=True,
            )
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", default="http://127.0.0.1:4566")
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--prefix", default="fuzz")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--out", default="fuzz-findings.jsonl")
    a = ap.parse_args()
    result = fuzz(a.endpoint, a.requests, a.seed, a.workers, a.prefix, a.timeout)
    with open(a.out, "w") as f:
        for finding in result.findings:
            f.write(json.dumps(finding) + "\n")
    print(f"requests sent: {result.sent} (skipped, not serializable: {result.skipped})")
    print(f"statuses: {dict(sorted(result.statuses.items(), key=str))}")
    print(f"findings: {len(result.findings)} -> {a.out}")
    for problem, n in Counter(f"{x['problem'][:60]} {x['operation']}" for x in result.findings).most_common(
        40
    ):
        print(f"  {n:6}  {problem}")
    print(f"501 NotImplemented operations: {len(result.not_implemented)}")
    for op, n in sorted(result.not_implemented.items()):
        print(f"  {n:6}  {op}")


if __name__ == "__main__":
    main()
