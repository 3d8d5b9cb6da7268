"""The engine side of RDS without the API: a node whose port is taken meanwhile gets another one."""

from __future__ import annotations

import socket
from pathlib import Path

import psycopg

from strata.engines.ports import PortAllocator
from strata.services.rds.fleet import Fleet


def test_taken_port_is_replaced_at_creation(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        low = probe.getsockname()[1]
    ports = PortAllocator(tmp_path / "ports.db", (low, low + 200))
    fleet = Fleet(tmp_path / "rds", ports)
    fleet.router.start()
    doc = {
        "id": "db1",
        "kind": "postgres",
        "master_username": "master",
        "nodes": {},
        "db_name": "app",
        "port": ports.allocate("rds/db1/endpoint"),
    }
    doc["primary"] = fleet.new_node(doc, "primary", "us-east-1a")
    taken = doc["nodes"]["n1"]["port"]
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", taken))
    squatter.listen()
    try:
        fleet.create_primary(doc, "Secret-pass-123", {})
        assert doc["nodes"]["n1"]["port"] != taken
        with psycopg.connect(
            host="127.0.0.1",
            port=doc["port"],
            user="master",
            password="Secret-pass-123",
            dbname="app",
            connect_timeout=10,
        ) as conn:
            assert conn.execute("SELECT inet_server_port()").fetchone()[0] == doc["nodes"]["n1"]["port"]
            conn.execute("CREATE TABLE kept (x int)")
            conn.commit()
        # Stopped, and its port taken while it was down (as after a Strata restart): it moves again.
        fleet.stop(doc)
        second = doc["nodes"]["n1"]["port"]
        squatter.close()
        squatter = socket.socket()
        # SO_REUSEADDR: the port just left by the stopped engine may still have TIME_WAIT
        # connections, which make a plain bind fail (this was the test's only flake).
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", second))
        squatter.listen()
        fleet.start(doc, {})
        assert doc["nodes"]["n1"]["port"] not in (taken, second)
        with psycopg.connect(
            host="127.0.0.1",
            port=doc["port"],
            user="master",
            password="Secret-pass-123",
            dbname="app",
            connect_timeout=10,
        ) as conn:
            assert conn.execute("SELECT to_regclass('kept')").fetchone()[0] == "kept"
    finally:
        squatter.close()
        fleet.destroy(doc)
        fleet.router.stop()
