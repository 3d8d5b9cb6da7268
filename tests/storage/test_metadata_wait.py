"""A gateway started while its PostgreSQL is unreachable waits for it (strata.storage.pg_wait).

A Patroni failover leaves the database unreachable for 15-25 s; a gateway (re)started meanwhile
used to exit with status 1 at once. Here a real `strata serve --metadata` points at a port where
nothing listens yet; a TCP relay to the session's PostgreSQL opens there later, and the gateway
serves (a wrong password or database is not waited for: tests/storage/test_s3_postgres.py). And
while PostgreSQL is silent (a failover), the health check still answers: the services' own
checks run off the event loop.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from strata.engines.postgres import PgNode
from tests.storage.conftest import fresh_database
from tests.strata_process import StrataProcess, free_port


class _Relay:
    """A TCP relay from a loopback port to PostgreSQL: the database "comes up" when it opens."""

    def __init__(self, port: int, target: int) -> None:
        self.port, self.target = port, target
        self.flowing = threading.Event()  # cleared: bytes are held (a silent, unreachable server)
        self.flowing.set()
        self.sock = socket.create_server(("127.0.0.1", port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                self.flowing.wait()
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def relayed_url(pg_node: PgNode) -> Iterator[tuple[str, int]]:
    """A fresh database's URL through a port nothing listens on yet (and that port)."""
    url = urlsplit(fresh_database("wait"))
    port = free_port()
    yield urlunsplit(url._replace(netloc=f"{url.username}:{url.password}@127.0.0.1:{port}")), port


def test_a_gateway_started_before_its_postgresql_waits_for_it_and_serves(
    tmp_path: Path, relayed_url: tuple[str, int], pg_node: PgNode
) -> None:
    url, port = relayed_url
    gateway = StrataProcess(
        tmp_path / "data",
        extra_env={"STRATA_METADATA": url, "STRATA_METADATA_WAIT": "120"},
        extra_args=["--blob-dir", str(tmp_path / "blobs")],
    )
    started: list[BaseException | None] = []

    def start() -> None:
        try:
            gateway.start(timeout=150)
            started.append(None)
        except BaseException as e:  # noqa: BLE001 - handed to the test's thread
            started.append(e)

    thread = threading.Thread(target=start)
    thread.start()
    relay = None
    try:
        deadline = time.monotonic() + 60  # it says so before the relay opens (not a timing claim)
        while "waiting for the metadata database" not in gateway.log_tail() and time.monotonic() < deadline:
            assert gateway.proc is None or gateway.proc.poll() is None, gateway.log_tail()
            time.sleep(0.1)
        log = gateway.log_tail()
        assert f"waiting for the metadata database postgresql://{urlsplit(url).username}:***@" in log
        assert urlsplit(url).password not in log
        relay = _Relay(port, pg_node.port)
        thread.join()
        assert started == [None], started
        assert gateway.health()["pid"] == gateway.proc.pid  # type: ignore[union-attr]
        gateway.client("s3").create_bucket(Bucket="after-the-wait")  # metadata in the database
        assert [b["Name"] for b in gateway.client("s3").list_buckets()["Buckets"]] == ["after-the-wait"]
        healthy = gateway.health()["services"]
        assert healthy["s3"] == "ok"
        # PostgreSQL goes silent (a failover): the health check still answers, saying the
        # services' checks do not (they ran on the event loop and held the whole gateway), in
        # the usual shape: every service by name, those whose state cannot be read saying so.
        relay.flowing.clear()
        for _ in range(2):  # the second waits on the same check, still held
            silent = gateway.health()["services"]
            assert silent.keys() == healthy.keys(), silent
            assert silent["s3"].startswith("no answer within"), silent
            assert silent["sts"] == healthy["sts"]  # no database check: read as always
        relay.flowing.set()
        deadline = time.monotonic() + 60  # the held check finishes, and the next one answers
        while (services := gateway.health()["services"])["s3"] != "ok" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert services == healthy, services
    finally:
        if relay is not None:
            relay.flowing.set()
        thread.join()
        gateway.stop()
        if relay is not None:
            relay.close()
