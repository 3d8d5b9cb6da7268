"""A server with two accounts (the IAM tests' users file) and S3 clients for the security tests:
the owner account's root and its user alice, another account's root, and an anonymous client
(boto3 with UNSIGNED). Shared by this directory's tests."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.services.iam.conftest import ALICE, ALT_ROOT, users_file
from tests.strata_process import StrataProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrataProcess]:
    base = tmp_path_factory.mktemp("s3policy")
    srv = StrataProcess(base / "data", extra_env={"STRATA_USERS_FILE": str(users_file(base))}).start()
    yield srv
    srv.stop()


@pytest.fixture
def owner(server):
    return server.client("s3")  # test/test: the default account's root (123456789012)


@pytest.fixture
def other(server):
    return server.client("s3", **ALT_ROOT)


@pytest.fixture
def alice(server):
    return server.client("s3", **ALICE)  # a user of the owner's account, AmazonS3ReadOnlyAccess


@pytest.fixture
def anonymous(server):
    return boto3.client(
        "s3", endpoint_url=server.endpoint, region_name="us-east-1", config=Config(signature_version=UNSIGNED)
    )


@pytest.fixture
def bucket(owner, unique):
    name = f"pol-{unique}"
    owner.create_bucket(Bucket=name)
    for key in ("shared/a.txt", "private/b.txt"):
        owner.put_object(Bucket=name, Key=key, Body=key.encode())
    return name


def code_of(call, *args, **kw) -> str:
    with pytest.raises(ClientError) as e:
        call(*args, **kw)
    return e.value.response["Error"]["Code"]


def put_policy(client, bucket: str, *statements: dict) -> None:
    client.put_bucket_policy(
        Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": list(statements)})
    )


def control_client(server: StrataProcess, **creds: str):  # noqa: ANN201
    """An S3 Control client. The SDK sends S3 Control requests to `<account-id>.<endpoint host>`;
    for an address endpoint no DNS resolves that name, so the connection goes to the address
    (the Host header, which the signature covers, keeps the account's name)."""
    client = boto3.client(
        "s3control",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=creds.get("access_key", "test"),
        aws_secret_access_key=creds.get("secret_key", "test"),
    )

    def to_address(request, **_: object) -> None:  # noqa: ANN001
        scheme, _, rest = request.url.partition("://")
        host, _, path = rest.partition("/")
        request.url = f"{scheme}://{host.split('.', 1)[1]}/{path}"

    client.meta.events.register("before-send", to_address)
    return client
