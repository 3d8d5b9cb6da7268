"""EBS and EFS: volumes and snapshots (EC2 API), file systems and their mount targets (EFS API)."""

from __future__ import annotations

import asyncio

from strata.console.web import Page
from strata.protocol.http import HttpResponse


async def volumes(page: Page) -> HttpResponse:
    listed, snapshots = await asyncio.gather(
        page.call("ec2", "describe_volumes", MaxResults=500),
        page.call("ec2", "describe_snapshots", OwnerIds=["self"], MaxResults=500),
    )
    return page.render(
        "ebs.html", title="EBS", volumes=listed.get("Volumes", []), snapshots=snapshots.get("Snapshots", [])
    )


async def file_systems(page: Page) -> HttpResponse:
    listed = (await page.call("efs", "describe_file_systems")).get("FileSystems", [])
    targets = await asyncio.gather(
        *(page.call("efs", "describe_mount_targets", FileSystemId=fs["FileSystemId"]) for fs in listed)
    )
    rows = [{"fs": fs, "targets": t.get("MountTargets", [])} for fs, t in zip(listed, targets, strict=True)]
    return page.render("efs.html", title="EFS", rows=rows)


ROUTES = {
    ("GET", "/ebs"): volumes,
    ("GET", "/efs"): file_systems,
}
