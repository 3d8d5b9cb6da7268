"""RDS and Aurora: instances and clusters with status, endpoints (copyable connection strings),
replicas and snapshots; reboot (with failover), create a snapshot, restore to a point in time,
fail a cluster over. All through the RDS API as the signed-in identity."""

from __future__ import annotations

import asyncio
from typing import Any

from strata.console.web import Page, url
from strata.protocol.http import HttpResponse

_SCHEMES = {"postgres": "postgresql", "aurora-postgresql": "postgresql"}


def connection_string(engine: str, user: str, host: str, port: int, database: str | None) -> str:
    """What psql or mysql takes (the password is not part of it)."""
    scheme = _SCHEMES.get(engine, "mysql")
    default_db = "postgres" if scheme == "postgresql" else ""
    return f"{scheme}://{user}@{host}:{port}/{database or default_db}"


def _role(instance: dict) -> str:
    if instance.get("ReadReplicaSourceDBInstanceIdentifier"):
        return f"replica of {instance['ReadReplicaSourceDBInstanceIdentifier']}"
    if instance.get("DBClusterIdentifier"):
        return f"member of {instance['DBClusterIdentifier']}"
    replicas = instance.get("ReadReplicaDBInstanceIdentifiers") or []
    return f"primary ({len(replicas)} replica(s))" if replicas else "standalone"


async def databases(page: Page) -> HttpResponse:
    instances, clusters, snapshots = await asyncio.gather(
        page.call("rds", "describe_db_instances"),
        page.call("rds", "describe_db_clusters"),
        page.call("rds", "describe_db_snapshots"),
    )
    rows = []
    for d in instances.get("DBInstances", []):
        endpoint = d.get("Endpoint") or {}
        rows.append(
            {
                "d": d,
                "role": _role(d),
                "endpoint": f"{endpoint['Address']}:{endpoint['Port']}" if endpoint else "",
                "conn": connection_string(
                    d["Engine"],
                    d.get("MasterUsername", ""),
                    endpoint["Address"],
                    endpoint["Port"],
                    d.get("DBName"),
                )
                if endpoint
                else "",
            }
        )
    return page.render(
        "rds.html",
        title="RDS and Aurora",
        rows=rows,
        clusters=clusters.get("DBClusters", []),
        snapshots=snapshots.get("DBSnapshots", []),
    )


async def reboot(page: Page) -> HttpResponse:
    name = page.form.get("instance", "")
    failover = page.form.get("failover") == "1"
    return await page.act(
        "rds",
        "reboot_db_instance",
        f"Rebooting {name}" + (" with failover." if failover else "."),
        url("/rds"),
        DBInstanceIdentifier=name,
        **({"ForceFailover": True} if failover else {}),
    )


async def snapshot(page: Page) -> HttpResponse:
    name, snap = page.form.get("instance", ""), page.form.get("snapshot", "").strip()
    return await page.act(
        "rds",
        "create_db_snapshot",
        f"Creating snapshot {snap} of {name}.",
        url("/rds"),
        DBInstanceIdentifier=name,
        DBSnapshotIdentifier=snap,
    )


async def restore(page: Page) -> HttpResponse:
    """Restore to a point in time: the latest restorable time, or the one the form gives (UTC)."""
    name, target = page.form.get("instance", ""), page.form.get("target", "").strip()
    when = page.form.get("time", "").strip()
    params: dict[str, Any] = {"SourceDBInstanceIdentifier": name, "TargetDBInstanceIdentifier": target}
    if when:
        params["RestoreTime"] = when if when.endswith("Z") or "+" in when else when + "Z"
    else:
        params["UseLatestRestorableTime"] = True
    done = f"Restoring {name} to {when or 'its latest restorable time'} as {target}."
    return await page.act("rds", "restore_db_instance_to_point_in_time", done, url("/rds"), **params)


async def failover_cluster(page: Page) -> HttpResponse:
    name = page.form.get("cluster", "")
    done = f"Failing over cluster {name}."
    return await page.act("rds", "failover_db_cluster", done, url("/rds"), DBClusterIdentifier=name)


ROUTES = {
    ("GET", "/rds"): databases,
    ("POST", "/rds/reboot"): reboot,
    ("POST", "/rds/snapshot"): snapshot,
    ("POST", "/rds/restore"): restore,
    ("POST", "/rds/failover"): failover_cluster,
}
