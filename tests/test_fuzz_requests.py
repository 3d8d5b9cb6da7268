"""The short, seeded run of the model-driven request fuzzer (bench/fuzz_requests.py) in CI.

A few thousand random requests over every operation of S3, DynamoDB, RDS, ElastiCache, STS and
EFS (engine-starting operations skipped), on a private server: no 5xx (other than 501 for an
operation Strata does not have yet), no hang, and every refusal readable by botocore as an error
with a code. The long run is `python bench/fuzz_requests.py --requests 1000000`.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "fuzz_requests.py"


def _load():
    spec = importlib.util.spec_from_file_location("fuzz_requests", BENCH)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules["fuzz_requests"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("seed", [20261206, 7])
def test_seeded_fuzz_finds_nothing(strata_factory, seed: int) -> None:
    fuzz = _load()
    server = strata_factory()
    result = fuzz.fuzz(server.endpoint, requests=1500, seed=seed, prefix=f"ci{seed % 1000}", timeout=60)
    assert result.sent > 1000
    assert result.statuses[200] > 100 and result.statuses[400] > 100  # it reached providers and validators
    report = "\n".join(json.dumps(f)[:1500] for f in result.findings[:5])
    assert not result.findings, f"{len(result.findings)} findings, e.g.:\n{report}"
