"""Unit tests of the engine helpers ElastiCache relies on: the CA, redis.conf, slot ranges, addresses."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

from strata.engines import redis as redis_engine
from strata.engines import redis_cluster
from strata.engines.tls import CertificateAuthority
from strata.services.elasticache.nodes import free_address_index, node_address


def test_ca_issues_certificates_that_clients_verify(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "tls")
    cert = ca.issue(tmp_path / "node", "node-1", ["127.0.1.7", "127.0.0.1"])
    assert (tmp_path / "tls" / "ca.pem").exists() and cert.ca == ca.ca_path
    assert oct((tmp_path / "tls" / "ca-key.pem").stat().st_mode & 0o777) == "0o600"
    # reused while it fits; re-issued when a new name is wanted
    first = cert.cert.read_bytes()
    assert ca.issue(tmp_path / "node", "node-1", ["127.0.1.7"]).cert.read_bytes() == first
    again = ca.issue(tmp_path / "node", "node-1", ["127.0.1.8"])
    assert again.cert.read_bytes() != first
    # a real TLS handshake on 127.0.1.8 verifies against the CA, host name included
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(again.cert, again.key)
    listener = socket.create_server(("127.0.1.8", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"ok")

    thread = threading.Thread(target=serve)
    thread.start()
    client_ctx = ssl.create_default_context(cafile=str(ca.ca_path))
    with (
        socket.create_connection(("127.0.1.8", port)) as raw,
        client_ctx.wrap_socket(raw, server_hostname="127.0.1.8") as c,
    ):
        assert c.recv(2) == b"ok"
    thread.join()
    listener.close()
    # a second authority over the same directory loads, not replaces, the CA
    assert CertificateAuthority(tmp_path / "tls").ensure().read_bytes() == ca.ca_path.read_bytes()


def test_redis_config_rendering(tmp_path: Path) -> None:
    cfg = redis_engine.RedisNodeConfig(
        "127.0.1.2",
        45010,
        tmp_path,
        password='p"w',
        replica_of=("127.0.1.1", 45010),
        extra_binds=["127.0.0.2"],
        maxmemory=1024,
    )
    text = cfg.render()
    assert "bind 127.0.1.2 127.0.0.2\n" in text and "port 45010\n" in text
    assert 'requirepass "p\\"w"' in text and 'masterauth "p\\"w"' in text
    assert "replicaof 127.0.1.1 45010" in text and "cluster-enabled" not in text
    clustered = redis_engine.RedisNodeConfig("127.0.1.3", 45010, tmp_path, cluster_bus_port=45011).render()
    assert (
        "cluster-enabled yes" in clustered
        and "cluster-port 45011" in clustered
        and "replicaof" not in clustered
    )


def test_slot_ranges_cover_every_slot_once() -> None:
    for shards in (1, 2, 3, 7, 90):
        ranges = redis_cluster.slot_ranges(shards)
        covered = [s for low, high in ranges for s in range(low, high + 1)]
        assert covered == list(range(16384))
    assert redis_cluster.slot_ranges(3) == [(0, 5461), (5462, 10922), (10923, 16383)]
    assert redis_cluster._runs([1, 2, 3, 7, 9, 10]) == [(1, 3), (7, 7), (9, 10)]


def test_node_addresses() -> None:
    assert (
        node_address(1) == "127.0.1.1"
        and node_address(254) == "127.0.1.254"
        and node_address(255) == "127.0.2.1"
    )
    assert free_address_index(["127.0.1.1", "127.0.1.3"]) == 2
