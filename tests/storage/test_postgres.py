"""The PostgreSQL backend beyond the contract: services' SQLite schemas and placeholders as
PostgreSQL takes them, and a store that outlives its connections (a restarted server, a failover).
Also the engine host's lock in PostgreSQL where no running gateway is needed (a request no host
answers, fsck beside a host that may still run its engines; the advertised URL it names): the
two-gateway tests are in test_gateways_postgres.py.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from strata.cli import cli
from strata.config import ConfigError, Settings
from strata.console.sessions import SCHEMA as CONSOLE
from strata.engines.ports import _SCHEMA as PORTS
from strata.engines.postgres import PgNode
from strata.gateway import engine_host
from strata.protocol import codec_for_request
from strata.protocol.http import Headers, HttpRequest, HttpResponse
from strata.services.dynamodb import exports, imports, lww, pitr, streams
from strata.services.dynamodb.store import SCHEMA as DYNAMODB
from strata.services.ec2.blocks import SCHEMA as EC2
from strata.services.efs import reads, usage
from strata.services.s3.store import SCHEMA as S3
from strata.services.s3control.access_points import SCHEMA as ACCESS_POINTS
from strata.services.s3control.provider import SCHEMA as S3CONTROL
from strata.storage.engine_lock import EngineHostLock, held_unless_hosted
from strata.storage.errors import disk_refused
from strata.storage.postgres import PostgresStore
from tests.storage.conftest import DSN_VAR, fresh_database
from tests.storage.gateway_checks import until
from tests.strata_process import free_port

SERVICE_SCHEMAS = {
    "s3": S3,
    "s3control": S3CONTROL + ACCESS_POINTS,
    "dynamodb": DYNAMODB + pitr.SCHEMA + streams.SCHEMA + lww.SCHEMA + exports.SCHEMA + imports.SCHEMA,
    "ec2": EC2,
    "efs": reads.SCHEMA + usage.SCHEMA,
    "ports": PORTS,
    "console": CONSOLE,
}


@pytest.fixture
def store(pg_node: object) -> Iterator[PostgresStore]:
    s = PostgresStore(os.environ[DSN_VAR], f"p_{uuid.uuid4().hex[:12]}", schema=S3)
    yield s
    s.close()


@pytest.mark.parametrize("service", sorted(SERVICE_SCHEMAS))
def test_every_service_schema_is_taken(pg_node: object, service: str) -> None:
    s = PostgresStore(
        os.environ[DSN_VAR], f"s_{service}_{uuid.uuid4().hex[:8]}", schema=SERVICE_SCHEMAS[service]
    )
    try:
        s.executescript(SERVICE_SCHEMAS[service])  # again: a restart runs it again
        types = {
            r[0]
            for r in s.query(
                "SELECT data_type FROM information_schema.columns WHERE table_schema = ?", (s.name,)
            )
        }
    finally:
        s.close()
    assert not types & {"integer", "real"}  # SQLite's are 64-bit and double


def test_sqlite_columns_keep_their_range_and_rowids_are_numbered(store: PostgresStore) -> None:
    """SQLite's INTEGER is 64-bit, its REAL a double; an INTEGER PRIMARY KEY left NULL is max + 1,
    whether the other rows' ids were chosen or numbered (S3's object versions mix both)."""
    size, modified = 5 * 1024**4, 1765432109.123456
    insert = (
        "INSERT INTO objects(id, bucket, key, version_id, latest, dm, size, etag, modified, "
        "storage_class, attrs, data) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id"
    )

    def put(row_id: int | None) -> int:
        args = (row_id, "b", f"k{row_id}", "null", 1, 0, size, '"e"', modified, "STANDARD", "{}", b"\x00\xff")
        return store.query_one(insert, args)[0]

    async def run() -> list[int]:
        return [await store.write(lambda i=i: put(i)) for i in (None, 7, None, None)]

    assert asyncio.run(run()) == [1, 7, 8, 9]
    assert store.query_one("SELECT size, modified, data FROM objects WHERE id = 8") == (
        size,
        modified,
        b"\x00\xff",
    )


def test_placeholders_leave_literals_alone(store: PostgresStore) -> None:
    store.executescript(
        "INSERT INTO buckets(name, region, created, config) VALUES ('a%?', 'r', 1, '{\"lifecycle\": 1}');"
    )
    assert store.query(
        "SELECT name FROM buckets WHERE config LIKE '%\"lifecycle\"%' AND region = ?", ("r",)
    ) == [("a%?",)]
    assert store.query_one(
        "SELECT name FROM buckets WHERE name = :n AND created = :c", {"n": "a%?", "c": 1}
    ) == ("a%?",)


def test_a_store_outlives_its_connections(store: PostgresStore) -> None:
    """The server closes every connection of the store (as a restart or a failover does): the
    next read and the next write get new ones instead of failing."""
    asyncio.run(
        store.write(lambda: store.execute("INSERT INTO buckets(name, region, created) VALUES ('x', 'r', 1)"))
    )
    assert store.query_one("SELECT count(*) FROM buckets")[0] == 1
    with psycopg.connect(os.environ[DSN_VAR], autocommit=True) as admin:
        n = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
            (f"strata-{store.name}",),
        ).fetchone()[0]
    assert n >= 2  # the writer and a pooled reader
    assert store.query_one("SELECT count(*) FROM buckets")[0] == 1
    asyncio.run(
        store.write(lambda: store.execute("INSERT INTO buckets(name, region, created) VALUES ('y', 'r', 2)"))
    )
    store.put_doc("k", "a", {"v": 1})
    assert [r[0] for r in store.query("SELECT name FROM buckets ORDER BY name")] == ["x", "y"]


def test_an_unreachable_or_read_only_database_is_a_retryable_refusal(
    store: PostgresStore, pg_node: object
) -> None:
    """What a failover shows the store (a closed connection, a read-only standby) is answered as
    503 ServiceUnavailable, like a full data dir; a bad statement is not."""
    with psycopg.connect(
        os.environ[DSN_VAR], autocommit=True, options="-c default_transaction_read_only=on"
    ) as c:
        with pytest.raises(psycopg.Error) as read_only:
            c.execute("CREATE TABLE t_ro (k int)")
        with pytest.raises(psycopg.Error) as bad:
            c.execute("SELEC 1")
        pid = c.info.backend_pid
        with psycopg.connect(os.environ[DSN_VAR], autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(psycopg.Error) as gone:
            c.execute("SELECT 1")
    assert disk_refused(read_only.value)
    assert disk_refused(gone.value)
    assert not disk_refused(bad.value)


def test_in_transaction_as_sqlite_says_it(store: PostgresStore) -> None:
    """S3 caches a bucket row only when read outside a write (`conn.in_transaction`)."""
    inside = asyncio.run(store.write(lambda: store.conn.in_transaction))
    assert (inside, store.conn.in_transaction) == (True, False)


def test_an_advertise_url_is_an_http_address_and_port(tmp_path: Path) -> None:
    for bad in (
        "https://10.0.0.5:4566",
        "http://10.0.0.5",
        "http://10.0.0.5:4566/x",
        "10.0.0.5:4566",
        "http://h:x",
    ):
        with pytest.raises(ConfigError, match="advertise URL"):
            Settings(data_dir=tmp_path, advertise_url=bad)
    assert (
        Settings(data_dir=tmp_path, advertise_url="http://10.0.0.5:4566").advertise_url
        == "http://10.0.0.5:4566"
    )


def test_a_request_no_engine_host_answers_gets_service_unavailable(
    tmp_path: Path, pg_node: PgNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forwarding to a host that is gone, or with no host at all (every gateway `never`): retried
    while RETRY_FOR lasts, then the protocol's ServiceUnavailable (503), rendered as the service
    renders its errors."""
    monkeypatch.setattr(engine_host, "RETRY_FOR", 0.5)
    metadata_url = fresh_database("gw")
    gateway = engine_host.EngineHost(Settings(data_dir=tmp_path, metadata=metadata_url), services=None)  # type: ignore[arg-type]
    gateway.host = (f"http://127.0.0.1:{free_port()}", "token")  # nothing listens there
    request = HttpRequest(
        "POST",
        "/",
        "",
        Headers([("host", "127.0.0.1"), ("content-type", "application/x-www-form-urlencoded")]),
    )
    codec = codec_for_request("elasticache", request)
    try:
        answer = asyncio.run(gateway.forward(request, None, codec, "REQ1"))  # type: ignore[arg-type]
    finally:
        gateway.lock.close()
    assert answer is not None and answer.status == 503
    assert b"<Code>ServiceUnavailable</Code>" in answer.body  # type: ignore[operator]

    # Every gateway `--engine-host never`: none ever hosts, and the requests get the same answer.
    url = fresh_database("never")
    never = engine_host.EngineHost(
        Settings(data_dir=tmp_path, metadata=url, engine_host="never"), services=None
    )  # type: ignore[arg-type]

    async def started_and_asked() -> HttpResponse | None:
        await never.start()
        try:
            return await never.forward(request, None, codec, "REQ2")  # type: ignore[arg-type]
        finally:
            await never.stop()

    answer = asyncio.run(started_and_asked())
    assert answer is not None and answer.status == 503
    assert never.health() == {"self": False, "url": None, "setting": "never"}
    free = EngineHostLock(url)
    try:
        assert free.try_take()  # the never gateway never took the lock
    finally:
        free.close()


def test_fsck_leaves_the_engines_to_a_host_that_may_still_run_them(pg_node: PgNode) -> None:
    """The lock free but the row naming a host that did not stop cleanly, and beat lately: it may
    be regaining its lock with its engines running, so fsck checks their files as in use (and lets
    the lock go for it); once the row says it stopped cleanly, as offline."""
    url = fresh_database("beat")
    lock = EngineHostLock(url)
    try:
        assert lock.try_take()
        lock.claim("a-host", "http://127.0.0.1:1")
        lock.release()  # its session ended (a PostgreSQL restart), its engines may run
        with held_unless_hosted(url) as free:
            assert not free
        assert lock.try_take()  # fsck did not keep the lock from the host
        assert lock._conn is not None
        pid = lock._conn.info.backend_pid
        lock.close("a-host")  # a clean stop
        with psycopg.connect(url, autocommit=True) as c:  # its session's end frees the lock
            until(lambda: not _alive(c, pid), "the session ended")
    finally:
        lock.close()
    with held_unless_hosted(url) as free:
        assert free


def test_the_engine_host_option_is_refused_where_it_means_nothing(tmp_path: Path) -> None:
    """`--engine-host` (STRATA_ENGINE_HOST) needs --metadata (one gateway runs everything), and
    `never` refuses the options only an engine host uses. Refused before anything starts."""
    pg = "postgresql://strata@127.0.0.1:1/strata"
    for args, env, said in (
        (["--engine-host", "never"], {}, "--engine-host never needs --metadata"),
        ([], {"STRATA_ENGINE_HOST": "prefer"}, "--engine-host prefer needs --metadata"),
        (
            ["--metadata", pg],
            {"STRATA_ENGINE_HOST": "sometimes"},
            "must be any, prefer or never, not 'sometimes'",
        ),
        (["--metadata", pg, "--engine-host", "sometimes"], {}, "'sometimes' is not one of"),
        (
            ["--metadata", pg, "--engine-host", "never", "--engine-address", "10.0.0.50/lo"],
            {},
            "--engine-address is",
        ),
        (
            ["--metadata", pg, "--engine-host", "never", "--advertise-url", "http://10.0.0.5:4566"],
            {},
            "--advertise-url is",
        ),
    ):
        out = CliRunner().invoke(
            cli,
            ["serve", "--data-dir", str(tmp_path), "--metadata-wait", "0", *args],
            env={"STRATA_METADATA": None, "STRATA_ENGINE_ADDRESS": None, "STRATA_ADVERTISE_URL": None, **env},
        )
        assert out.exit_code != 0 and said in out.output, (args, env, out.output)
    assert Settings(data_dir=tmp_path, metadata=pg, engine_host="never").engine_host == "never"


def test_an_any_gateway_leaves_a_free_lock_to_a_live_preferred_one_first(
    pg_node: PgNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--engine-host prefer` (engine_lock's `strata:engines-preferred`): while a preferred gateway
    lives, an `any` one leaves a free lock to it for PREFER_WAIT s; with none alive it takes the
    lock at once, as before."""
    url = fresh_database("prefer")
    gateway = engine_host.EngineHost(Settings(data_dir=tmp_path, metadata=url), services=None)  # type: ignore[arg-type]
    preferred, late = EngineHostLock(url, preferred=True), EngineHostLock(url, preferred=True)
    try:
        assert gateway._take()  # no preferred gateway: at once
        gateway.lock.release()
        with psycopg.connect(url, autocommit=True) as host:  # another gateway hosts
            host.execute("SELECT pg_advisory_lock(%s)", (gateway.lock.key,))
            assert preferred.try_take() is False  # the preferred gateway lives, and tries
            assert gateway._take() is False
            host.execute("SELECT pg_advisory_unlock(%s)", (gateway.lock.key,))  # and is gone
            # its place is left to the preferred gateway, which takes it
            assert gateway._take() is False
            assert preferred.try_take()
            assert gateway._take() is False
            preferred.let_go()  # it backs off from a live host (engine_host): still preferred
            assert gateway._take() is False
            assert preferred.try_take()
            assert gateway._take() is False
            _end_session(host, preferred)  # the preferred host is gone: the any one takes it at once
            assert gateway._take()
            gateway.lock.release()
            # a preferred gateway that lives but does not take the free lock: the any one takes it
            # once PREFER_WAIT passed since it first found it so
            monkeypatch.setattr(engine_host, "PREFER_WAIT", 0.0)
            host.execute("SELECT pg_advisory_lock(%s)", (gateway.lock.key,))
            assert late.try_take() is False
            host.execute("SELECT pg_advisory_unlock(%s)", (gateway.lock.key,))
            assert gateway._take() is False
            assert gateway._take()
    finally:
        for lock in (gateway.lock, preferred, late):
            lock.close()


def _end_session(c: psycopg.Connection, lock: EngineHostLock) -> None:
    """Close the lock's session and wait until PostgreSQL ended it (its locks end with it: the
    backend lets them go after the client closed, not at once)."""
    assert lock._conn is not None
    pid = lock._conn.info.backend_pid
    lock.release()
    until(lambda: not _alive(c, pid), "the session ended")


def _alive(c: psycopg.Connection, pid: int) -> bool:
    return c.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() is not None
