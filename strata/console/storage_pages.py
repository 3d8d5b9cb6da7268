"""EBS and EFS: volumes and snapshots (EC2 API), file systems and their mount targets (EFS API);
create a volume (empty or from a snapshot) or a file system. All as the signed-in identity."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from strata.console.web import Page, form_int, url
from strata.protocol.http import HttpResponse
from strata.services.ec2.limits import TYPES
from strata.services.efs.limits import PERFORMANCE_MODES, THROUGHPUT_MODES


async def volumes(page: Page) -> HttpResponse:
    listed, snapshots, zones = await asyncio.gather(
        page.call("ec2", "describe_volumes", MaxResults=500),
        page.call("ec2", "describe_snapshots", OwnerIds=["self"], MaxResults=500),
        page.call("ec2", "describe_availability_zones"),
    )
    return page.render(
        "ebs.html",
        title="EBS",
        volumes=listed.get("Volumes", []),
        snapshots=snapshots.get("Snapshots", []),
        zones=[z["ZoneName"] for z in zones.get("AvailabilityZones", [])],
        types=list(TYPES),
    )


def _name_tag(resource: str, name: str) -> list[dict]:
    return [{"ResourceType": resource, "Tags": [{"Key": "Name", "Value": name}]}] if name else []


async def create_volume(page: Page) -> HttpResponse:
    """CreateVolume: size (or a snapshot's), type, IOPS and throughput where the type takes them,
    encryption with an optional KMS key, and a Name tag."""
    form = page.form
    params: dict[str, Any] = {
        "AvailabilityZone": form.get("zone", ""),
        "VolumeType": form.get("type", ""),
        "Encrypted": form.get("encrypted") == "1",
    }
    for param, field, what in (
        ("Size", "size", "Size"),
        ("Iops", "iops", "IOPS"),
        ("Throughput", "throughput", "Throughput"),
    ):
        value = form_int(form, field, what)
        if value is not None:
            params[param] = value
    for param, field in (("SnapshotId", "snapshot"), ("KmsKeyId", "kms_key")):
        if form.get(field, "").strip():
            params[param] = form[field].strip()
    tags = _name_tag("volume", form.get("name", "").strip())
    if tags:
        params["TagSpecifications"] = tags
    created = await page.call("ec2", "create_volume", **params)
    page.say("ok", f"Creating volume {created['VolumeId']} ({created['Size']} GiB {created['VolumeType']}).")
    return page.redirect(url("/ebs"))


async def file_systems(page: Page) -> HttpResponse:
    listed = (await page.call("efs", "describe_file_systems")).get("FileSystems", [])
    targets = await asyncio.gather(
        *(page.call("efs", "describe_mount_targets", FileSystemId=fs["FileSystemId"]) for fs in listed)
    )
    rows = [{"fs": fs, "targets": t.get("MountTargets", [])} for fs, t in zip(listed, targets, strict=True)]
    return page.render(
        "efs.html",
        title="EFS",
        rows=rows,
        token=f"console-{uuid.uuid4()}",
        performance_modes=PERFORMANCE_MODES,
        throughput_modes=THROUGHPUT_MODES,
    )


async def create_file_system(page: Page) -> HttpResponse:
    """CreateFileSystem with the creation token the form was rendered with (so a form sent twice
    makes one file system, and EFS says so the second time), the performance and throughput
    modes, encryption, and a Name tag."""
    form = page.form
    params: dict[str, Any] = {
        "CreationToken": form.get("token", ""),
        "PerformanceMode": form.get("performance", ""),
        "ThroughputMode": form.get("throughput_mode", ""),
        "Encrypted": form.get("encrypted") == "1",
    }
    provisioned = form_int(form, "provisioned", "Provisioned throughput")
    if provisioned is not None:
        params["ProvisionedThroughputInMibps"] = provisioned
    if form.get("kms_key", "").strip():
        params["KmsKeyId"] = form["kms_key"].strip()
    name = form.get("name", "").strip()
    if name:
        params["Tags"] = [{"Key": "Name", "Value": name}]
    created = await page.call("efs", "create_file_system", **params)
    page.say("ok", f"Creating file system {created['FileSystemId']}" + (f" ({name})." if name else "."))
    return page.redirect(url("/efs"))


ROUTES = {
    ("GET", "/ebs"): volumes,
    ("POST", "/ebs/create"): create_volume,
    ("GET", "/efs"): file_systems,
    ("POST", "/efs/create"): create_file_system,
}
