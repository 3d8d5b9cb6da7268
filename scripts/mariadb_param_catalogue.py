"""Write `strata/services/rds/mariadb_params.json`: the system variables of the installed MariaDB,
as its own `information_schema.SYSTEM_VARIABLES` describes them.

MariaDB has no offline description of its settings (PostgreSQL has `postgres --describe-config`),
so the catalogue is read once from a running server and kept as data. Run it again after the
Debian MariaDB package changes major version:

    python scripts/mariadb_param_catalogue.py /path/to/mariadb.sock
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path

import pymysql

OUT = Path(__file__).resolve().parent.parent / "strata/services/rds/mariadb_params.json"
COLUMNS = (
    "VARIABLE_NAME",
    "DEFAULT_VALUE",
    "VARIABLE_SCOPE",
    "VARIABLE_TYPE",
    "VARIABLE_COMMENT",
    "NUMERIC_MIN_VALUE",
    "NUMERIC_MAX_VALUE",
    "ENUM_VALUE_LIST",
    "READ_ONLY",
    "COMMAND_LINE_ARGUMENT",
)


def main(socket: str) -> None:
    conn = pymysql.connect(unix_socket=socket, user=getpass.getuser())
    with conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        version = cur.fetchone()[0]
        cur.execute(
            f"SELECT {', '.join(COLUMNS)} FROM information_schema.SYSTEM_VARIABLES "
            "WHERE VARIABLE_NAME NOT LIKE 'WSREP%' ORDER BY VARIABLE_NAME"
        )
        rows = [[r[0].lower(), *r[1:]] for r in cur.fetchall()]
    body = ",\n".join(json.dumps(r) for r in rows)  # one variable a line: readable diffs
    head = json.dumps({"version": version, "columns": [c.lower() for c in COLUMNS]})[:-1]
    OUT.write_text(f'{head}, "variables": [\n{body}\n]}}\n')
    print(f"{len(rows)} variables of MariaDB {version} written to {OUT}")


if __name__ == "__main__":
    main(sys.argv[1])
