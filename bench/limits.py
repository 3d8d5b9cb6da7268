"""AWS's size and count limits at full scale, with the server's peak memory for each.

    put5g    a single 5 GiB PUT (exactly S3's limit) streamed in and out; 5 GiB + 1 refused
    parts    a 10,000-part multipart upload (64 KiB parts: the minimum part size is lowered,
             10,000 parts of 5 MiB would need ~100 GB of disk); part 10,001 refused
    items    1,000 DynamoDB items of exactly 400 KB, written by 8 clients and scanned back;
             400 KB + 1 refused
    tx       TransactWriteItems of 100 actions (200 of them from 4 clients); 101 refused
    list     a full ListObjectsV2 walk of a 1,000,000-key bucket (keys written straight into
             the metadata store with the server stopped, as bench/s3_bench.py does), and a
             delimiter listing of its 1,000 prefixes

Usage: python bench/limits.py [put5g parts items tx list] [--data-dir DIR]
Each case prints its times and the server's peak RSS during it (VmHWM after clear_refs),
next to its RSS before. Needs ~6 GiB of free disk for put5g.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.strata_process import StrataProcess  # noqa: E402

KiB, MiB, GiB = 1024, 1024**2, 1024**3
PART = 64 * KiB
MAX_ITEM = 400 * KiB


class Memory:
    """The server's resident memory: now, and the peaks since the last reset.

    VmHWM (the kernel's peak) counts file pages mapped by SQLite's mmap reads too; the anonymous
    (heap) peak is sampled every 20 ms by a thread, which is what grows with buffered bodies.
    """

    def __init__(self, server: StrataProcess) -> None:
        self.server = server
        self._anon_peak = 0.0
        threading.Thread(target=self._sample, daemon=True).start()

    def _field(self, name: str) -> float:
        assert self.server.proc is not None
        for line in Path(f"/proc/{self.server.proc.pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1]) / KiB
        raise KeyError(name)

    def _sample(self) -> None:
        while True:
            try:
                self._anon_peak = max(self._anon_peak, self._field("RssAnon"))
            except (OSError, KeyError, AssertionError):
                pass
            time.sleep(0.02)

    def reset(self) -> float:
        """Reset the peaks (VmHWM through clear_refs); the RSS now, in MiB."""
        assert self.server.proc is not None
        Path(f"/proc/{self.server.proc.pid}/clear_refs").write_text("5")
        self._anon_peak = self._field("RssAnon")
        return self._field("VmRSS")

    def peak(self) -> float:
        return self._field("VmHWM")

    def anon_peak(self) -> float:
        return max(self._anon_peak, self._field("RssAnon"))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def report(case: str, **numbers: Any) -> None:
    print(
        json.dumps(
            {"case": case, **{k: round(v, 2) if isinstance(v, float) else v for k, v in numbers.items()}}
        )
    )
    sys.stdout.flush()


class Pattern:
    """A seekable body of `size` bytes that never exists in memory at once: 1 MiB blocks, each
    filled with a byte derived from its index."""

    def __init__(self, size: int) -> None:
        self.size, self.pos = size, 0

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.pos if n is None or n < 0 else min(n, self.size - self.pos)
        out = bytearray()
        while n > 0:
            block = self.pos // MiB
            take = min(n, MiB - self.pos % MiB)
            out += bytes([block * 7 % 251]) * take
            self.pos += take
            n -= take
        return bytes(out)

    def seek(self, pos: int, whence: int = 0) -> int:
        self.pos = {0: pos, 1: self.pos + pos, 2: self.size + pos}[whence]
        return self.pos

    def tell(self) -> int:
        return self.pos

    def md5(self) -> str:
        h = hashlib.md5()
        self.seek(0)
        while chunk := self.read(8 * MiB):
            h.update(chunk)
        self.seek(0)
        return h.hexdigest()


def s3_client(server: StrataProcess) -> Any:
    return server.client(
        "s3",
        config=Config(
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            read_timeout=600,
            max_pool_connections=32,
        ),
    )


def refused_by_length(server: StrataProcess, bucket: str, key: str, length: int) -> bytes:
    """The answer to a PUT head announcing `length` bytes (Expect: 100-continue, no body sent)."""
    req = AWSRequest(
        "PUT",
        f"{server.endpoint}/{bucket}/{key}",
        headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD", "Content-Length": str(length)},
    )
    SigV4Auth(Credentials("test", "test"), "s3", "us-east-1").add_auth(req)
    head = f"PUT /{bucket}/{key} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in req.headers.items() if k.lower() != "host")
    head += "Expect: 100-continue\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head.encode())
        answer = b""
        while b"</Error>" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def case_put5g(server: StrataProcess, mem: Memory) -> None:
    s3 = s3_client(server)
    s3.create_bucket(Bucket="limits-5g")
    size = 5 * GiB
    body = Pattern(size)
    t_md5, md5 = timed(body.md5)
    before = mem.reset()
    t_put, r = timed(lambda: s3.put_object(Bucket="limits-5g", Key="five", Body=body, ContentLength=size))
    put_peak, put_anon = mem.peak(), mem.anon_peak()
    assert r["ETag"] == f'"{md5}"', r["ETag"]
    mem.reset()

    def read_back() -> tuple[int, str]:
        h, n = hashlib.md5(), 0
        for chunk in s3.get_object(Bucket="limits-5g", Key="five")["Body"].iter_chunks(8 * MiB):
            h.update(chunk)
            n += len(chunk)
        return n, h.hexdigest()

    t_get, (n, got_md5) = timed(read_back)
    get_peak, get_anon = mem.peak(), mem.anon_peak()
    assert (n, got_md5) == (size, md5)
    answer = refused_by_length(server, "limits-5g", "five-plus-one", size + 1)
    assert b" 400 " in answer.split(b"\r\n", 1)[0] and b"<Code>EntityTooLarge</Code>" in answer, answer[:300]
    s3.delete_object(Bucket="limits-5g", Key="five")
    report(
        "put5g",
        bytes=size,
        client_md5_s=t_md5,
        put_s=t_put,
        put_MiB_s=size / MiB / t_put,
        get_s=t_get,
        get_MiB_s=size / MiB / t_get,
        rss_before_MiB=before,
        rss_peak_put_MiB=put_peak,
        anon_peak_put_MiB=put_anon,
        rss_peak_get_MiB=get_peak,
        anon_peak_get_MiB=get_anon,
        plus_one="EntityTooLarge",
    )


def case_parts(server: StrataProcess, mem: Memory) -> None:
    s3 = s3_client(server)
    s3.create_bucket(Bucket="limits-parts")
    up = s3.create_multipart_upload(Bucket="limits-parts", Key="many")["UploadId"]

    def part_body(n: int) -> bytes:
        return hashlib.sha256(str(n).encode()).digest() * (PART // 32)

    def upload(n: int) -> dict:
        etag = s3.upload_part(
            Bucket="limits-parts", Key="many", UploadId=up, PartNumber=n, Body=part_body(n)
        )["ETag"]
        return {"PartNumber": n, "ETag": etag}

    before = mem.reset()
    with ThreadPoolExecutor(16) as pool:
        t_parts, parts = timed(lambda: list(pool.map(upload, range(1, 10_001))))
    try:
        s3.upload_part(Bucket="limits-parts", Key="many", UploadId=up, PartNumber=10_001, Body=b"x")
        refused = "accepted!"
    except ClientError as e:
        refused = e.response["Error"]["Code"]
    assert refused == "InvalidArgument", refused

    def list_all() -> int:
        pages = s3.get_paginator("list_parts").paginate(Bucket="limits-parts", Key="many", UploadId=up)
        return sum(len(p.get("Parts", [])) for p in pages)

    t_list, listed = timed(list_all)
    assert listed == 10_000
    t_complete, r = timed(
        lambda: s3.complete_multipart_upload(
            Bucket="limits-parts", Key="many", UploadId=up, MultipartUpload={"Parts": parts}
        )
    )
    assert r["ETag"].endswith('-10000"'), r["ETag"]
    whole = hashlib.md5()
    for n in range(1, 10_001):
        whole.update(part_body(n))
    got = hashlib.md5()
    t_get, _ = timed(
        lambda: [
            got.update(c)
            for c in s3.get_object(Bucket="limits-parts", Key="many")["Body"].iter_chunks(8 * MiB)
        ]
    )
    assert got.hexdigest() == whole.hexdigest()
    report(
        "parts",
        parts=10_000,
        part_bytes=PART,
        upload_parts_s=t_parts,
        parts_per_s=10_000 / t_parts,
        list_parts_s=t_list,
        complete_s=t_complete,
        get_s=t_get,
        rss_before_MiB=before,
        rss_peak_MiB=mem.peak(),
        anon_peak_MiB=mem.anon_peak(),
        part_10001=refused,
    )


def _table(server: StrataProcess, name: str) -> Any:
    ddb = server.client("dynamodb", config=Config(max_pool_connections=32, read_timeout=120))
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return ddb


def case_items(server: StrataProcess, mem: Memory) -> None:
    ddb = _table(server, "limits-items")

    def item(i: int) -> dict:
        pk = f"item{i:05d}"
        # size = len("pk") + len(pk) + len("v") + len(value) = 409,600 bytes exactly
        value = (pk * (MAX_ITEM // len(pk) + 1))[: MAX_ITEM - 3 - len(pk)]
        return {"pk": {"S": pk}, "v": {"S": value}}

    before = mem.reset()
    with ThreadPoolExecutor(8) as pool:
        t_put, _ = timed(
            lambda: list(
                pool.map(lambda i: ddb.put_item(TableName="limits-items", Item=item(i)), range(1000))
            )
        )
    put_peak, put_anon = mem.peak(), mem.anon_peak()
    try:
        big = item(99_999)
        big["v"]["S"] += "x"
        ddb.put_item(TableName="limits-items", Item=big)
        refused = "accepted!"
    except ClientError as e:
        refused = e.response["Error"]["Message"]
    assert refused == "Item size has exceeded the maximum allowed size", refused
    mem.reset()

    def scan_all() -> int:
        n = 0
        for page in ddb.get_paginator("scan").paginate(TableName="limits-items"):
            for it in page["Items"]:
                assert len(it["pk"]["S"]) + len(it["v"]["S"]) + 3 == MAX_ITEM
                n += 1
        return n

    t_scan, n = timed(scan_all)
    assert n == 1000
    t_get, got = timed(
        lambda: ddb.get_item(TableName="limits-items", Key={"pk": {"S": "item00500"}}, ConsistentRead=True)
    )
    assert got["Item"] == item(500)
    report(
        "items",
        items=1000,
        item_bytes=MAX_ITEM,
        put_s=t_put,
        puts_per_s=1000 / t_put,
        scan_s=t_scan,
        get_one_ms=t_get * 1000,
        rss_before_MiB=before,
        rss_peak_put_MiB=put_peak,
        anon_peak_put_MiB=put_anon,
        rss_peak_scan_MiB=mem.peak(),
        anon_peak_scan_MiB=mem.anon_peak(),
        plus_one=refused,
    )


def case_tx(server: StrataProcess, mem: Memory) -> None:
    ddb = _table(server, "limits-tx")
    pad = "p" * 1000

    def tx(t: int) -> float:
        items = [
            {"Put": {"TableName": "limits-tx", "Item": {"pk": {"S": f"t{t}-{i}"}, "pad": {"S": pad}}}}
            for i in range(100)
        ]
        start = time.perf_counter()
        ddb.transact_write_items(TransactItems=items)
        return time.perf_counter() - start

    before = mem.reset()
    with ThreadPoolExecutor(4) as pool:
        t_all, lat = timed(lambda: list(pool.map(tx, range(200))))
    try:
        ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "limits-tx", "Item": {"pk": {"S": f"no{i}"}}}} for i in range(101)
            ]
        )
        refused = "accepted!"
    except ClientError as e:
        refused = e.response["Error"]["Code"]
    assert refused == "ValidationException", refused
    count = sum(p["Count"] for p in ddb.get_paginator("scan").paginate(TableName="limits-tx", Select="COUNT"))
    assert count == 20_000, count
    lat.sort()
    report(
        "tx",
        transactions=200,
        actions_each=100,
        total_s=t_all,
        tx_per_s=200 / t_all,
        items_per_s=20_000 / t_all,
        latency_median_ms=statistics.median(lat) * 1000,
        latency_p99_ms=lat[int(len(lat) * 0.99) - 1] * 1000,
        rss_before_MiB=before,
        rss_peak_MiB=mem.peak(),
        anon_peak_MiB=mem.anon_peak(),
        action_101=refused,
    )


def case_list(server: StrataProcess, mem: Memory) -> None:
    from bench.s3_bench import _fill

    s3 = s3_client(server)
    s3.list_buckets()
    server.stop()
    t_fill, _ = timed(
        lambda: _fill(
            server.data_dir, "limits-1m", (f"d{d:03d}/obj{i:08d}" for d in range(1000) for i in range(1000))
        )
    )
    server.start()
    mem.server = server
    s3 = s3_client(server)
    before = mem.reset()
    pages = 0

    def walk() -> int:
        nonlocal pages
        n, last = 0, ""
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket="limits-1m", PaginationConfig={"PageSize": 1000}
        ):
            pages += 1
            for c in page.get("Contents", []):
                assert c["Key"] > last
                last = c["Key"]
                n += 1
        return n

    t_walk, n = timed(walk)
    assert n == 1_000_000
    t_delim, r = timed(lambda: s3.list_objects_v2(Bucket="limits-1m", Delimiter="/", MaxKeys=1000))
    assert len(r["CommonPrefixes"]) == 1000
    t_versions, _ = timed(
        lambda: s3.list_object_versions(Bucket="limits-1m", KeyMarker="d999/", MaxKeys=1000)
    )
    report(
        "list",
        keys=n,
        pages=pages,
        fill_s=t_fill,
        full_walk_s=t_walk,
        page_ms=t_walk / pages * 1000,
        keys_per_s=n / t_walk,
        delimiter_1000_prefixes_ms=t_delim * 1000,
        versions_last_page_ms=t_versions * 1000,
        rss_before_MiB=before,
        rss_peak_MiB=mem.peak(),
        anon_peak_MiB=mem.anon_peak(),
    )


CASES = {"put5g": case_put5g, "parts": case_parts, "items": case_items, "tx": case_tx, "list": case_list}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cases", nargs="*", help=f"some of {', '.join(CASES)} (default: all)")
    ap.add_argument("--data-dir", type=Path)
    args = ap.parse_args()
    unknown = set(args.cases) - set(CASES)
    if unknown:
        ap.error(f"unknown cases {sorted(unknown)}")
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="strata-limits-")) / "data"
    server = StrataProcess(data_dir, extra_env={"STRATA_LIMIT_S3_MIN_PART_SIZE": str(PART)}).start()
    mem = Memory(server)
    try:
        for name in args.cases or list(CASES):
            CASES[name](server, mem)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
