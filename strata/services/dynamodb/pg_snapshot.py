"""One consistent read of DynamoDB's PostgreSQL store for backups, PITR restores and exports.

pitr.py reads a table's items and its change history from one snapshot while the table keeps
changing (in a worker thread, for as long as the table takes). On SQLite that is a private
connection holding a read transaction; here it is a private connection holding a REPEATABLE READ,
READ ONLY transaction, which sees one committed state of the store however long it stays open.
The whole-table reads (a table's items, its history, in key order:
`ORDER BY pk, sk`) come through server-side cursors, a batch at a time, so a large table is never
held in memory whole; the short look-ups between them are plain statements. It speaks pitr.py's dialect: `?` placeholders (pg_sql.bind), `execute("COMMIT")`
to end the read, `close()`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import psycopg

from strata.storage.pg_sql import bind

_names = itertools.count()


class PgSnapshot:
    """A REPEATABLE READ transaction of the `dynamodb` store, taken when made."""

    postgres = True  # pitr.first_changes spells its query for PostgreSQL

    def __init__(self, url: str) -> None:
        self.raw = psycopg.connect(
            url, autocommit=True, options="-c search_path=dynamodb", application_name="strata-dynamodb"
        )
        self.raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        # The first statement fixes what the transaction sees: the store as it is now.
        self.raw.execute("SELECT 1 FROM ddb_items LIMIT 1").fetchall()

    def execute(self, sql: str, args: Sequence[Any] = ()) -> psycopg.Cursor:
        q, p = bind(sql, args)
        if "ORDER BY pk, sk" not in sql:
            return self.raw.execute(q, p)  # type: ignore[arg-type]  # a translated, cached str
        cur = self.raw.cursor(name=f"strata_snapshot_{next(_names)}")  # rows fetched in batches
        cur.itersize = 1000
        cur.execute(q, p)  # type: ignore[arg-type]
        return cur

    def close(self) -> None:
        self.raw.close()
