"""The FIS actions and target resource types Strata performs, with AWS's ids, parameters and
target keys, and the ISO 8601 durations actions take.

Only actions Strata really carries out are listed: ListActions, GetAction and template
validation all read this one table. Where AWS limits the API fault actions to EC2, Strata offers
them for every service it serves. Durations may be shorter than AWS's one-minute minimum (a test
of a retry loop should not wait a minute); the 12-hour maximum holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from strata.protocol.errors import ServiceError

MAX_DURATION_SECONDS = 12 * 3600  # AWS: an action runs for at most 12 hours
# aws:network:disrupt-connectivity scopes Strata applies (AWS's s3express and vpc are not: Strata has
# no S3 Express, and its clients' traffic never leaves a VPC)
SCOPES = ("all", "availability-zone", "dynamodb", "prefix-list", "s3")


@dataclass(frozen=True)
class ActionSpec:
    id: str
    description: str
    parameters: dict[str, tuple[str, bool]] = field(default_factory=dict)  # name -> (doc, required)
    target: tuple[str, str] | None = None  # (target key, resource type)


def _api_fault(kind: str, what: str) -> ActionSpec:
    return ActionSpec(
        f"aws:fis:inject-api-{kind}-error",
        f"Inject {what} errors on the requests made by the target IAM roles.",
        {
            "service": ("The target AWS service (any service Strata serves, e.g. dynamodb).", True),
            "operations": ("A comma-separated list of the operations to inject the fault into.", True),
            "percentage": ("The percentage (1-100) of requests to fail.", True),
            "duration": ("The duration, from one minute to 12 hours (ISO 8601).", True),
        },
        ("Roles", "aws:iam:role"),
    )


ACTIONS: dict[str, ActionSpec] = {
    a.id: a
    for a in [
        ActionSpec(
            "aws:fis:wait",
            "Run the FIS wait action.",
            {"duration": ("The duration, from one minute to 12 hours (ISO 8601).", True)},
        ),
        _api_fault("throttle", "throttle"),
        _api_fault("internal", "internal"),
        _api_fault("unavailable", "unavailable"),
        ActionSpec(
            "aws:rds:reboot-db-instances",
            "Reboot the specified Amazon RDS DB instances.",
            {"forceFailover": ("If true, and the instances are Multi-AZ, forces failover.", False)},
            ("DBInstances", "aws:rds:db"),
        ),
        ActionSpec(
            "aws:rds:failover-db-cluster",
            "Failover the specified Amazon Aurora DB cluster.",
            target=("Clusters", "aws:rds:cluster"),
        ),
        ActionSpec(
            "aws:elasticache:replicationgroup-interrupt-az-power",
            "Interrupts power to the nodes of the target ElastiCache replication groups in the "
            "target's Availability Zone; a primary there fails over to the replica with the least lag.",
            {"duration": ("The duration, from one minute to 12 hours (ISO 8601).", True)},
            ("ReplicationGroups", "aws:elasticache:replicationgroup"),
        ),
        ActionSpec(
            "aws:dynamodb:global-table-pause-replication",
            "Pauses Amazon DynamoDB global table replication to and from the target replica tables; "
            "their changes and the other replicas' wait and are replicated when the action ends.",
            {"duration": ("The duration, up to 12 hours (ISO 8601).", True)},
            ("Tables", "aws:dynamodb:global-table"),
        ),
        ActionSpec(
            "aws:ebs:pause-volume-io",
            "Pauses I/O operations on the target EBS volumes.",
            {"duration": ("The duration, from one second to 12 hours (ISO 8601).", True)},
            ("Volumes", "aws:ec2:ebs-volume"),
        ),
        ActionSpec(
            "aws:network:disrupt-connectivity",
            "Denies the traffic the scope names to the Strata endpoints served in the target subnets' "
            "Availability Zones.",
            {
                "duration": ("The duration, from one minute to 12 hours (ISO 8601).", True),
                "scope": (
                    "The type of traffic to deny: all (the endpoints served in the subnets' zones), "
                    "availability-zone (the same endpoints: Strata's clients count as in another zone "
                    "of the VPC; EBS volumes go on), prefix-list (the same endpoints, for clients whose "
                    "address is in the prefix list), dynamodb or s3 (the service's endpoint stops "
                    "answering, for every client: Strata cannot tell a client's subnet).",
                    False,
                ),
                "prefixListIdentifier": (
                    "If the scope is prefix-list, the customer-managed prefix list: its name, ID or ARN "
                    "(at most 10 entries).",
                    False,
                ),
            },
            ("Subnets", "aws:ec2:subnet"),
        ),
        # Strata's own actions (not on AWS): faults AWS cannot make on demand.
        ActionSpec(
            "strata:rds:replica-lag",
            "Holds the target read replicas (or Aurora readers) lagSeconds behind their source: the "
            "engine applies each commit that long after it was made (PostgreSQL "
            "recovery_min_apply_delay, MariaDB/MySQL MASTER_DELAY).",
            {
                "duration": ("The duration, up to 12 hours (ISO 8601).", True),
                "lagSeconds": ("The replication lag to hold, in seconds (1-3600).", True),
            },
            ("DBInstances", "aws:rds:db"),
        ),
        ActionSpec(
            "strata:elasticache:replica-lag",
            "Holds the replicas of the target ElastiCache replication groups (without cluster mode) in "
            "the target's Availability Zone lagSeconds behind their primary: each receives the "
            "primary's replication stream that long after it was sent.",
            {
                "duration": ("The duration, up to 12 hours (ISO 8601).", True),
                "lagSeconds": ("The replication lag to hold, in seconds (1-3600).", True),
            },
            ("ReplicationGroups", "aws:elasticache:replicationgroup"),
        ),
        ActionSpec(
            "strata:rds:disk-full",
            "Fills the storage of the target encrypted DB instances (StorageEncrypted) for the "
            "duration: every free block of the instance's own volume is taken, so the engine gets "
            "ENOSPC on its next write that needs space (space it frees is taken again); the space "
            "comes back when the action ends.",
            {"duration": ("The duration, up to 12 hours (ISO 8601).", True)},
            ("DBInstances", "aws:rds:db"),
        ),
        ActionSpec(
            "strata:efs:disk-full",
            "Fills the storage of the target encrypted EFS file systems (Encrypted) for the duration: "
            "every free block of the file system's own volume is taken, so NFS clients' writes that "
            "need space fail with NFS4ERR_NOSPC (space freed is taken again); the space comes back "
            "when the action ends.",
            {"duration": ("The duration, up to 12 hours (ISO 8601).", True)},
            ("FileSystems", "aws:elasticfilesystem:file-system"),
        ),
    ]
}

TARGET_TYPES: dict[str, str] = {
    "aws:iam:role": "IAM roles.",
    "aws:rds:db": "Amazon RDS DB instances.",
    "aws:rds:cluster": "Amazon Aurora DB clusters.",
    "aws:elasticache:replicationgroup": "Amazon ElastiCache replication groups.",
    "aws:ec2:ebs-volume": "Amazon EBS volumes.",
    "aws:dynamodb:global-table": "Amazon DynamoDB global tables (their replicas in the experiment's Region).",
    "aws:ec2:subnet": "Amazon VPC subnets.",
    # not an AWS FIS resource type: the target of Strata's own strata:efs:disk-full
    "aws:elasticfilesystem:file-system": "Amazon EFS file systems.",
}

_ZONE = "The Availability Zone (for example us-east-1a) or Availability Zone ID (for example use1-az1)"
# resource type -> target parameter -> (description, required)
TARGET_PARAMETERS: dict[str, dict[str, tuple[str, bool]]] = {
    "aws:elasticache:replicationgroup": {
        "availabilityZoneIdentifier": (f"{_ZONE} of the nodes to impair.", True)
    },
    "aws:ec2:ebs-volume": {"availabilityZoneIdentifier": (f"{_ZONE} of the volumes.", False)},
}

_DURATION = re.compile(r"^PT(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?$")


def duration_seconds(text: str) -> float:
    """Seconds in an ISO 8601 duration such as PT1M or PT30S (AWS's action duration format)."""
    m = _DURATION.match(text or "")
    if not m:
        raise ServiceError("ValidationException", f"Invalid duration: {text}", 400)
    hours, minutes, seconds = (float(g) if g else 0.0 for g in m.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0 or total > MAX_DURATION_SECONDS:
        raise ServiceError(
            "ValidationException", f"Duration {text} must be greater than 0 and at most PT12H", 400
        )
    return total
