"""The admin API (/_strata/) refuses bad values, other web origins and foreign Host names."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys

import pytest

from tests.strata_process import StrataProcess

BAD_CLOCK_BODIES = [
    b'{"advance": NaN}',
    b'{"advance": Infinity}',
    b'{"advance": -Infinity}',
    b'{"advance": "9999999999999d"}',
    b'{"advance": "' + b"9" * 400 + b'"}',
    b'{"advance": 1e308}',
    b'{"advance": 1e400}',
    b'{"advance": ' + b"9" * 400 + b"}",
    b'{"advance": -5}',
    b'{"advance": true}',
    b'{"advance": null}',
    b'{"advance": ["1d"]}',
    b'{"advance": "1d", "set": "2100-01-01T00:00:00+00:00"}',
    b'{"set": "1999-01-01T00:00:00+00:00"}',
    b'{"set": "9999-12-31T23:59:59+00:00"}',
    b'{"set": 5}',
    b'{"set": "soon"}',
    b"{}",
    b"[]",
    b'"advance"',
    b"5",
    b"not json",
    b"[" * 100_000 + b"]" * 100_000,
]


def _call(
    server: StrataProcess, method: str, path: str, body: bytes = b"", headers: dict | None = None
) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def _post_clock(server: StrataProcess, body: bytes, **headers: str) -> tuple[int, dict]:
    return _call(server, "POST", "/_strata/clock", body, {"Content-Type": "application/json", **headers})


def test_bad_clock_values_are_refused_and_change_nothing(strata_factory) -> None:
    server = strata_factory()
    s3 = server.client("s3")
    before = server.admin("/_strata/clock")["offset_seconds"]
    for body in BAD_CLOCK_BODIES:
        status, doc = _post_clock(server, body)
        assert status == 400, (body[:60], status, doc)
        assert doc["error"]
    assert server.admin("/_strata/clock")["offset_seconds"] == before
    s3.list_buckets()  # every request still answered
    server.restart()  # and nothing bad was persisted
    assert server.admin("/_strata/clock")["offset_seconds"] == before
    server.client("s3").list_buckets()
    # Good values still move it, up to the bound.
    assert _post_clock(server, b'{"advance": 86400.5}')[0] == 200
    assert _post_clock(server, b'{"set": "2999-01-01T00:00:00"}')[0] == 200  # naive means UTC
    assert server.admin("/_strata/clock")["now"].startswith("2999-01-01T00:00:0")
    assert _post_clock(server, b'{"advance": "7000w"}')[0] == 200
    status, doc = _post_clock(server, b'{"advance": "400000w"}')
    assert status == 400 and "9000" in doc["error"]
    server.client("s3").list_buckets()


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "text/plain"},  # what a cross-origin form or fetch can send without preflight
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "multipart/form-data; boundary=x"},
        {},
        {"Content-Type": "application/json", "Origin": "http://evil.example"},
        {"Content-Type": "application/json", "Origin": "null"},
        {"Content-Type": "application/json", "Origin": "http://127.0.0.1:1"},  # another port
        {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"},
        {"Content-Type": "application/json", "Sec-Fetch-Site": "same-site"},
    ],
)
def test_clock_refuses_requests_another_web_page_can_make(strata_server: StrataProcess, headers) -> None:
    before = strata_server.admin("/_strata/clock")["offset_seconds"]
    status, doc = _call(strata_server, "POST", "/_strata/clock", b'{"advance": "400d"}', headers)
    assert status in (403, 415), (status, doc)
    assert strata_server.admin("/_strata/clock")["offset_seconds"] == before


def test_same_origin_admin_calls_are_served(strata_server: StrataProcess) -> None:
    origin = f"http://127.0.0.1:{strata_server.port}"
    for extra in ({"Origin": origin}, {"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}):
        status, doc = _post_clock(strata_server, b'{"advance": 0}', **extra)
        assert status == 200, doc
    status, _ = _call(strata_server, "GET", "/_strata/health", headers={"Origin": origin})
    assert status == 200
    status, _ = _call(strata_server, "GET", "/_strata/health", headers={"Origin": "http://evil.example"})
    assert status == 403


def test_a_corrupt_clock_file_stops_start_up_with_a_clear_message(tmp_path) -> None:
    for content in (
        '{"offset_seconds": NaN}',
        '{"offset_seconds": 1e300}',
        "garbage",
        '{"offset_seconds": -1}',
    ):
        data = tmp_path / "data"
        data.mkdir(exist_ok=True)
        (data / "clock.json").write_text(content)
        proc = subprocess.run(
            [sys.executable, "-m", "strata.cli", "serve", "--port", "0", "--data-dir", str(data), "--quiet"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 1, (content, proc.stderr[-2000:])
        assert "clock.json" in proc.stderr and "delete it" in proc.stderr, proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr
