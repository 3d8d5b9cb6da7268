"""RDS and Aurora: instances and clusters with status, endpoints (copyable connection strings),
replicas and snapshots; reboot (with failover), create a snapshot, restore to a point in time,
fail a cluster over. All through the RDS API as the signed-in identity."""

from __future__ import annotations

import asyncio
from typing import Any

from strata.console.aws import call
from strata.console.web import Page, url
from strata.protocol.http import HttpResponse

_SCHEMES = {"postgres": "postgresql", "aurora-postgresql": "postgresql"}


async def _rds(page: Page, op: str, **params: Any) -> Any:
    assert page.session is not None
    return await call(page.session, page.app.settings, "rds", op, page.request.secure, **params)


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
        _rds(page, "describe_db_instances"),
        _rds(page, "describe_db_clusters"),
        _rds(page, "describe_db_snapshots"),
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
    await _rds(
        page, "reboot_db_instance", DBInstanceIdentifier=name, **({"ForceFailover": True} if failover else {})
    )
    page.say("ok", f"Rebooting {name}" + (" with failover." if failover else "."))
    return page.redirect(url("/rds"))


async def snapshot(page: Page) -> HttpResponse:
    name, snap = page.form.get("instance", ""), page.form.get("snapshot", "").strip()
    await _rds(page, "create_db_snapshot", DBInstanceIdentifier=name, DBSnapshotIdentifier=snap)
    page.say("ok", f"Creating snapshot {snap} of {name}.")
    return page.redirect(url("/rds"))


async def restore(page: Page) -> HttpResponse:
    """Restore to a point in time: the latest restorable time, or the one the form gives (UTC)."""
    name, target = page.form.get("instance", ""), page.form.get("target", "").strip()
    when = page.form.get("time", "").strip()
    params: dict[str, Any] = {"SourceDBInstanceIdentifier": name, "TargetDBInstanceIdentifier": target}
    if when:
        params["RestoreTime"] = when if when.endswith("Z") or "+" in when else when + "Z"
    else:
        params["UseLatestRestorableTime"] = True
    await _rds(page, "restore_db_instance_to_point_in_time", **params)
    page.say("ok", f"Restoring {name} to {when or 'its latest restorable time'} as {target}.")
    return page.redirect(url("/rds"))


async def failover_cluster(page: Page) -> HttpResponse:
    name = page.form.get("cluster", "")
    await _rds(page, "failover_db_cluster", DBClusterIdentifier=name)
    page.say("ok", f"Failing over cluster {name}.")
    return page.redirect(url("/rds"))


ROUTES = {
    ("GET", "/rds"): databases,
    ("POST", "/rds/reboot"): reboot,
    ("POST", "/rds/snapshot"): snapshot,
    ("POST", "/rds/restore"): restore,
    ("POST", "/rds/failover"): failover_cluster,
}
