"""Small helpers for RDS tests: create an instance, wait for a status, connect with psycopg."""

from __future__ import annotations

import time
from typing import Any

import psycopg

PASSWORD = "Secret-pass-123"
USER = "master"


def wait_status(rds: Any, ident: str, status: str = "available", timeout: float = 180) -> dict:
    """Poll DescribeDBInstances until the instance has `status`; fail on 'failed'."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        inst = rds.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]
        st = inst["DBInstanceStatus"]
        if not seen or seen[-1] != st:
            seen.append(st)
        if st == status:
            inst["_seen"] = seen
            return inst
        assert st != "failed", f"{ident} failed (statuses seen: {seen})"
        assert time.monotonic() < deadline, f"{ident} never reached {status}; statuses seen: {seen}"
        time.sleep(0.2)


def create_pg(rds: Any, ident: str, wait: bool = True, **kw: Any) -> dict:
    args = {
        "DBInstanceIdentifier": ident,
        "Engine": "postgres",
        "MasterUsername": USER,
        "MasterUserPassword": PASSWORD,
        "DBInstanceClass": "db.t3.micro",
        "AllocatedStorage": 20,
        "DBName": "app",
        **kw,
    }
    inst = rds.create_db_instance(**args)["DBInstance"]
    return wait_status(rds, ident) if wait else inst


def pg_connect(inst: dict, password: str = PASSWORD, dbname: str = "app", **kw: Any) -> psycopg.Connection:
    ep = inst["Endpoint"]
    return psycopg.connect(
        host=ep["Address"],
        port=ep["Port"],
        user=USER,
        password=password,
        dbname=dbname,
        connect_timeout=10,
        autocommit=True,
        **kw,
    )


def eventually(fn, timeout: float = 60, interval: float = 0.1):  # noqa: ANN001, ANN201
    """Call fn until it returns a truthy value (or raise the last assertion after `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = fn()
            if value:
                return value
        except Exception:  # noqa: BLE001
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError("condition never became true")
        time.sleep(interval)


def maintenance(report: dict) -> dict:
    """The `rds.maintenance` rule's counts in an advance_clock report."""
    return report["ran"].get("rds.maintenance", {})


def applied_after(server: Any, duration: str) -> int:
    """Advance the clock; the instances the rule changed (an instance still finishing its restart
    is "deferred" by the rule: a second later it is taken)."""
    counts = maintenance(server.advance_clock(duration))
    for _ in range(20):
        if not counts.get("deferred"):
            break
        time.sleep(0.5)
        counts = maintenance(server.advance_clock("1s"))
    return counts.get("applied", 0)


STARTED_BY_AWS = "is being started due to it exceeding the maximum allowed time being stopped."


def autostarted(report: dict) -> dict:
    """What the `rds.autostart` rule started, in an advance_clock report (counts of 0 left out)."""
    return {k: v for k, v in report["ran"].get("rds.autostart", {}).items() if v}


def refused(call: Any, code: str, **kw: Any) -> str:
    """Call `call(**kw)`, which must fail with error `code`; the error's message."""
    from botocore.exceptions import ClientError

    try:
        call(**kw)
    except ClientError as e:
        assert e.response["Error"]["Code"] == code, e.response["Error"]
        return e.response["Error"]["Message"]
    raise AssertionError(f"{code} expected")
