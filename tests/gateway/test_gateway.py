"""The front door: health, admin clock, the 501 answer for unimplemented operations, bind safety."""

from __future__ import annotations

import subprocess
import sys
import urllib.request

import pytest
from botocore.exceptions import ClientError

from tests.strata_process import StrataProcess


def test_health_reports_version_uptime_and_services(strata_server: StrataProcess) -> None:
    health = strata_server.health()
    assert health["version"]
    assert health["uptime_seconds"] >= 0
    assert set(health["services"]) >= {
        "s3",
        "dynamodb",
        "ec2",
        "ebs",
        "efs",
        "rds",
        "elasticache",
        "kms",
        "sts",
        "iam",
    }


@pytest.mark.parametrize(
    ("service", "call", "kwargs"),
    [
        ("ec2", "describe_images", {}),
        ("efs", "describe_replication_configurations", {}),
        ("kms", "describe_custom_key_stores", {}),
        ("iam", "list_saml_providers", {}),
        ("s3", "get_bucket_metadata_configuration", {"Bucket": "b-501"}),
        ("dynamodb", "describe_global_table_settings", {"GlobalTableName": "table-501"}),
        ("rds", "describe_db_proxies", {}),
        ("elasticache", "describe_reserved_cache_nodes", {}),
        ("cloudwatch", "list_metric_streams", {}),
        ("ce", "list_cost_category_definitions", {}),
    ],
)
def test_unimplemented_operation_is_a_protocol_correct_501(
    strata_server: StrataProcess, service: str, call: str, kwargs: dict
) -> None:
    client = strata_server.client(service)
    with pytest.raises(ClientError) as info:
        getattr(client, call)(**kwargs)
    err = info.value.response
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 501
    assert err["Error"]["Code"] == "NotImplemented"
    operation = client.meta.method_to_api_mapping[call]
    assert operation in err["Error"]["Message"]


def test_clock_advances_through_admin_api_and_cli(strata_factory) -> None:
    server = strata_factory()
    before = server.admin("/_strata/clock")["offset_seconds"]
    server.advance_clock("2d")
    out = subprocess.run(
        [sys.executable, "-m", "strata.cli", "clock", "advance", "1h", "--endpoint", server.endpoint],
        capture_output=True,
        text=True,
        check=True,
    )
    assert '"offset_seconds": ' in out.stdout
    assert server.admin("/_strata/clock")["offset_seconds"] == before + 2 * 86400 + 3600
    # The simulated date survives a restart.
    server.restart()
    assert server.admin("/_strata/clock")["offset_seconds"] == before + 2 * 86400 + 3600


def test_clock_refuses_to_go_back(strata_server: StrataProcess) -> None:
    req = urllib.request.Request(
        strata_server.endpoint + "/_strata/clock",
        data=b'{"advance": -5}',
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    assert info.value.code == 400


def test_public_bind_without_credentials_refuses_to_start(tmp_path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "strata.cli",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode != 0
    assert "loopback" in proc.stderr
    # It names what exists (there is no --credentials option).
    assert "STRATA_ACCESS_KEY_ID" in proc.stderr and "STRATA_SECRET_ACCESS_KEY" in proc.stderr
    assert "--credentials" not in proc.stderr


def test_access_log_has_one_line_per_request(strata_factory) -> None:
    server = strata_factory()
    with pytest.raises(ClientError):
        server.client("kms").describe_custom_key_stores()
    server.stop()  # a clean stop flushes the buffered log
    lines = [line for line in server.log_tail(200).splitlines() if " access kms " in line]
    assert len(lines) == 1
    assert "DescribeCustomKeyStores 501" in lines[0]


@pytest.mark.parametrize("service", ["sts", "rds", "elasticache", "iam", "ec2"])
def test_unsigned_query_call_gets_the_services_auth_error(strata_server: StrataProcess, service: str) -> None:
    """An unsigned query-protocol call is routed by its API version, so the error is parseable."""
    from botocore import UNSIGNED
    from botocore.config import Config

    client = strata_server.client(service, config=Config(signature_version=UNSIGNED))
    call = {
        "sts": "get_caller_identity",
        "rds": "describe_db_instances",
        "elasticache": "describe_cache_clusters",
        "iam": "list_users",
        "ec2": "describe_volumes",
    }[service]
    with pytest.raises(ClientError) as info:
        getattr(client, call)()
    code = info.value.response["Error"]["Code"]
    assert code in ("MissingAuthenticationToken", "AuthFailure", "MissingAuthenticationTokenException")
