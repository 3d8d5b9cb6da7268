"""AWS Signature Version 4 verification.

Interim: checks only that the access key is known. The full verifier (signature, presigned
expiry, payload hashes, aws-chunked streams and trailers) replaces this module's internals with the
same `Authenticator` interface.
"""

from __future__ import annotations

from strata.config import Settings
from strata.gateway.detect import signing_scope
from strata.protocol.errors import ServiceError
from strata.protocol.http import HttpRequest
from strata.services.base import Principal


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.credentials = settings.all_credentials()

    def authenticate(self, request: HttpRequest, service: str, operation: str) -> Principal | None:
        scope = signing_scope(request)
        if scope is None:
            raise ServiceError("MissingAuthenticationToken", "Request is missing Authentication Token", 403)
        if scope[0] not in self.credentials:
            raise ServiceError("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.", 403)
        acct = self.settings.account_id
        return Principal(scope[0], acct, f"arn:aws:iam::{acct}:root", acct)
