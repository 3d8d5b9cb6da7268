"""Storage reads and writes an engine has counted itself since it started: what CloudWatch's
ReadIOPS / WriteIOPS and Aurora's billed I/O are measured from.

PostgreSQL: reads, writes and extends of pg_stat_io (16+; WAL writes from pg_stat_wal before 18,
when pg_stat_io counts them itself), or before 16 blocks read (pg_stat_database.blks_read) and
written (pg_stat_bgwriter) plus WAL writes. MariaDB: Innodb_data_reads / Innodb_data_writes.
A backend reports its I/O to the statistics when it goes idle (PostgreSQL), so the counts lag the
work by up to a second.
"""

from __future__ import annotations

from typing import Any

_PG_IO = {
    18: "SELECT COALESCE(sum(reads), 0), COALESCE(sum(writes), 0) + COALESCE(sum(extends), 0) FROM pg_stat_io",
    16: (
        "SELECT (SELECT COALESCE(sum(reads), 0) FROM pg_stat_io), "
        "(SELECT COALESCE(sum(writes), 0) + COALESCE(sum(extends), 0) FROM pg_stat_io) "
        "+ (SELECT wal_write FROM pg_stat_wal)"
    ),
    14: (
        "SELECT (SELECT COALESCE(sum(blks_read), 0) FROM pg_stat_database), "
        "(SELECT buffers_checkpoint + buffers_clean + buffers_backend FROM pg_stat_bgwriter) "
        "+ (SELECT wal_write FROM pg_stat_wal)"
    ),
}
_MARIA_IO = "SHOW GLOBAL STATUS WHERE Variable_name IN ('Innodb_data_reads', 'Innodb_data_writes')"


def io_counters(node: Any, postgres: bool) -> tuple[float, float]:
    """(reads, writes) the engine of `node` has counted since it started (blocking)."""
    if postgres:
        major = int(node.sql("SHOW server_version_num")[0][0]) // 10000
        row = node.sql(next(q for v, q in _PG_IO.items() if major >= v))[0]
        return float(row[0]), float(row[1])
    status = {name: float(value) for name, value in node.sql(_MARIA_IO)}
    return status.get("Innodb_data_reads", 0.0), status.get("Innodb_data_writes", 0.0)
