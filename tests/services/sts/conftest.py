"""STS tests use the IAM tests' server with the README's users file."""

from tests.services.iam.conftest import iam_server, users_env  # noqa: F401 - fixtures
