"""The engine's own parameter catalogue: names, defaults, types and whether a change needs a restart.

PostgreSQL describes every setting it has (`postgres --describe-config`, no server needed): a
`postmaster` one is static in RDS's terms (applied at the next reboot), an `internal` one cannot be
set at all, the rest are dynamic. MariaDB has no such description, so its families have no
catalogue here: their parameters are not checked by name and are listed only as the user set them.
"""

from __future__ import annotations

import functools
import subprocess

from strata.engines.postgres import pg_bin, pg_installations

_TYPES = {"BOOLEAN": "boolean", "INTEGER": "integer", "REAL": "float", "STRING": "string", "ENUM": "string"}


@functools.cache
def _pg_catalogue(major: str | None) -> dict[str, dict]:
    out = subprocess.run(
        [pg_bin("postgres", major), "--describe-config"], capture_output=True, text=True, check=True
    ).stdout
    params: dict[str, dict] = {}
    for line in out.splitlines():
        cols = line.split("\t")
        if len(cols) < 8:
            continue
        name, context, _group, kind, default, lo, hi, desc = cols[:8]
        entry = {
            "ParameterName": name,
            "Description": desc,
            "Source": "engine-default",
            "ApplyType": "static" if context == "postmaster" else "dynamic",
            "DataType": _TYPES.get(kind, "string"),
            "IsModifiable": context != "internal",
            "ApplyMethod": "pending-reboot",
        }
        if default:
            entry["ParameterValue"] = default
        if lo and hi:
            entry["AllowedValues"] = f"{lo}-{hi}"
        params[name] = entry
    return params


def catalogue(family: str) -> dict[str, dict] | None:
    """The engine's parameters of a parameter group family (postgres18, aurora-postgresql16 ...) by
    name, as DescribeEngineDefaultParameters lists them; None when the engine has no catalogue."""
    if not family.startswith(("postgres", "aurora-postgresql")):
        return None
    major = "".join(ch for ch in family if ch.isdigit()) or None
    if major not in pg_installations():
        major = None  # a family of a version Strata does not run: the installed server's settings
    return _pg_catalogue(major)
