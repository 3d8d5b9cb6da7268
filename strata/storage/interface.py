"""The metadata-store interface every backend implements, and services may rely on.

SQLite (`MetadataStore` in metadata.py) is the embedded backend; `PostgresStore` (postgres.py:
psycopg 3 with a connection pool) is the second, for several gateways. tests/storage/test_contract.py is
the contract: every backend passes it, so no backend is a mock of another.

What a service may rely on:
- `write(fn)`: `fn` runs serialized with every other write of the store (at once on the calling
  thread, or in the store's writer thread); read-check-write inside it is isolated, so
  conditional writes need no more locking;
  its statements are atomic (an exception rolls back only them and is raised); the result comes
  back once the write is durable (an acknowledged write survives kill -9, and power loss when
  fsync is on). Concurrent writes share commits. A caller cancelled while waiting does not undo
  its write.
- `transaction()`: the same for synchronous callers; durable when the outermost one exits.
- `conn`, `execute`, `query`, `query_one`: inside a write, its connection (it sees the write's
  own and earlier writes); elsewhere a read connection that sees committed data only.
- `reader()`: committed data only, even inside a write. `snapshot()`: several reads as one.
- `read(fn)`: await the reads `fn` makes through the store without blocking the event loop for a
  server's round trip: PostgreSQL runs `fn` in a read thread (in the caller's contextvars), SQLite
  at once (a local read is faster than a thread hop). So `fn` may run on another thread: it reads
  the store and returns, and changes no state the event loop reads unless whole (one assignment).
- Documents: `put_doc`, `get_doc`, `list_docs`, `delete_doc`; listings are in code point order
  of the id (UTF-8 byte order; PostgreSQL needs COLLATE "C"), and a page's last id is the token
  of the next page (`after=`).
- SQL: `?` placeholders, and what SQLite and PostgreSQL both accept (ON CONFLICT ... DO UPDATE,
  RETURNING, row-value comparisons, BLOB/bytea compared bytewise). A backend translates the
  placeholders for its driver, and schema scripts' SQLite type names (pg_sql.ddl). A failed
  statement inside a write ends that write on PostgreSQL (catching it and going on does not
  work): conditional inserts use ON CONFLICT.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    def execute(self, sql: str, args: Sequence[Any] | dict = ..., /) -> Cursor: ...


class MetadataBackend(Protocol):
    @property
    def conn(self) -> Connection: ...
    def reader(self) -> Connection: ...
    async def write(self, fn: Callable[[], T]) -> T: ...
    async def read(self, fn: Callable[[], T]) -> T: ...
    def transaction(self) -> AbstractContextManager[Connection]: ...
    def snapshot(self) -> AbstractContextManager[Connection]: ...
    def execute(self, sql: str, args: Sequence[Any] | dict = ()) -> Cursor: ...
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Cursor: ...
    def executescript(self, script: str) -> None: ...
    def query(self, sql: str, args: Sequence[Any] | dict = ()) -> list[Any]: ...
    def query_one(self, sql: str, args: Sequence[Any] | dict = ()) -> Any: ...
    def put_doc(self, kind: str, id: str, body: dict) -> None: ...
    def get_doc(self, kind: str, id: str) -> dict | None: ...
    def list_docs(
        self, kind: str, prefix: str = "", *, after: str = "", limit: int | None = None
    ) -> list[dict]: ...
    def delete_doc(self, kind: str, id: str) -> bool: ...
    def close(self) -> None: ...
