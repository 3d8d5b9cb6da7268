"""RDS and Aurora: instances and clusters with status, endpoints (copyable connection strings),
replicas and snapshots; create an instance, or an Aurora cluster with its writer (and readers);
reboot (with failover), create a snapshot, restore to a point in time, fail a cluster over. All
through the RDS API as the signed-in identity."""

from __future__ import annotations

import asyncio
from typing import Any

from strata.console.aws import AwsError
from strata.console.web import Page, form_int, url
from strata.protocol.http import HttpResponse
from strata.services.rds.model import ENGINES, INSTANCE_CLASSES

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
        engines=[e for e, info in ENGINES.items() if not info.aurora],
        aurora_engines=[e for e, info in ENGINES.items() if info.aurora],
        classes=INSTANCE_CLASSES,
    )


def _optional(form: dict[str, str], **fields: str) -> dict[str, str]:
    """{parameter: the form's value} for the named form fields that are filled in."""
    return {param: form[f].strip() for param, f in fields.items() if form.get(f, "").strip()}


async def create_instance(page: Page) -> HttpResponse:
    """CreateDBInstance from the form (engine, class, storage, master user, optional database)."""
    form = page.form
    name = form.get("instance", "").strip()
    params: dict[str, Any] = {
        "DBInstanceIdentifier": name,
        "Engine": form.get("engine", ""),
        "DBInstanceClass": form.get("class", ""),
        "MasterUsername": form.get("user", "").strip(),
        "MasterUserPassword": form.get("password", ""),
        "AllocatedStorage": form_int(form, "storage", "Allocated storage", 20),
        "MultiAZ": form.get("multi_az") == "1",
        "StorageEncrypted": form.get("encrypted") == "1",
        **_optional(form, DBName="database", EngineVersion="version"),
    }
    retention = form_int(form, "retention", "Backup retention")
    if retention is not None:
        params["BackupRetentionPeriod"] = retention
    done = f"Creating DB instance {name}."
    return await page.act("rds", "create_db_instance", done, url("/rds"), **params)


async def create_cluster(page: Page) -> HttpResponse:
    """CreateDBCluster, then its writer instance and any readers (as AWS's console does: a
    cluster without instances has no engine to connect to)."""
    form = page.form
    name = form.get("cluster", "").strip()
    engine = form.get("engine", "")
    readers = form_int(form, "readers", "Readers", 0)
    await page.call(
        "rds",
        "create_db_cluster",
        DBClusterIdentifier=name,
        Engine=engine,
        MasterUsername=form.get("user", "").strip(),
        MasterUserPassword=form.get("password", ""),
        StorageEncrypted=form.get("encrypted") == "1",
        **_optional(form, DatabaseName="database", EngineVersion="version"),
    )
    members = [f"{name}-instance-{i}" for i in range(1, readers + 2)]
    for member in members:  # the first one created is the writer
        try:
            await page.call(
                "rds",
                "create_db_instance",
                DBInstanceIdentifier=member,
                DBClusterIdentifier=name,
                Engine=engine,
                DBInstanceClass=form.get("class", ""),
            )
        except AwsError as e:
            raise AwsError(
                e.code, f"Created cluster {name}, but not its instance {member}: {e.message}", e.status
            ) from None
    page.say("ok", f"Creating Aurora cluster {name} with {', '.join(members)}.")
    return page.redirect(url("/rds"))


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
    ("POST", "/rds/create"): create_instance,
    ("POST", "/rds/create-cluster"): create_cluster,
    ("POST", "/rds/reboot"): reboot,
    ("POST", "/rds/snapshot"): snapshot,
    ("POST", "/rds/restore"): restore,
    ("POST", "/rds/failover"): failover_cluster,
}
