"""Which of the services' SQL statements PostgreSQL refuses: the work left to run them there.

    python bench/pg_sql_audit.py [--dsn postgresql://...] [PATH ...]

Every SQL string literal of the given modules (default: strata/services, strata/engines/ports.py,
strata/console, strata/auth) that starts like a statement is PREPAREd on PostgreSQL in a store
holding every service schema (translated as the PostgreSQL store translates them), with `?` and
`:name` as $n parameters. PREPARE parses and plans without running, so it finds syntax, unknown
functions, ambiguous columns and type errors. Statements built at run time (f-strings, joins)
are seen only in their literal parts, and those of stores outside the metadata interface
(CloudWatch, the meter: their own SQLite files) fail as unknown tables: both are listed apart.
Without --dsn a throwaway server is started (bench/metadata_backends.py).
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import sys
import tempfile
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.metadata_backends import _throwaway_server  # noqa: E402
from strata.storage.postgres import PostgresStore  # noqa: E402
from tests.storage.test_postgres import SERVICE_SCHEMAS  # noqa: E402

# Statement shapes, keywords upper-case as the services write them (prose never matches).
_START = re.compile(
    r"\s*(SELECT\s.+\sFROM\s|INSERT\s+(OR\s+\w+\s+)?INTO\s|UPDATE\s+\w+\s+SET\s|DELETE\s+FROM\s"
    r"|WITH\s+\w+.*?\sAS\s*\(|REPLACE\s+INTO\s)",
    re.S,
)
_PARAM = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|::|\?|:([A-Za-z_]\w*)""")
DEFAULT = ["strata/services", "strata/engines/ports.py", "strata/console", "strata/auth"]
# SQL Strata runs on the engines it hosts (RDS's PostgreSQL/MariaDB), not on its metadata store.
ENGINE_SQL = ("strata/services/rds/", "strata/services/cloudwatch/publish_rds.py")


def _literal(node: ast.AST) -> str | None:
    """A string constant, or constants joined with + (the parser already joins adjacent ones)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _literal(node.left), _literal(node.right)
        if left is not None and right is not None:
            return left + right
    return None


def statements(paths: list[str]) -> list[tuple[str, int, str]]:
    found = []
    for p in paths:
        files = sorted(Path(ROOT / p).rglob("*.py")) if (ROOT / p).is_dir() else [ROOT / p]
        for f in files:
            tree = ast.parse(f.read_text())
            inner: set[int] = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.BinOp):
                    inner.update(id(n) for n in (node.left, node.right))
            for node in ast.walk(tree):
                if id(node) in inner:
                    continue
                sql = _literal(node)
                if sql and _START.match(sql):
                    found.append((str(f.relative_to(ROOT)), node.lineno, sql))  # type: ignore[attr-defined]
    return found


def numbered(sql: str) -> str:
    names: dict[str, int] = {}
    n = 0

    def sub(m: re.Match[str]) -> str:
        nonlocal n
        tok = m.group(0)
        if tok == "?":
            n += 1
            return f"${n}"
        if m.group(1):
            if m.group(1) not in names:
                names[m.group(1)] = len(names) + n + 1
            return f"${names[m.group(1)]}"
        return tok

    return _PARAM.sub(sub, sql)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsn", default=os.environ.get("STRATA_BENCH_PG_DSN"))
    ap.add_argument("paths", nargs="*", default=DEFAULT)
    args = ap.parse_args()
    node = None
    dsn = args.dsn
    if not dsn:
        node, dsn = _throwaway_server(Path(tempfile.mkdtemp(prefix="strata-audit-")))
    try:
        store = PostgresStore(dsn, "sql_audit", schema="".join(SERVICE_SCHEMAS.values()))
        store.close()
        refused: list[tuple[str, int, str, str]] = []
        partial: list[tuple[str, int, str, str]] = []
        unknown: list[tuple[str, int, str]] = []
        ok = 0
        with psycopg.connect(dsn, autocommit=True, options="-c search_path=sql_audit") as c:
            for path, line, sql in statements(args.paths):
                if path.startswith(ENGINE_SQL):
                    continue
                try:
                    c.execute(f"PREPARE audit AS {numbered(sql)}")
                    c.execute("DEALLOCATE audit")
                    ok += 1
                except psycopg.errors.UndefinedTable as e:
                    unknown.append((path, line, str(e).splitlines()[0]))
                except psycopg.Error as e:
                    err = str(e).splitlines()[0]
                    (partial if "at end of input" in err else refused).append(
                        (path, line, " ".join(sql.split())[:110], err)
                    )
        print(
            f"{ok} statements taken, {len(refused)} refused, {len(partial)} only partly literal, "
            f"{len(unknown)} on tables outside the service schemas\n"
        )
        for path, line, sql, err in refused:
            print(f"{path}:{line}: {err}\n    {sql}")
        print("\nOnly partly literal (the rest is built at run time: not checked):")
        for path, line, sql, _ in partial:
            print(f"  {path}:{line}: {sql}")
        print("\nUnknown tables (stores outside the metadata interface, or tables made at run time):")
        for path, line, err in unknown:
            print(f"  {path}:{line}: {err}")
    finally:
        if node is not None:
            node.stop()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
