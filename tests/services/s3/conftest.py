"""Fixtures for the S3 tests: a boto3 client on the shared server and a fresh bucket per test."""

from __future__ import annotations

import pytest


@pytest.fixture
def s3(strata_server):
    return strata_server.client("s3")


@pytest.fixture
def bucket(s3, unique: str) -> str:
    name = f"t-{unique}"
    s3.create_bucket(Bucket=name)
    return name
