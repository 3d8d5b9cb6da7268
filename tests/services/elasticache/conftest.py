"""Fixtures for the ElastiCache tests: a boto3 client on the shared server, helpers to reach engines."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis


@pytest.fixture
def ec(strata_server):
    return strata_server.client("elasticache")


@pytest.fixture
def ca_file(strata_server) -> str:
    """Where users get the CA that signs every TLS endpoint: <data_dir>/tls/ca.pem."""
    return str(Path(strata_server.data_dir) / "tls" / "ca.pem")


def eventually(check: Callable[[], object], timeout: float = 60, what: str = "condition") -> object:
    """Poll `check` until it returns something truthy (no timing assertions: a generous deadline)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (redis.RedisError, OSError, AssertionError) as e:
            last = e
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


def node_endpoints(ec, cluster_id: str) -> list[dict]:
    cluster = ec.describe_cache_clusters(CacheClusterId=cluster_id, ShowCacheNodeInfo=True)["CacheClusters"][
        0
    ]
    return [n["Endpoint"] for n in cluster["CacheNodes"]]


def group(ec, group_id: str) -> dict:
    return ec.describe_replication_groups(ReplicationGroupId=group_id)["ReplicationGroups"][0]


def roles(ec, group_id: str) -> dict[str, str]:
    return {
        m["CacheClusterId"]: m["CurrentRole"]
        for m in group(ec, group_id)["NodeGroups"][0]["NodeGroupMembers"]
    }


@pytest.fixture
def cleanup(ec) -> Iterator[list]:
    """Register ("cluster"|"group", id) to delete after the test, so engines do not pile up."""
    items: list[tuple[str, str]] = []
    yield items
    for kind, name in reversed(items):
        try:
            if kind == "cluster":
                ec.delete_cache_cluster(CacheClusterId=name)
            else:
                ec.delete_replication_group(ReplicationGroupId=name)
        except Exception:  # noqa: BLE001 - already deleted by the test
            pass


def memcached_exchange(
    address: tuple[str, int], request: bytes, replies: int, tls: ssl.SSLContext | None = None
) -> bytes:
    """Send `request` on one connection; read until `replies` terminal lines came back."""
    raw = socket.create_connection(address, timeout=10)
    sock = tls.wrap_socket(raw, server_hostname=address[0]) if tls else raw
    with sock:
        sock.sendall(request)
        data = b""
        while sum(data.count(t) for t in (b"END\r\n", b"STORED\r\n", b"MN\r\n")) < replies:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {data!r}"
            data += chunk
        return data


def discover(
    address: tuple[str, int], tls: ssl.SSLContext | None = None
) -> tuple[int, list[tuple[str, int]]]:
    """What an Auto Discovery client does: `config get cluster`, parsed per AWS's output format."""
    data = memcached_exchange(address, b"config get cluster\r\n", 1, tls)
    header, _, rest = data.partition(b"\r\n")
    name, key, flags, length = header.split()
    assert (name, key, flags) == (b"CONFIG", b"cluster", b"0")
    body, tail = rest[: int(length)], rest[int(length) :]
    assert tail == b"\r\nEND\r\n"
    version, nodes, empty = body.decode().split("\n")
    assert empty == ""
    listed = []
    for entry in nodes.split(" "):
        host, ip, port = entry.split("|")
        assert host == ip
        listed.append((ip, int(port)))
    return int(version), listed
