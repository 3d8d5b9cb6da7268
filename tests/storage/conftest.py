"""A throwaway PostgreSQL server for the metadata-store contract's "postgresql" backend.

One per test session (per xdist worker): initdb'd with the PostgreSQL programs RDS uses
(strata.engines.postgres, as the engine user when root), C locale, on a free loopback port;
its DSN is put in STRATA_TEST_PG_DSN so writer subprocesses of the contract find it too.
"""

from __future__ import annotations

import os
import secrets
import socket
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from strata.engines.postgres import PgNode
from strata.engines.process import EngineError

DSN_VAR = "STRATA_TEST_PG_DSN"


def fresh_database(prefix: str) -> str:
    """A new, empty database of the session's PostgreSQL (`pg_node` must be up), as a URL; C locale,
    so text sorts in code point order as S3 listings need."""
    import psycopg

    admin = os.environ[DSN_VAR]
    db = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {db} TEMPLATE template0 LOCALE 'C'")
    return urlunsplit(urlsplit(admin)._replace(path=f"/{db}"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def pg_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgNode]:
    password = secrets.token_hex(12)
    for attempt in range(3):  # a free port can be taken before the server binds it (xdist workers)
        node = PgNode(tmp_path_factory.mktemp("pgmeta"), _free_port(), "strata")
        try:
            node.initdb(password)
            break
        except EngineError:
            node.stop()
            if attempt == 2:
                raise
    os.environ[DSN_VAR] = f"postgresql://strata:{password}@127.0.0.1:{node.port}/postgres"
    yield node
    os.environ.pop(DSN_VAR, None)
    node.stop()
