"""Which storage failures mean "the disk cannot take writes now" (full, read-only, failing), or,
with the PostgreSQL store, "the database cannot be reached now" (restart, failover).

Such a failure is not the request's fault and not a bug: the client should retry later, so the
gateway answers it with a retryable 503 ServiceUnavailable instead of
a 500 with a traceback per request. Nothing acknowledged is affected: every write path either
commits whole or reports the failure (and SQLite's own rollback on SQLITE_FULL is handled by
strata.storage.group_commit, which fails every write of a group SQLite dropped).
"""

from __future__ import annotations

import errno
import sqlite3

# ENOSPC/EDQUOT: full; EROFS: remounted read-only (also after I/O errors); EIO: a failing disk.
_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})
# SQLite primary result codes: SQLITE_READONLY (8), SQLITE_IOERR (10), SQLITE_FULL (13),
# SQLITE_CANTOPEN (14: a WAL index that cannot be created on a read-only filesystem).
_SQLITE_CODES = frozenset({8, 10, 13, 14})
# PostgreSQL (the metadata store of several gateways): SQLSTATE classes 08 (the connection is
# gone), 53 (disk full, out of memory or connections), 57P (the server shutting down, restarting
# or not yet accepting), and 25006 (a read-only transaction: a failover left us on a standby).
_PG_STATES = ("08", "53", "57P", "25006")


def disk_refused(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) says the data dir cannot take writes right now."""
    seen = 0
    e: BaseException | None = exc
    while e is not None and seen < 8:
        if isinstance(e, OSError) and e.errno in _ERRNOS:
            return True
        if isinstance(e, sqlite3.Error):
            code = getattr(e, "sqlite_errorcode", None)
            if code is not None and code & 0xFF in _SQLITE_CODES:
                return True
        if type(e).__module__.startswith("psycopg"):  # not imported here: SQLite-only gateways
            state = getattr(e, "sqlstate", None)
            if state is None and type(e).__name__ in ("OperationalError", "PoolTimeout"):
                return True  # no answer at all, or no pooled connection free within READ_WAIT
            if state is not None and state.startswith(_PG_STATES):
                return True
        e = e.__cause__ or e.__context__
        seen += 1
    return False
