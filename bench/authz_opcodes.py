"""What authorization adds to an allowed GetItem / GetObject, counted exactly (issue 13's bar).

CPU time and even callgrind instructions move between runs on a shared machine; this counts the
Python bytecode instructions one request executes, which is the same every time for the same code.
In one process: a Strata app (strata.gateway.app.StrataApp, no sockets) with this checkout's code
and a users file, the requests signed by botocore and handed to `StrataApp.handle` as the HTTP
server would hand them. Each (caller, workload) request is replayed with the policy check as
shipped and with `Authorizer.check` skipped (what bench/serve_without_authz.py does), and the
opcodes of `handle` (everything it calls, parsing, the provider, serializing) are counted with
`sys.settrace` (`f_trace_opcodes`). The callers, from the cheapest decision to the dearest:

- root:        the loopback test key (an account root: allowed without evaluation);
- full:        an IAM user with AmazonDynamoDBFullAccess + AmazonS3FullAccess (Resource "*");
- scoped:      an IAM user whose inline policy names the bench's table and bucket by ARN;
- conditioned: the same with an `IpAddress aws:SourceIp 127.0.0.0/8` condition.

Workloads: ddb_get (GetItem), s3_get_4k (GetObject of 4 KiB), s3_get_policy (the same from a bucket
with bench/s3_security_bench.py's 20-statement bucket policy).

C work (hashing, SQLite, HMAC, ContextVar) is not counted, and is the same on both sides except
for the check's own C calls; `--wall` adds the in-process time of 2,000 requests per side (noisy
on a shared machine). bench/authz_cost.py measures the same over real sockets (CPU time or, with
--callgrind, instructions).

    python bench/authz_opcodes.py            # the table
    python bench/authz_opcodes.py --wall     # plus µs per request, in process
    python bench/authz_opcodes.py --profile root:ddb_get   # where the check's opcodes go
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout this file is in
sys.path.insert(1, str(Path(__file__).resolve().parent))  # its benchmarks
# s3_security_bench (the 20-statement policy) imports the shared harness beside the checkout
os.environ.setdefault(
    "STRATA_SHARED_BENCH",
    next(
        (
            str(p / "shared" / "bench")
            for p in Path(__file__).resolve().parents
            if (p / "shared" / "bench").is_dir()
        ),
        "",
    ),
)

import boto3  # noqa: E402
import botocore.awsrequest  # noqa: E402
from s3_security_bench import twenty_statements  # noqa: E402

from strata.gateway.request_body import RequestBody  # noqa: E402
from strata.protocol.http import FileBody, Headers, HttpRequest  # noqa: E402

ACCOUNT = "000000000000"
FULL_KEY = ("AKIABENCHFULL0000001", "benchfullbenchfullbenchfullbenchfull0001")
USERS_FILE = f"""default_account = "{ACCOUNT}"
[accounts."{ACCOUNT}".users.full]
access_key = "{FULL_KEY[0]}"
secret_key = "{FULL_KEY[1]}"
policies = ["arn:aws:iam::aws:policy/AmazonDynamoDBFullAccess", "arn:aws:iam::aws:policy/AmazonS3FullAccess"]
"""
SCOPED = [
    {"Effect": "Allow", "Action": "dynamodb:*", "Resource": f"arn:aws:dynamodb:*:{ACCOUNT}:table/bench*"},
    {"Effect": "Allow", "Action": "s3:*", "Resource": ["arn:aws:s3:::bench-*", "arn:aws:s3:::bench-*/*"]},
]
LOOPBACK = {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}
TABLE, BUCKET, KEY = "bench", "bench-authz", "k"
POLICY_BUCKET = "bench-policy"  # with bench/s3_security_bench.py's 20-statement bucket policy


class _Conn:
    """What a RequestBody needs from its connection (the body is all there at once)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def want_body(self, body: RequestBody) -> None:
        pass

    def body_drained(self) -> None:
        pass


class Harness:
    """The app on a loop in this thread; boto3 clients (set-up) call it from a worker thread."""

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.loop = loop

    def request(self, prepared: Any) -> tuple[HttpRequest, RequestBody]:
        """A captured botocore request as the HTTP server hands it to the app."""
        url = prepared.url
        rest = url.split("://", 1)[1]
        host, _, path_query = rest.partition("/")
        path, _, query = ("/" + path_query).partition("?")
        headers = Headers(
            [(k.lower(), v if isinstance(v, str) else v.decode()) for k, v in prepared.headers.items()]
        )
        if "host" not in headers:
            headers.add("host", host)
        body_bytes = prepared.body or b""
        if isinstance(body_bytes, str):
            body_bytes = body_bytes.encode()
        elif not isinstance(body_bytes, bytes):
            body_bytes = body_bytes.read()
        request = HttpRequest(
            method=prepared.method,
            raw_path=path,
            query_string=query,
            headers=headers,
            host=host,
            client="127.0.0.1",
        )
        body = RequestBody(_Conn(self.loop), False, len(body_bytes))
        if body_bytes:
            body._feed(body_bytes)
        body._finish()
        return request, body

    def client(self, service: str, key: tuple[str, str], capture: list | None = None) -> Any:
        """A boto3 client whose requests go to the app (or, with `capture`, are only recorded)."""
        c = boto3.client(
            service,
            endpoint_url="http://127.0.0.1:4566",
            region_name="us-east-1",
            aws_access_key_id=key[0],
            aws_secret_access_key=key[1],
        )

        def send(request: Any, **_: Any) -> Any:
            if capture is not None:
                capture.append(request)
                raise _Captured
            future = asyncio.run_coroutine_threadsafe(self._answer(request), self.loop)
            status, headers, body = future.result(120)
            return botocore.awsrequest.AWSResponse(request.url, status, headers, _Raw(body))

        c.meta.events.register("before-send", send)
        return c

    async def _answer(self, prepared: Any) -> tuple[int, dict, bytes]:
        request, body = self.request(prepared)
        response = await self.app.handle(request, body)
        data = response.body
        if isinstance(data, FileBody):
            with open(data.path, "rb") as f:
                f.seek(data.offset)
                data = f.read() if data.length is None else f.read(data.length)
        elif not isinstance(data, bytes):
            data = b"".join([chunk async for chunk in data])  # type: ignore[union-attr]
        return response.status, dict(response.headers), data


class _Captured(Exception):
    pass


class _Raw:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, *_: Any, **__: Any) -> Any:
        yield self.data


def signed(h: Harness, key: tuple[str, str], workload: str) -> Any:
    """The botocore request a client would send for a workload (signed once, replayed)."""
    got: list = []
    if workload == "ddb_get":
        c = h.client("dynamodb", key, got)
        call: Any = lambda: c.get_item(TableName=TABLE, Key={"pk": {"S": "item"}})  # noqa: E731
    else:
        c = h.client("s3", key, got)
        bucket = POLICY_BUCKET if workload == "s3_get_policy" else BUCKET
        call = lambda: c.get_object(Bucket=bucket, Key=KEY)  # noqa: E731
    try:
        call()
    except _Captured:
        pass
    return got[0]


def set_up(h: Harness) -> dict[str, tuple[str, str]]:
    """The table, the bucket, the object and the IAM users; returns each caller's key."""
    root = ("test", "test")
    ddb = h.client("dynamodb", root)
    ddb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName=TABLE, Item={"pk": {"S": "item"}, "v": {"S": "x" * 100}, "n": {"N": "7"}})
    s3 = h.client("s3", root)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"x" * 4096)
    s3.create_bucket(Bucket=POLICY_BUCKET)
    s3.put_object(Bucket=POLICY_BUCKET, Key=KEY, Body=b"x" * 4096)
    s3.put_bucket_policy(Bucket=POLICY_BUCKET, Policy=json.dumps(twenty_statements(POLICY_BUCKET)))
    iam = h.client("iam", root)
    keys = {"root": root, "full": FULL_KEY}
    for name, statements in (
        ("scoped", SCOPED),
        ("conditioned", [dict(s, Condition=LOOPBACK) for s in SCOPED]),
    ):
        iam.create_user(UserName=name)
        iam.put_user_policy(
            UserName=name,
            PolicyName="bench",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
        )
        k = iam.create_access_key(UserName=name)["AccessKey"]
        keys[name] = (k["AccessKeyId"], k["SecretAccessKey"])
    return keys


class OpcodeCounter:
    """Counts the bytecode instructions executed in new frames while installed (sys.settrace)."""

    def __init__(self, by_function: bool = False) -> None:
        self.count = 0
        self.by_function: collections.Counter | None = collections.Counter() if by_function else None

    def _global(self, frame: Any, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        return self._local

    def _local(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "opcode":
            self.count += 1
            if self.by_function is not None:
                code = frame.f_code
                self.by_function[f"{Path(code.co_filename).name}:{code.co_name}"] += 1
        return self._local

    def __enter__(self) -> OpcodeCounter:
        sys.settrace(self._global)
        return self

    def __exit__(self, *_: Any) -> None:
        sys.settrace(None)


async def handle_once(h: Harness, prepared: Any, counter: OpcodeCounter | None) -> int:
    request, body = h.request(prepared)
    if counter is None:
        response = await h.app.handle(request, body)
    else:
        with counter:
            response = await h.app.handle(request, body)
    if response.status != 200:
        raise SystemExit(f"request answered {response.status}: {getattr(response, 'body', b'')[:300]!r}")
    return response.status


async def count(h: Harness, prepared: Any, skip: bool, repeat: int = 7) -> int:
    """Median opcodes of one request (after warm-up requests fill every cache)."""
    with _skipped(h, skip):
        for _ in range(5):
            await handle_once(h, prepared, None)
        counts = []
        for _ in range(repeat):
            counter = OpcodeCounter()
            await handle_once(h, prepared, counter)
            counts.append(counter.count)
    return int(statistics.median(counts))


async def wall(h: Harness, prepared: Any, skip: bool, n: int) -> float:
    """µs per request in process (the median of 5 batches)."""
    with _skipped(h, skip):
        for _ in range(50):
            await handle_once(h, prepared, None)
        per = []
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(n // 5):
                await handle_once(h, prepared, None)
            per.append((time.perf_counter() - t) / (n // 5) * 1e6)
    return statistics.median(per)


class _skipped:
    """`Authorizer.check` replaced by a no-op on this app while inside (with skip)."""

    def __init__(self, h: Harness, skip: bool) -> None:
        self.h, self.skip = h, skip

    def __enter__(self) -> None:
        if self.skip:
            self.h.app.authz.check = lambda *a, **k: None

    def __exit__(self, *_: Any) -> None:
        self.h.app.authz.__dict__.pop("check", None)


async def run(args: argparse.Namespace) -> None:
    from strata.config import Settings
    from strata.gateway.app import StrataApp
    from strata.server import prepare

    work = Path(tempfile.mkdtemp(prefix="authz-opcodes-"))
    users = work / "users.toml"
    users.write_text(USERS_FILE)
    settings = Settings(
        data_dir=work / "data",
        users_file=users,
        tls_port=None,
        fsync=False,
        access_log=False,
        s3_default_encryption=False,
    )
    prepare(settings)
    app = StrataApp(settings)
    await app.start()
    loop = asyncio.get_running_loop()
    h = Harness(app, loop)
    keys = await loop.run_in_executor(None, set_up, h)
    callers = args.callers.split(",")
    workloads = args.workloads.split(",")
    if args.profile:
        caller, workload = args.profile.split(":")
        prepared = signed(h, keys[caller], workload)
        for skip in (True, False):
            with _skipped(h, skip):
                for _ in range(5):
                    await handle_once(h, prepared, None)
                counter = OpcodeCounter(by_function=True)
                await handle_once(h, prepared, counter)
            print(f"{'skipped' if skip else 'checked'}: {counter.count} opcodes")
            if skip:
                base = counter.by_function
            else:
                assert base is not None and counter.by_function is not None
                diff = counter.by_function - base
                for name, n in diff.most_common(40):
                    print(f"  +{n:5d} {name}")
                for name, n in (base - counter.by_function).most_common(10):
                    print(f"  -{n:5d} {name}")
        await app.stop()
        return
    rows = []
    for workload in workloads:
        for caller in callers:
            prepared = signed(h, keys[caller], workload)
            skipped = await count(h, prepared, True)
            checked = await count(h, prepared, False)
            row = [workload, caller, skipped, checked, checked - skipped, (checked - skipped) / skipped * 100]
            if args.wall:
                ws = await wall(h, prepared, True, args.wall_requests)
                wc = await wall(h, prepared, False, args.wall_requests)
                row += [ws, wc]
            rows.append(row)
    head = f"{'workload':10} {'caller':12} {'skipped':>8} {'checked':>8} {'added':>6} {'%':>6}"
    if args.wall:
        head += f" {'µs skipped':>11} {'µs checked':>11}"
    print(head)
    for r in rows:
        line = f"{r[0]:10} {r[1]:12} {r[2]:8d} {r[3]:8d} {r[4]:6d} {r[5]:5.1f}%"
        if args.wall:
            line += f" {r[6]:11.1f} {r[7]:11.1f}"
        print(line)
    await app.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--callers", default="root,full,scoped,conditioned")
    ap.add_argument("--workloads", default="ddb_get,s3_get_4k,s3_get_policy")
    ap.add_argument("--wall", action="store_true", help="also µs per request in process")
    ap.add_argument("--wall-requests", type=int, default=2000)
    ap.add_argument("--profile", help="CALLER:WORKLOAD: the functions whose opcodes the check adds")
    args = ap.parse_args()
    os.environ.setdefault("STRATA_S3_DEFAULT_ENCRYPTION", "off")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
