"""Every served IAM and STS operation, called with missing or odd parameters, answers with an AWS
error (4xx) or success, never a 500."""

from __future__ import annotations

import pytest
from botocore import xform_name
from botocore.config import Config
from botocore.exceptions import ClientError

from strata.protocol.spec import service_model
from strata.services.registry import SERVICES, load_provider_class
from tests.services.iam.conftest import ALICE, ROOT

ODD = {
    "string": "x" * 300,
    "integer": -1,
    "boolean": True,
    "list": ["not-an-arn"],
    "structure": {},
    "timestamp": 0,
}


def _served(service: str) -> list[str]:
    cls = load_provider_class(SERVICES[service])
    model = service_model(service)
    return [op for op in model.operation_names if hasattr(cls, xform_name(op))]


def _odd_params(service: str, op: str) -> dict:
    shape = service_model(service).operation_model(op).input_shape
    if shape is None:
        return {}
    out = {}
    for name, member in shape.members.items():
        value = ODD.get(member.type_name)
        if member.type_name == "list" and member.member.type_name != "string":
            value = [{}]
        if value is not None:
            out[name] = value
    return out


@pytest.mark.parametrize("service", ["iam", "sts"])
def test_never_500(iam_server, service):
    config = Config(parameter_validation=False, retries={"max_attempts": 1})
    for creds in (ROOT, ALICE):
        client = iam_server.client(service, config=config, **creds)
        for op in _served(service):
            for params in ({}, _odd_params(service, op)):
                try:
                    getattr(client, xform_name(op))(**params)
                except ClientError as e:
                    status = e.response["ResponseMetadata"]["HTTPStatusCode"]
                    assert status < 500, (op, params, e.response["Error"])
