"""The credential store: which access keys exist, who they belong to, and their signing keys.

Deriving a SigV4 signing key costs four HMACs; it depends only on (secret, date, region, service),
so it is computed once per day per scope and cached here. Every signature check in Strata (header,
presigned query, chunk, trailer, POST policy) goes through `signing_key`.
"""

from __future__ import annotations

import hashlib
import hmac

from strata.auth.directory import CredentialProblem, directory_for
from strata.auth.principal import Principal
from strata.config import Settings

_CACHE_LIMIT = 4096


def derive_signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """kSigning = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request")."""
    k = hmac.digest(("AWS4" + secret).encode("utf-8"), date.encode("utf-8"), "sha256")
    k = hmac.digest(k, region.encode("utf-8"), "sha256")
    k = hmac.digest(k, service.encode("utf-8"), "sha256")
    return hmac.digest(k, b"aws4_request", "sha256")


def hmac_hex(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


class CredentialStore:
    """Access key -> (secret, principal) through the server's identity directory, plus a bounded
    cache of derived signing keys."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.directory = directory_for(settings)
        self._keys: dict[tuple[str, str, str, str], bytes] = {}

    def resolve(self, access_key: str, token: str | None = None) -> tuple[str, Principal]:
        """The secret and principal of a key (a session key needs its token); raises
        CredentialProblem (kind unknown_key, expired_token or bad_token)."""
        return self.directory.credential(access_key, token)

    def resolve_s3(self, access_key: str, token: str | None) -> tuple[str, Principal]:
        """`resolve` with S3's errors (SigV2 URLs and browser POST uploads)."""
        from strata.auth.errors import credential_error

        try:
            return self.directory.credential(access_key, token)
        except CredentialProblem as e:
            raise credential_error("s3", e.kind, access_key) from None

    def secret(self, access_key: str) -> str | None:
        """The secret of a long-term key, None if unknown (signatures without a session token)."""
        try:
            return self.directory.credential(access_key, None)[0]
        except CredentialProblem:
            return None

    def principal(self, access_key: str) -> Principal:
        return self.directory.credential(access_key, None)[1]

    def signing_key(self, secret: str, date: str, region: str, service: str) -> bytes:
        cache_key = (secret, date, region, service)
        key = self._keys.get(cache_key)
        if key is None:
            if len(self._keys) >= _CACHE_LIMIT:
                self._keys.clear()  # dates roll over daily; a wholesale reset is simplest and rare
            key = self._keys[cache_key] = derive_signing_key(secret, date, region, service)
        return key
