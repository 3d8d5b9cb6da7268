"""Copy the rows of an embedded SQLite store into the same-named PostgreSQL store (`strata migrate`).

Why by introspection and not per-table SQL: the target's tables are made by the services' own
schema code (postgres.PostgresStore with each service's SCHEMA, pg_sql.ddl), so both sides have
the same tables and columns; a copy by column name then follows every schema change with no code
of its own to keep in step. What it cannot place is refused, never dropped: a SQLite table with
rows that the service's schema does not make, or a column the target table lacks.

Values: SQLite is dynamically typed, PostgreSQL is not. The documents table's ids are TEXT in
SQLite and bytea (UTF-8) in PostgreSQL, so a string bound for a bytea column is encoded, and bytes
bound for a text column decoded; everything else goes by COPY's text input, which parses each value
as its column's type (an integer into DOUBLE PRECISION, 0/1 into BOOLEAN). A key holding NUL
(U+0000), which SQLite stores and PostgreSQL's text cannot, fails the copy with the table named,
unless the caller's `leave_out` names the row: it is then left out and listed (S3 object keys:
migrate.py), and the copy goes on.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql


class CopyError(Exception):
    """A store that cannot be copied as it is (the message says what and where)."""


@dataclass
class Copied:
    """What one store's copy moved: rows per table; and the rows it left out, by what they are."""

    store: str
    rows: dict[str, int] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def open_source(path: Path) -> sqlite3.Connection:
    """The SQLite file read-only (the data dir is never written by a migration)."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def source_tables(src: sqlite3.Connection) -> list[str]:
    """Tables in creation order (a referenced table before its referrers)."""
    rows = src.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
    )
    return [r[0] for r in rows]


def target_columns(pg: psycopg.Connection, schema: str, table: str) -> dict[str, str]:
    """Column name -> data type of `schema.table` (empty: no such table)."""
    rows = pg.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s",
        (schema, table),
    ).fetchall()
    return {name: kind for name, kind in rows}


def has_rows(pg: psycopg.Connection, schema: str) -> list[str]:
    """Tables of `schema` holding at least one row (an empty list: nothing there yet)."""
    tables = pg.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_type = 'BASE TABLE'",
        (schema,),
    ).fetchall()
    full = []
    for (table,) in tables:
        q = sql.SQL("SELECT EXISTS (SELECT 1 FROM {}.{})").format(
            sql.Identifier(schema), sql.Identifier(table)
        )
        if pg.execute(q).fetchone()[0]:  # type: ignore[index]
            full.append(table)
    return full


# (table, {column: value}) -> None to copy the row, else why it is left out ("": with another row)
LeaveOut = Callable[[str, dict[str, object]], str | None]


def copy_store(
    src: sqlite3.Connection, pg: psycopg.Connection, schema: str, leave_out: LeaveOut | None = None
) -> Copied:
    """Copy every table of `src` into PostgreSQL schema `schema`, inside `pg`'s open transaction;
    rows `leave_out` describes are not copied, and listed in the result (non-empty descriptions)."""
    done = Copied(schema)
    for table in source_tables(src):
        source_cols = [r[1] for r in src.execute(f'PRAGMA table_info("{table}")')]
        count = src.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        target = target_columns(pg, schema, table)
        if not target:
            if count:
                raise CopyError(f"{schema}: table {table} ({count} rows) is not in the service's schema")
            continue
        lost = [c for c in source_cols if c not in target]
        if lost and count:
            raise CopyError(f"{schema}.{table}: the target has no column {', '.join(lost)}")
        kinds = [target[c] for c in source_cols]
        columns = sql.SQL(", ").join(map(sql.Identifier, source_cols))
        copy = sql.SQL("COPY {}.{} ({}) FROM STDIN").format(
            sql.Identifier(schema), sql.Identifier(table), columns
        )
        select = 'SELECT {} FROM "{}"'.format(", ".join(f'"{c}"' for c in source_cols), table)
        try:
            with pg.cursor().copy(copy) as out:
                for row in src.execute(select):
                    why = leave_out(table, dict(zip(source_cols, row, strict=True))) if leave_out else None
                    if why is not None:
                        count -= 1
                        if why:
                            done.left_out.append(why)
                        continue
                    out.write_row([_value(v, k) for v, k in zip(row, kinds, strict=True)])
        except (psycopg.Error, UnicodeDecodeError) as e:
            raise CopyError(f"{schema}.{table}: {e}") from e
        done.rows[table] = count
    return done


def _value(value: object, kind: str) -> object:
    if kind == "bytea" and isinstance(value, str):
        return value.encode()
    if kind == "text" and isinstance(value, bytes):
        return value.decode()
    return value
