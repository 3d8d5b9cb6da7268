"""A server started with the README's example users file (shared by this directory's tests)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.strata_process import StrataProcess

# The README's example, verbatim.
USERS_TOML = """\
default_account = "123456789012"
[accounts."123456789012"]
root = { access_key = "FOOBARKEY", secret_key = "FOOBARSECRET" }
[accounts."123456789012".users.alice]
access_key = "AKIAALICE00000000001"
secret_key = "alicesecretalicesecretalicesecret000000"
policies = ["arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"]
[accounts."222222222222"]
root = { access_key = "AKIAALTROOT000000002", secret_key = "altsecretaltsecretaltsecretaltsecret00" }
"""

ROOT = {"access_key": "FOOBARKEY", "secret_key": "FOOBARSECRET"}
ALICE = {"access_key": "AKIAALICE00000000001", "secret_key": "alicesecretalicesecretalicesecret000000"}
ALT_ROOT = {"access_key": "AKIAALTROOT000000002", "secret_key": "altsecretaltsecretaltsecretaltsecret00"}
ACCOUNT = "123456789012"
ALT_ACCOUNT = "222222222222"


def users_file(directory: Path) -> Path:
    path = directory / "users.toml"
    path.write_text(USERS_TOML)
    return path


@pytest.fixture(scope="module")
def iam_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrataProcess]:
    base = tmp_path_factory.mktemp("iam")
    server = StrataProcess(base / "data", extra_env={"STRATA_USERS_FILE": str(users_file(base))}).start()
    yield server
    server.stop()


@pytest.fixture
def users_env(tmp_path: Path) -> dict[str, str]:
    return {"STRATA_USERS_FILE": str(users_file(tmp_path))}
