"""Where S3's SQL differs between its two metadata backends (store.py), and why.

S3's statements are written once, in the SQL both SQLite and PostgreSQL accept
(strata/storage/interface.py); the few that cannot be are spelled by a dialect object the store
picks at start: SQLite's planner hints (`INDEXED BY`), JSON members of `attrs` (SQLite's
json_set/json_extract, PostgreSQL's jsonb), the scalar MAX of two values (PostgreSQL's GREATEST).
The new row's id comes from `lastrowid` on SQLite and `RETURNING id` on PostgreSQL (store.py).
PostgreSQL's TEXT cannot hold NUL: `nul_free` turns listing bounds holding one into bounds that
select the same keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from strata.storage import MetadataStore


def nul_free(bound: str) -> tuple[str, bool]:
    """A range bound holding NUL, as a NUL-free one that selects the same NUL-free keys (the only
    keys PostgreSQL stores), and whether it moved; a moved bound is inclusive (`>=`).

    PostgreSQL's TEXT cannot hold NUL, so a NUL in a parameter is an error there. For s with its
    first NUL at i, the NUL-free keys above s (or at least s) are exactly those from s[:i] + U+0001
    on, and those below s exactly those below it: U+0001 is the least character above NUL.
    """
    i = bound.find("\x00")
    return (bound, False) if i < 0 else (bound[:i] + "\x01", True)


class SqliteDialect:
    """The few spellings where S3's SQL differs by backend: SQLite's (the embedded default).

    The SQLite text stays exactly what it was (planner hints included: measured, issue 17), so
    the embedded path pays nothing for the PostgreSQL one.
    """

    postgres = False
    # When the version entered its storage class (a lifecycle transition sets it), else its creation.
    class_since = "COALESCE(json_extract(attrs, '$.class_since'), modified)"
    greatest = "MAX"  # SQLite's MAX of two or more values is a scalar

    @staticmethod
    def hint(index: str) -> str:
        """`INDEXED BY`: the index SQLite's planner must use (it sometimes picks a worse one)."""
        return f" INDEXED BY {index}"

    @staticmethod
    def set_attr(name: str, kind: str) -> str:
        """An expression: `attrs` (JSON text) with member `name` set to the parameter."""
        return f"json_set(attrs, '$.{name}', ?)"


class PostgresDialect(SqliteDialect):
    """PostgreSQL's spellings: no planner hints; JSON through jsonb (attrs stays TEXT)."""

    postgres = True
    class_since = "COALESCE(CAST(attrs::jsonb ->> 'class_since' AS DOUBLE PRECISION), modified)"
    greatest = "GREATEST"

    @staticmethod
    def hint(index: str) -> str:
        return ""

    @staticmethod
    def set_attr(name: str, kind: str) -> str:
        sql_type = {"real": "DOUBLE PRECISION", "text": "TEXT"}[kind]
        return f"jsonb_set(attrs::jsonb, '{{{name}}}', to_jsonb(CAST(? AS {sql_type})))::text"


def open_metadata(path: Path, schema: str, *, fsync: bool = True, url: str | None = None) -> Any:
    """S3's metadata store: SQLite at `path`, or the `s3` store of the PostgreSQL database `url`."""
    if url is None:
        # Writes run in the writer thread: measured cheaper for S3 than on the event loop (issue 22).
        return MetadataStore(path, fsync=fsync, schema=schema, apply_in="thread")
    from strata.storage.postgres import PostgresStore  # psycopg loads only where it is used

    return PostgresStore(url, "s3", schema=schema)
