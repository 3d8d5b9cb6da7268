"""STS session credentials: ASIA… access keys whose session token carries the session itself.

The token is the session's facts (who, which role, expiry, session policies) with an HMAC of the
server's session key, so any service verifies it without a look-up and it survives restarts; the
secret key is derived from the session key and the access key id, never stored or sent in the
token. The session key is kept in the IAM metadata store (`strata.auth.directory`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import zlib
from typing import Any

TOKEN_PREFIX = "FwoGZXIvYXdzE"  # what AWS session tokens start with; clients do not care
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def new_session_key_id() -> str:
    return "ASIA" + "".join(secrets.choice(_ALPHABET) for _ in range(16))


def session_secret(server_key: bytes, access_key: str) -> str:
    digest = hmac.digest(server_key, b"secret:" + access_key.encode(), "sha256")
    return base64.b64encode(digest).decode()[:40]


def mint_token(server_key: bytes, facts: dict[str, Any]) -> str:
    payload = base64.urlsafe_b64encode(zlib.compress(json.dumps(facts, separators=(",", ":")).encode()))
    mac = base64.urlsafe_b64encode(hmac.digest(server_key, payload, "sha256")[:24])
    return TOKEN_PREFIX + payload.decode() + "." + mac.decode()


def read_token(server_key: bytes, token: str) -> dict[str, Any] | None:
    """The session facts, or None when the token is not one of ours or was altered."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    body, _, mac = token[len(TOKEN_PREFIX) :].rpartition(".")
    if not body:
        return None
    expected = base64.urlsafe_b64encode(hmac.digest(server_key, body.encode(), "sha256")[:24]).decode()
    if not hmac.compare_digest(expected, mac):
        return None
    try:
        facts = json.loads(zlib.decompress(base64.urlsafe_b64decode(body)))
    except (ValueError, zlib.error):
        return None
    return facts if isinstance(facts, dict) else None


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]
