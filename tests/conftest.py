"""Shared fixtures: a real Strata server per test session (per xdist worker), and private ones.

`strata_server` is shared by the tests of a worker: use unique resource names (the `unique`
fixture). Tests that kill or restart the server, or move the simulated clock, use
`strata_factory` to get a server of their own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.strata_process import StrataProcess

# boto3 reads these; make sure a developer's real AWS settings never leak into tests.
for _var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
    os.environ.pop(_var, None)
os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(scope="session")
def strata_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrataProcess]:
    # EBS performance limits off: tests read whole volumes; tests of the limits start their own.
    server = StrataProcess(
        tmp_path_factory.mktemp("strata") / "data", extra_env={"STRATA_EBS_LIMITS": "off"}
    ).start()
    server.shared = True  # (its clock stays put: see StrataProcess.advance_clock)
    yield server
    server.stop()


@pytest.fixture
def strata_factory(tmp_path: Path) -> Iterator:
    """Make private servers: `server = strata_factory()`; all are stopped after the test."""
    servers: list[StrataProcess] = []

    def make(**kw: object) -> StrataProcess:
        server = StrataProcess(tmp_path / f"data{len(servers)}", **kw).start()  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield make
    for s in servers:
        s.stop()


@pytest.fixture
def unique() -> str:
    """A short unique suffix for resource names (buckets, tables, instances)."""
    return uuid.uuid4().hex[:10]
