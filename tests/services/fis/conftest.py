"""The experiment role every FIS test names (ROLE): FIS acts with its permissions, so it must exist
on the server the test uses, trusting FIS and allowed everything."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

TRUST_FIS = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "fis.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)


def runner_role(server, name: str = "fis-runner", policy: dict | None = None) -> str:  # noqa: ANN001
    """Make (once) a role FIS may act as: AdministratorAccess, or the inline `policy` given."""
    iam = server.client("iam")
    try:
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST_FIS)["Role"]["Arn"]
    except ClientError as e:
        if e.response["Error"]["Code"] != "EntityAlreadyExists":
            raise
        return iam.get_role(RoleName=name)["Role"]["Arn"]
    if policy is None:
        iam.attach_role_policy(RoleName=name, PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
    else:
        iam.put_role_policy(RoleName=name, PolicyName="fis", PolicyDocument=json.dumps(policy))
    return arn


@pytest.fixture(autouse=True)
def _experiment_role(strata_server) -> None:  # noqa: ANN001
    runner_role(strata_server)
