"""S3 benchmarks named by the S3 issue, each a ratio against a peer measured in the same run.

    small   4 KiB PUT and GET (presigned, wrk)            vs moto_server      (bar: >= 10x)
    get1m   1 MiB GET (presigned, wrk)                    vs nginx sendfile    (bar: >= 50%)
    large   256 MiB PUT and GET, one stream               vs hashlib.md5 MB/s  (bar: PUT within 2x)
    list    ListObjectsV2 first page, 1,000,000 vs 1,000 keys (prefix and delimiter listings)
                                                          (bar: within 2x)

Usage: python bench/s3_bench.py [small get1m large list ...] [--seconds 8]
Starts its own Strata (and moto/nginx) on free loopback ports in a temp dir; needs wrk and nginx.
The 1,000,000 keys are written straight into the metadata store (4-byte objects stored inline)
with the server stopped; listing cost is what is measured, not a million PUTs.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, os.environ.get("STRATA_SHARED_BENCH", str(ROOT.parent / "shared" / "bench")))
import loadgen  # noqa: E402  (shared harness: wrk driver)

from tests.strata_process import StrataProcess, free_port  # noqa: E402

MiB = 1024 * 1024


def client(url: str):  # noqa: ANN201
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def rel(url: str) -> str:
    s = urlsplit(url)
    return s.path + ("?" + s.query if s.query else "")


def wrk_get(url: str, paths: list[str], seconds: int, conns: int = 16) -> float:
    loadgen.HOST = urlsplit(url).netloc
    rps, bad = loadgen.wrk(url, loadgen.lua_cycle([("GET", p, {}, None) for p in paths]), seconds, conns)
    if bad:
        raise RuntimeError(f"{bad} non-2xx responses from {url}")
    return rps


def bench_small(strata: str, seconds: int) -> None:
    port = free_port()
    moto = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port)
        rows = {}
        for name, url in (("strata", strata), ("moto", f"http://127.0.0.1:{port}")):
            loadgen.HOST = urlsplit(url).netloc
            rows[name] = {k: v[0] for k, v in loadgen.s3_workloads(url, seconds, 16).items()}
        for work in ("s3_put_4k", "s3_get_4k"):
            s, m = rows["strata"][work], rows["moto"][work]
            print(f"{work}: strata {s:,.0f}/s  moto {m:,.0f}/s  ratio {s / m:.1f}x (bar 10x)")
    finally:
        moto.terminate()
        moto.wait()


@contextmanager
def _nginx(files: dict[str, bytes]) -> Iterator[str]:
    """nginx (one worker, sendfile) serving `files` from a temp folder on this disk; its URL."""
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "www").mkdir()
        for name, data in files.items():
            (Path(d) / "www" / name).write_bytes(data)
        port = free_port()
        conf = Path(d) / "nginx.conf"
        conf.write_text(
            f"daemon off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log;\n"
            "events { worker_connections 1024; }\n"
            f"http {{ access_log off; sendfile on; tcp_nopush on; client_body_temp_path {d};"
            f" proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n"
            f" server {{ listen 127.0.0.1:{port}; root {d}/www; }} }}\n"
        )
        nginx = subprocess.Popen(
            ["nginx", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            _wait_port(port)
            yield f"http://127.0.0.1:{port}"
        finally:
            nginx.terminate()
            nginx.wait()


def _get_mbps(url: str, path: str, size: int, buf: bytearray) -> float:
    """One streamed GET of `size` bytes into a reused buffer; MB/s."""
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port)
    t = time.perf_counter()
    conn.request("GET", path)
    resp = conn.getresponse()
    n = 0
    while k := resp.readinto(buf):
        n += k
    assert n == size, (n, size)
    conn.close()
    return size / (time.perf_counter() - t) / 1e6


def bench_get1m(strata: str, seconds: int) -> None:
    data = os.urandom(MiB)
    s3 = client(strata)
    s3.create_bucket(Bucket="bench-get1m")
    s3.put_object(Bucket="bench-get1m", Key="obj1m", Body=data)
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "bench-get1m", "Key": "obj1m"}, ExpiresIn=3600
    )
    strata_rps = wrk_get(strata, [rel(url)], seconds)
    with _nginx({"obj1m": data}) as nginx_url:
        nginx_rps = wrk_get(nginx_url, ["/obj1m"], seconds)
    print(
        f"get_1m: strata {strata_rps * MiB / 1e6:,.0f} MB/s  nginx {nginx_rps * MiB / 1e6:,.0f} MB/s  "
        f"ratio {strata_rps / nginx_rps:.0%} (bar 50%)"
    )


RUNS = 5


def bench_large(strata: str, label: str = "") -> None:
    size = 256 * MiB
    data = os.urandom(size)
    md5s: list[float] = []

    def md5_speed() -> None:
        t = time.perf_counter()
        hashlib.md5(data).digest()
        md5s.append(size / (time.perf_counter() - t) / 1e6)

    s3 = client(strata)
    s3.create_bucket(Bucket="bench-large")
    u = urlsplit(strata)
    put_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": "bench-large", "Key": "big"}, ExpiresIn=3600
    )
    get_url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "bench-large", "Key": "big"}, ExpiresIn=3600
    )
    puts, gets = [], []
    view = memoryview(data)
    buf = bytearray(8 * MiB)
    for _ in range(RUNS):
        md5_speed()  # between runs, so a busy machine slows both alike
        conn = http.client.HTTPConnection(u.hostname, u.port)
        t = time.perf_counter()
        conn.putrequest("PUT", rel(put_url), skip_accept_encoding=True)
        conn.putheader("Content-Length", str(size))
        conn.endheaders()
        for i in range(0, size, 8 * MiB):
            conn.send(view[i : i + 8 * MiB])
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200, resp.status
        puts.append(size / (time.perf_counter() - t) / 1e6)
        conn.close()
        conn = http.client.HTTPConnection(u.hostname, u.port)
        t = time.perf_counter()
        conn.request("GET", rel(get_url))
        resp = conn.getresponse()
        n = 0
        while True:
            k = resp.readinto(buf)
            if not k:
                break
            n += k
        assert n == size
        gets.append(size / (time.perf_counter() - t) / 1e6)
        conn.close()
    md5_speed()
    put, get = statistics.median(puts), statistics.median(gets)
    # Each PUT against the MD5 speed measured just before and after it (the machine is shared, so
    # its speed drifts), and, conservatively, the median PUT against the best MD5 run.
    paired = statistics.median(p / ((md5s[i] + md5s[i + 1]) / 2) for i, p in enumerate(puts))
    best = max(md5s)
    print(
        f"put_256m{label}: {put:,.0f} MB/s  md5 {statistics.median(md5s):,.0f} MB/s (best {best:,.0f})  "
        f"ratio {paired:.2f} of md5, {put / best:.2f} of the best (bar >= 0.5)"
    )
    print(f"get_256m{label}: {get:,.0f} MB/s right after each PUT  (load average {os.getloadavg()[0]:.1f})")
    if label:
        return
    # The bar: GET >= 50% of nginx serving the same bytes from this disk; both warm, interleaved.
    with _nginx({"big": data}) as nginx_url:
        ours, theirs = [], []
        for _ in range(RUNS):
            ours.append(_get_mbps(strata, rel(get_url), size, buf))
            theirs.append(_get_mbps(nginx_url, "/big", size, buf))
    g, n = statistics.median(ours), statistics.median(theirs)
    print(f"get_256m vs nginx: strata {g:,.0f} MB/s  nginx {n:,.0f} MB/s  ratio {g / n:.0%} (bar 50%)")


def bench_disk() -> None:
    """The disk's write+fsync speed: the ceiling of a durable PUT."""
    with tempfile.NamedTemporaryFile(dir=tempfile.gettempdir()) as f:
        chunk = os.urandom(8 * MiB)
        t = time.perf_counter()
        for _ in range(32):
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
        print(f"disk: write+fsync {256 * MiB / (time.perf_counter() - t) / 1e6:,.0f} MB/s")


class NoFsyncStrata(StrataProcess):
    """A Strata started with --no-fsync (survives kill -9, not power loss)."""

    def start(self, timeout: float = 60) -> StrataProcess:
        real_popen = subprocess.Popen

        def popen(args, *a, **kw):  # noqa: ANN001, ANN202
            return real_popen([*args, "--no-fsync"], *a, **kw)

        subprocess.Popen = popen  # type: ignore[misc]
        try:
            return super().start(timeout)
        finally:
            subprocess.Popen = real_popen  # type: ignore[misc]


def _fill(data_dir: Path, bucket: str, keys: Iterable[str]) -> None:
    """Keys written straight into the store (4-byte objects stored inline), in one transaction."""
    from strata.services.s3.store import S3Store

    store = S3Store(data_dir / "s3" / "meta.db", fsync=False)
    etag = '"' + hashlib.md5(b"seed").hexdigest() + '"'
    now = time.time()
    batch = []
    with store.db.transaction():
        store.insert_bucket(bucket, "us-east-1", now)
        for key in keys:
            batch.append(
                (
                    bucket,
                    key,
                    "null",
                    1,
                    0,
                    None,
                    4,
                    etag,
                    now,
                    "STANDARD",
                    '{"headers": {"ContentType": "binary/octet-stream"}, "meta": {}}',
                )
            )
            if len(batch) == 50_000:
                store.db.executemany(_INSERT, batch)
                batch = []
        if batch:
            store.db.executemany(_INSERT, batch)
    store.close()


_INSERT = (
    "INSERT INTO objects(bucket, key, version_id, latest, dm, blob, size, etag, modified, storage_class, attrs, "
    "data) VALUES (?,?,?,?,?,?,?,?,?,?,?,x'73656564')"
)


def bench_list(server: StrataProcess) -> None:
    s3 = client(server.endpoint)
    s3.list_buckets()  # the server has created its schema
    server.stop()
    t = time.perf_counter()
    # 1M keys: 1,000 "directories" of 1,000 keys. Each small bucket holds 1,000 keys shaped so that
    # the listed page is the same as in the big one: 1,000 keys under d500/, or 1,000 directories.
    _fill(server.data_dir, "keys-1m", (f"d{d:03d}/obj{i:08d}" for d in range(1000) for i in range(1000)))
    _fill(server.data_dir, "keys-1k-flat", (f"d500/obj{i:08d}" for i in range(1000)))
    _fill(server.data_dir, "keys-1k-dirs", (f"d{d:03d}/obj00000000" for d in range(1000)))
    print(f"(filled 1,002,000 keys in {time.perf_counter() - t:.0f}s)")
    server.start()
    s3 = client(server.endpoint)
    cases = {
        "prefix d500/": ("keys-1k-flat", {"Prefix": "d500/"}),
        "start-after d500/obj00000100": (
            "keys-1k-flat",
            {"StartAfter": "d500/obj00000100", "Prefix": "d500/"},
        ),
        "delimiter / (1000 prefixes)": ("keys-1k-dirs", {"Delimiter": "/"}),
        "prefix+delimiter d500/ /": ("keys-1k-flat", {"Prefix": "d500/", "Delimiter": "/"}),
    }
    for name, (small, params) in cases.items():
        times = {}
        for bucket in (small, "keys-1m"):
            samples = []
            for _ in range(15):
                t = time.perf_counter()
                r = s3.list_objects_v2(Bucket=bucket, MaxKeys=1000, **params)
                samples.append(time.perf_counter() - t)
            assert r.get("KeyCount", 0) > 0
            times[bucket] = statistics.median(samples)
        print(
            f"list {name}: 1k keys {times[small] * 1000:.1f} ms  1M keys {times['keys-1m'] * 1000:.1f} ms  "
            f"ratio {times['keys-1m'] / times[small]:.2f}x (bar 2x)"
        )


def _wait_port(port: int, timeout: float = 30) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {port}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("which", nargs="*", default=["small", "get1m", "large", "list"])
    ap.add_argument("--seconds", type=int, default=8)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="s3bench-"))
    server = StrataProcess(tmp / "data").start()
    try:
        for w in a.which:
            if w == "small":
                bench_small(server.endpoint, a.seconds)
            elif w == "get1m":
                bench_get1m(server.endpoint, a.seconds)
            elif w == "large":
                bench_disk()
                bench_large(server.endpoint)
                other = NoFsyncStrata(tmp / "nofsync").start()
                try:
                    bench_large(other.endpoint, " (--no-fsync)")
                finally:
                    other.stop()
            elif w == "list":
                bench_list(server)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
