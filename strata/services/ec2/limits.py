"""EBS facts in one place: the volume type table, ids, errors, and the checks CreateVolume and
ModifyVolume share.

The table is AWS's (and the course's): sizes in GiB, IOPS and throughput (MiB/s) ranges, the
most IOPS per GiB and MiB/s per IOPS. Messages follow the ones AWS returns ("Iops to volume size
ratio of 750.000000 is too high; maximum is 500").
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from strata.protocol.errors import ServiceError

BLOCK_SIZE = 512 * 1024  # the EBS direct APIs' block size, and the store's
GIB = 1024**3
# AWS (since January 2026): a volume may be modified up to 4 times in a rolling 24 hours, each
# once the one before it has completed (it was one modification per 6 hours before).
MODIFICATIONS_PER_WINDOW = 4
MODIFICATION_WINDOW = 24 * 3600.0
MULTI_ATTACH_MAX = 16  # instances one io1/io2 volume with Multi-Attach may be attached to


@dataclass(frozen=True)
class VolumeType:
    name: str
    min_size: int
    max_size: int
    iops: tuple[int, int] | None = None  # provisionable IOPS range, None when not provisionable
    iops_per_gib: int = 0
    throughput: tuple[int, int] | None = None  # provisionable MiB/s range
    throughput_per_iops: float = 0.0
    bootable: bool = True
    multi_attach: bool = False
    default_iops: int | None = None
    default_throughput: int | None = None


TYPES: dict[str, VolumeType] = {
    t.name: t
    for t in [
        VolumeType(
            "gp3", 1, 16384, (3000, 16000), 500, (125, 1000), 0.25, default_iops=3000, default_throughput=125
        ),
        VolumeType("gp2", 1, 16384),
        VolumeType("io1", 4, 16384, (100, 64000), 50, multi_attach=True),
        VolumeType("io2", 4, 65536, (100, 256000), 1000, multi_attach=True),
        VolumeType("st1", 125, 16384, bootable=False),
        VolumeType("sc1", 125, 16384, bootable=False),
        VolumeType("standard", 1, 1024),
    ]
}


def gp2_iops(size: int) -> int:
    """gp2's baseline: 3 IOPS per GiB, at least 100, at most 16,000 (bursts to 3,000 on credits)."""
    return max(100, min(16000, 3 * size))


def fault(code: str, message: str, status: int = 400) -> ServiceError:
    return ServiceError(code, message, status)


def missing(name: str) -> ServiceError:
    return fault("MissingParameter", f"The request must contain the parameter {name}")


def invalid(message: str) -> ServiceError:
    return fault("InvalidParameterValue", message)


def combination(message: str) -> ServiceError:
    return fault("InvalidParameterCombination", message)


def dry_run() -> ServiceError:
    return fault("DryRunOperation", "Request would have succeeded, but DryRun flag is set.", 412)


_ID = {
    "vol": re.compile(r"^vol-[0-9a-f]{8}([0-9a-f]{9})?$"),
    "snap": re.compile(r"^snap-[0-9a-f]{8}([0-9a-f]{9})?$"),
}
_MALFORMED = {"vol": "InvalidVolumeID.Malformed", "snap": "InvalidSnapshotID.Malformed"}


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:17]}"


def check_id(prefix: str, value: str | None) -> str:
    if not value or not _ID[prefix].match(value):
        raise fault(_MALFORMED[prefix], f'Invalid id: "{value}" (expecting "{prefix}-...")')
    return value


def volume_not_found(volume_id: str) -> ServiceError:
    return fault("InvalidVolume.NotFound", f"The volume '{volume_id}' does not exist.")


def snapshot_not_found(snapshot_id: str) -> ServiceError:
    return fault("InvalidSnapshot.NotFound", f"The snapshot '{snapshot_id}' does not exist.")


def volume_type(name: str | None) -> VolumeType:
    name = name or "gp2"
    if name not in TYPES:
        raise invalid(
            f"Value ({name}) for parameter volumeType is invalid. "
            "Valid types: standard, io1, io2, gp2, sc1, st1, gp3"
        )
    return TYPES[name]


def check_performance(
    kind: VolumeType, size: int, iops: int | None, throughput: int | None, multi_attach: bool = False
) -> tuple[int | None, int | None]:
    """The (iops, throughput) a volume of `kind` and `size` gets, or AWS's error for the request."""
    if size < kind.min_size:
        raise invalid(f"Volume of {size}GiB is too small; minimum is {kind.min_size}GiB.")
    if size > kind.max_size:
        raise invalid(f"Volume of {size}GiB is too large; maximum is {kind.max_size}GiB.")
    if multi_attach and not kind.multi_attach:
        raise combination(
            f"The parameter multiAttachEnabled is not supported for {kind.name} volumes. "
            "Multi-Attach is supported only for io1 and io2 volumes."
        )
    if iops is not None and kind.iops is None:
        raise combination(f"The parameter iops is not supported for {kind.name} volumes.")
    if throughput is not None and kind.throughput is None:
        raise combination(f"The parameter throughput is not supported for {kind.name} volumes.")
    if kind.iops is None:
        return (gp2_iops(size) if kind.name == "gp2" else None), None
    if iops is None:
        if kind.default_iops is None:
            raise missing("iops")
        iops = kind.default_iops
    low, high = kind.iops
    if iops < low:
        raise invalid(f"Volume iops of {iops} is too low; minimum is {low}.")
    if iops > high:
        raise invalid(f"Volume iops of {iops} is too high; maximum is {high}.")
    if iops > size * kind.iops_per_gib and iops > (kind.default_iops or 0):
        raise invalid(
            f"Iops to volume size ratio of {iops / size:.6f} is too high; maximum is {kind.iops_per_gib}"
        )
    if kind.throughput is None:
        return iops, None
    throughput = kind.default_throughput if throughput is None else throughput
    assert throughput is not None
    low, high = kind.throughput
    if throughput < low:
        raise invalid(f"Throughput of {throughput} MiB/s is too low; minimum is {low} MiB/s.")
    if throughput > high:
        raise invalid(f"Throughput of {throughput} MiB/s is too high; maximum is {high} MiB/s.")
    if throughput > iops * kind.throughput_per_iops:
        raise invalid(
            f"Throughput (MiBps) to iops ratio of {throughput / iops:.6f} is too high; "
            f"maximum is {kind.throughput_per_iops:.6f} MiBps per iops"
        )
    return iops, throughput
