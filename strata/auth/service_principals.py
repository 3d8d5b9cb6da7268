"""What an AWS service principal (logging.s3.amazonaws.com, fis.amazonaws.com, ...) may do to a
customer's resource when Strata acts as that service: decided by the resource's policy alone.

AWS services writing to a customer's bucket or assuming a customer's role are allowed only by the
customer's resource policy (a bucket policy, a role's trust policy), with the confused-deputy
condition keys set as the service sets them: aws:SourceAccount and aws:SourceArn name the
customer's resource the service acts for. The identity side is the service's own (unrestricted),
and the resource counts as another account's, so only the resource policy can allow.
"""

from __future__ import annotations

from strata.auth.evaluator import Facts, PolicySet, evaluate
from strata.auth.policy import compile_policy
from strata.auth.principal import Principal
from strata.sim.clock import clock


def service_refused(
    service: str,
    actions: list[tuple[str, str]],
    policy_text: str | None,
    kind: str,
    *,
    region: str,
    source_account: str,
    source_arn: str,
) -> tuple[str, str] | None:
    """The first (action, resource) of `actions` that the policy (`kind`: "resource" or "trust")
    does not allow `service` to do, or None when it allows them all."""
    principal = Principal(
        access_key="", account_id="", arn=service, kind="service", name=service, unrestricted=False
    )
    facts = Facts(
        principal,
        region,
        "",
        True,
        clock.time,
        {
            "aws:sourceaccount": source_account,
            "aws:sourcearn": source_arn,
            "aws:principalservicename": service,
            "aws:principalisawsservice": True,
        },
    )
    policy = compile_policy(policy_text, kind) if policy_text else None
    for action, resource in actions:
        if not evaluate(
            principal, action, resource, facts, PolicySet(unrestricted=True), policy, "-"
        ).allowed:
            return action, resource
    return None
