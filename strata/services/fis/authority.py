"""The experiment role's authority: FIS acts as the template's role.

- When an experiment starts, FIS assumes the role: the role must exist and its trust policy must
  let the service principal fis.amazonaws.com call sts:AssumeRole, with the request's
  aws:SourceAccount (the experiment's account) and aws:SourceArn (the experiment's ARN), which
  AWS's recommended trust policy conditions on. Otherwise the experiment fails (check_trust).
- An action runs only if the role's policies (identity policies and permissions boundary, judged
  by the same evaluator as every request) allow each permission AWS's action reference lists for
  that action, on each target resource. A denied permission fails the action with AWS's
  AccessDenied wording (check_role).
"""

from __future__ import annotations

from strata.auth.directory import directory_for
from strata.auth.evaluator import Facts, evaluate
from strata.auth.principal import Principal
from strata.auth.service_principals import service_refused
from strata.config import Settings
from strata.sim.clock import clock

# action id -> (permission(s) on each target resource, permissions on "*"), from AWS's action
# reference (Strata's own replica-lag actions change the replica as ModifyDBInstance and
# ModifyReplicationGroup do).
PERMISSIONS: dict[str, tuple[str | tuple[str, ...] | None, tuple[str, ...]]] = {
    "aws:fis:wait": (None, ()),
    "aws:fis:inject-api-internal-error": (None, ("fis:InjectApiInternalError",)),
    "aws:fis:inject-api-throttle-error": (None, ("fis:InjectApiThrottleError",)),
    "aws:fis:inject-api-unavailable-error": (None, ("fis:InjectApiUnavailableError",)),
    "aws:rds:reboot-db-instances": ("rds:RebootDBInstance", ("rds:DescribeDBInstances",)),
    "aws:rds:failover-db-cluster": ("rds:FailoverDBCluster", ("rds:DescribeDBClusters",)),
    "aws:elasticache:replicationgroup-interrupt-az-power": (
        "elasticache:InterruptClusterAzPower",
        ("elasticache:DescribeReplicationGroups",),
    ),
    "aws:ebs:pause-volume-io": ("ec2:PauseVolumeIO", ("ec2:DescribeVolumes",)),
    "aws:dynamodb:global-table-pause-replication": (
        (
            "dynamodb:PutResourcePolicy",
            "dynamodb:DeleteResourcePolicy",
            "dynamodb:GetResourcePolicy",
            "dynamodb:DescribeTable",
        ),
        (),
    ),
    "aws:network:disrupt-connectivity": (
        None,
        (
            "ec2:CreateNetworkAcl",
            "ec2:CreateNetworkAclEntry",
            "ec2:CreateTags",
            "ec2:DeleteNetworkAcl",
            "ec2:DescribeManagedPrefixLists",
            "ec2:DescribeNetworkAcls",
            "ec2:DescribeSubnets",
            "ec2:DescribeVpcs",
            "ec2:GetManagedPrefixListEntries",
            "ec2:ReplaceNetworkAclAssociation",
        ),
    ),
    "strata:rds:replica-lag": ("rds:ModifyDBInstance", ("rds:DescribeDBInstances",)),
    "strata:elasticache:replica-lag": (
        "elasticache:ModifyReplicationGroup",
        ("elasticache:DescribeReplicationGroups",),
    ),
    # the disk-full actions take a resource's storage, as ModifyDBInstance and UpdateFileSystem
    # change it
    "strata:rds:disk-full": ("rds:ModifyDBInstance", ("rds:DescribeDBInstances",)),
    "strata:efs:disk-full": (
        "elasticfilesystem:UpdateFileSystem",
        ("elasticfilesystem:DescribeFileSystems",),
    ),
}
TAG_LOOKUP = "tag:GetResources"  # needed where a target is found by its tags


SERVICE_PRINCIPAL = "fis.amazonaws.com"


class RoleDenied(Exception):
    """The experiment's role may not do what the action needs; the message is AWS's."""


def _role(settings: Settings, role_arn: str) -> dict | None:
    """The role an ARN names (its path included), or None."""
    account, name = role_arn.split(":")[4], role_arn.rsplit("/", 1)[-1]
    role = directory_for(settings).find("role", account, name)
    return role if role is not None and role["Arn"] == role_arn else None


def check_trust(settings: Settings, role_arn: str, region: str, account: str, experiment_arn: str) -> None:
    """Raise RoleDenied unless FIS may assume the role for this experiment: the role exists and its
    trust policy allows fis.amazonaws.com sts:AssumeRole (Deny statements and conditions on
    aws:SourceAccount/aws:SourceArn included)."""
    role = _role(settings, role_arn)
    if role is None:
        raise RoleDenied(f"Unable to assume the role {role_arn}: the role does not exist.")
    # The trust policy alone decides (the role counts as another account's resource).
    refused = service_refused(
        SERVICE_PRINCIPAL,
        [("sts:AssumeRole", role_arn)],
        role["trust"],
        "trust",
        region=region,
        source_account=account,
        source_arn=experiment_arn,
    )
    if refused is not None:
        raise RoleDenied(
            f"Unable to assume the role {role_arn}: its trust policy does not allow "
            f"{SERVICE_PRINCIPAL} to perform sts:AssumeRole for experiment {experiment_arn}."
        )


def check_role(
    settings: Settings, role_arn: str, region: str, action_id: str, resources: list[str], by_tags: bool
) -> None:
    """Raise RoleDenied unless the role exists and may carry out `action_id` on `resources`."""
    on_target, general = PERMISSIONS[action_id]
    per_target = (on_target,) if isinstance(on_target, str) else on_target or ()
    needed = [(p, "*") for p in general] + [(p, r) for r in resources for p in per_target]
    if by_tags:
        needed.append((TAG_LOOKUP, "*"))
    if not needed:
        return
    directory = directory_for(settings)
    account, name = role_arn.split(":")[4], role_arn.rsplit("/", 1)[-1]
    if _role(settings, role_arn) is None:
        raise RoleDenied(f"Unable to assume the role {role_arn}: the role does not exist.")
    principal = Principal(
        access_key="",
        account_id=account,
        arn=f"arn:aws:sts::{account}:assumed-role/{name}/fis",
        kind="assumed-role",
        name=name,
        role_arn=role_arn,
        unrestricted=False,
    )
    policies, _ = directory.policy_set(principal)
    facts = Facts(principal, region, "", True, clock.time, {})
    for action, resource in needed:
        decision = evaluate(principal, action, resource, facts, policies)
        if not decision.allowed:
            raise RoleDenied(decision.message(principal.arn, action, resource))
