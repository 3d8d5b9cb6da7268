"""Console sign-in sessions: kept durably, so a restart signs nobody out, and named by an HttpOnly
cookie whose token the disk never holds.

A session is the identity the user signed in as: its access key and secret (never sent back to
the browser) and its ARN. It is stored (strata.storage.MetadataStore: `<data dir>/console/
sessions.db`, in a directory only Strata's user may enter, files only it may read) under the
SHA-256 of the cookie's token, with the secret sealed by AES-GCM under a key derived from the
token: what is on disk lets nobody act as the user, nor find a live cookie. The CSRF token every
state-changing request carries is derived from the cookie's token too (HMAC), so it is never
stored either. Signing in and signing out are acknowledged only once durable (a signed-out
cookie stays dead after a kill -9). The sign-in form itself is protected by a token bound to a
random pre-session cookie (HMAC with a per-process key), so another page cannot sign a victim
into an attacker's identity either.

Sessions expire after `IDLE_SECONDS` without a request and `MAX_SECONDS` after sign-in (the
machine's time, not the simulated clock: moving the clock signs nobody out); the last use is
written at most every `TOUCH_SECONDS`. At most `MAX_SESSIONS` are kept (the least recently used
is signed out first). Messages shown once (`say`) live in memory only.

With several gateways on one PostgreSQL (`--metadata`) the sessions are that database's `console`
store and the sign-in form's key is stored there too, so a browser signed in through one gateway
is signed in on all; a gateway checks that a session it holds in memory still has its row (one
indexed read) before serving it, so signing out through one gateway signs out on every one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from strata.sim.clock import clock
from strata.storage import MetadataStore
from strata.storage.shared import open_store

COOKIE = "strata-console"
PRE_COOKIE = "strata-console-pre"
IDLE_SECONDS = 8 * 3600
MAX_SECONDS = 24 * 3600
TOUCH_SECONDS = 60
MAX_SESSIONS = 1000

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    access_key TEXT NOT NULL,
    arn TEXT NOT NULL,
    sealed_secret BLOB NOT NULL,
    created REAL NOT NULL,
    last_used REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_by_use ON sessions (last_used);
"""


def _derive(token: str, purpose: bytes) -> bytes:
    return hmac.new(token.encode(), b"strata-console:" + purpose, hashlib.sha256).digest()


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _seal(token: str, access_key: str, secret: str) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(_derive(token, b"secret")).encrypt(nonce, secret.encode(), access_key.encode())


def _unseal(token: str, access_key: str, sealed: bytes) -> str | None:
    try:
        opened = AESGCM(_derive(token, b"secret")).decrypt(sealed[:12], sealed[12:], access_key.encode())
    except (InvalidTag, ValueError):
        return None
    return opened.decode()


@dataclass
class Session:
    """One signed-in browser: the identity it acts as and its CSRF token."""

    sid: str  # the cookie's token (in memory only)
    access_key: str
    secret_key: str
    arn: str
    created: float = field(default_factory=clock.real_time)
    last_used: float = field(default_factory=clock.real_time)
    stored_use: float = 0.0  # the last use written down
    flash: list[tuple[str, str]] = field(default_factory=list)  # (kind, text) shown once
    clients: dict = field(default_factory=dict, repr=False)  # botocore clients by (service, endpoint)

    @property
    def csrf(self) -> str:
        return base64.urlsafe_b64encode(_derive(self.sid, b"csrf")).decode().rstrip("=")

    def check_csrf(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf.encode(), str(token).encode())

    def say(self, kind: str, text: str) -> None:
        """Remember a message for the next page this session sees."""
        self.flash.append((kind, text))
        del self.flash[:-5]

    def take_flash(self) -> list[tuple[str, str]]:
        out, self.flash = self.flash, []
        return out

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        self.clients.clear()


def _private_store(directory: Path, fsync: bool) -> MetadataStore:
    """The session database, in a directory and files only this user may read."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    path = directory / "sessions.db"
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)  # SQLite gives its -wal and -shm files the database file's mode
    return MetadataStore(path, fsync=fsync, schema=SCHEMA)


class SessionStore:
    """The signed-in sessions of one server: durable rows, and the live ones cached in memory."""

    def __init__(self, directory: Path, fsync: bool = True, url: str | None = None) -> None:
        self.shared = url is not None
        if url is None:
            self._db: Any = _private_store(directory, fsync)
            self._key = secrets.token_bytes(32)  # signs the sign-in form's token
        else:
            self._db = open_store(directory / "sessions.db", "console", url=url, schema=SCHEMA)
            self._key = self._shared_key()
        self._live: OrderedDict[str, Session] = OrderedDict()  # by token, least recently used first

    def _shared_key(self) -> bytes:
        """The sign-in form's key every gateway uses (made by the first to start)."""
        with self._db.transaction():
            doc = self._db.get_doc("meta", "signin-key")
            if doc is None:
                doc = {"key": base64.b64encode(secrets.token_bytes(32)).decode()}
                self._db.put_doc("meta", "signin-key", doc)
        return base64.b64decode(doc["key"])

    def close(self) -> None:
        for session in self._live.values():
            session.close()
        self._live.clear()
        self._db.close()

    async def create(self, access_key: str, secret_key: str, arn: str) -> Session:
        """A new session, durable when this returns; the least recently used beyond MAX_SESSIONS
        and the expired ones are signed out."""
        session = Session(secrets.token_urlsafe(32), access_key, secret_key, arn)
        session.stored_use = session.last_used
        row = (_hash(session.sid), access_key, arn, _seal(session.sid, access_key, secret_key))
        now = session.created

        def write() -> set[str]:
            self._db.execute(
                "INSERT INTO sessions (token_hash, access_key, arn, sealed_secret, created, last_used)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (*row, now, now),
            )
            gone = self._db.query(
                "DELETE FROM sessions WHERE last_used < ? OR created < ? OR token_hash NOT IN"
                " (SELECT token_hash FROM sessions ORDER BY last_used DESC LIMIT ?) RETURNING token_hash",
                (now - IDLE_SECONDS, now - MAX_SECONDS, MAX_SESSIONS),
            )
            return {r[0] for r in gone}

        gone = await self._db.write(write)
        for sid in [sid for sid in self._live if _hash(sid) in gone]:
            self._live.pop(sid).close()
        self._remember(session)
        return session

    def _remember(self, session: Session) -> None:
        self._live[session.sid] = session
        while len(self._live) > MAX_SESSIONS:  # out of memory only: the row stays
            self._live.popitem(last=False)[1].close()

    def _load(self, sid: str) -> Session | None:
        row = self._db.query_one(
            "SELECT access_key, arn, sealed_secret, created, last_used FROM sessions WHERE token_hash = ?",
            (_hash(sid),),
        )
        if row is None:
            return None
        secret = _unseal(sid, row[0], bytes(row[2]))
        if secret is None:
            return None
        return Session(sid, row[0], secret, row[1], created=row[3], last_used=row[4], stored_use=row[4])

    async def get(self, sid: str | None) -> Session | None:
        """The live session a cookie names, or None (unknown, idle or too old: then signed out)."""
        if not sid or len(sid) > 100:
            return None
        session = self._live.get(sid)
        if session is not None and self.shared and not self._stored(sid):
            self._live.pop(sid).close()  # signed out (or evicted) through another gateway
            return None
        if session is None:
            session = self._load(sid)
            if session is None:
                return None
            self._remember(session)
        now = clock.real_time()
        if now - session.last_used > IDLE_SECONDS or now - session.created > MAX_SECONDS:
            await self.drop(sid)
            return None
        session.last_used = now
        self._live.move_to_end(sid)
        if now - session.stored_use >= TOUCH_SECONDS:
            session.stored_use = now
            token_hash = _hash(sid)
            await self._db.write(
                lambda: self._db.execute(
                    "UPDATE sessions SET last_used = ? WHERE token_hash = ?", (now, token_hash)
                )
            )
        return session

    def _stored(self, sid: str) -> bool:
        return self._db.query_one("SELECT 1 FROM sessions WHERE token_hash = ?", (_hash(sid),)) is not None

    async def drop(self, sid: str) -> None:
        """Sign the session out: forgotten durably before this returns."""
        session = self._live.pop(sid, None)
        if session is not None:
            session.close()
        token_hash = _hash(sid)
        await self._db.write(
            lambda: self._db.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))
        )

    def signin_token(self, pre: str) -> str:
        """The token the sign-in form carries for the browser holding pre-session cookie `pre`."""
        return hmac.new(self._key, pre.encode(), hashlib.sha256).hexdigest()

    def check_signin_token(self, pre: str | None, token: str | None) -> bool:
        if not pre or not token:
            return False
        return hmac.compare_digest(self.signin_token(pre).encode(), token.encode())
