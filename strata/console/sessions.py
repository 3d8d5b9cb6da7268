"""Console sign-in sessions: held in the server's memory only, named by an HttpOnly cookie.

A session keeps the access key and secret the user signed in with (never sent back to the
browser, never written to disk: a restart signs everyone out) and a CSRF token that every
state-changing request must carry. The sign-in form itself is protected by a token bound to a
random pre-session cookie (HMAC with a per-process key), so another page cannot sign a victim
into an attacker's identity either.

Sessions expire after `IDLE_SECONDS` without a request and `MAX_SECONDS` after sign-in (real
monotonic time: moving the simulated clock signs nobody out); at most `MAX_SESSIONS` are kept
(the least recently used goes first).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field

from strata.sim.clock import clock

COOKIE = "strata-console"
PRE_COOKIE = "strata-console-pre"
IDLE_SECONDS = 8 * 3600
MAX_SECONDS = 24 * 3600
MAX_SESSIONS = 1000


@dataclass
class Session:
    """One signed-in browser: the identity it acts as and its CSRF token."""

    sid: str
    access_key: str
    secret_key: str
    arn: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    created: float = field(default_factory=clock.monotonic)
    last_used: float = field(default_factory=clock.monotonic)
    flash: list[tuple[str, str]] = field(default_factory=list)  # (kind, text) shown once
    clients: dict = field(default_factory=dict, repr=False)  # botocore clients by (service, endpoint)

    def check_csrf(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf.encode(), str(token).encode())

    def say(self, kind: str, text: str) -> None:
        """Remember a message for the next page this session sees."""
        self.flash.append((kind, text))
        del self.flash[:-5]

    def take_flash(self) -> list[tuple[str, str]]:
        out, self.flash = self.flash, []
        return out


class SessionStore:
    """The signed-in sessions of one server process."""

    def __init__(self) -> None:
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._key = secrets.token_bytes(32)  # signs the sign-in form's token

    def create(self, access_key: str, secret_key: str, arn: str) -> Session:
        session = Session(secrets.token_urlsafe(32), access_key, secret_key, arn)
        self._sessions[session.sid] = session
        while len(self._sessions) > MAX_SESSIONS:
            self.drop(next(iter(self._sessions)))
        return session

    def get(self, sid: str | None) -> Session | None:
        """The live session a cookie names, or None (unknown, idle or too old: then forgotten)."""
        if not sid:
            return None
        session = self._sessions.get(sid)
        if session is None:
            return None
        now = clock.monotonic()
        if now - session.last_used > IDLE_SECONDS or now - session.created > MAX_SECONDS:
            self.drop(sid)
            return None
        session.last_used = now
        self._sessions.move_to_end(sid)
        return session

    def drop(self, sid: str) -> None:
        session = self._sessions.pop(sid, None)
        if session is not None:
            for client in session.clients.values():
                client.close()

    def signin_token(self, pre: str) -> str:
        """The token the sign-in form carries for the browser holding pre-session cookie `pre`."""
        return hmac.new(self._key, pre.encode(), hashlib.sha256).hexdigest()

    def check_signin_token(self, pre: str | None, token: str | None) -> bool:
        if not pre or not token:
            return False
        return hmac.compare_digest(self.signin_token(pre).encode(), token.encode())
