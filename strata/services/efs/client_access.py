"""What a file system policy lets NFS clients do, turned into export options.

AWS evaluates a file system policy for every NFS client; a client that does not use IAM
authorization (Strata's clients never do: there is no efs-utils TLS tunnel here) is the anonymous
principal, so only statements whose Principal is "*" (or {"AWS": "*"}) can grant it anything, and
`aws:SecureTransport` is false. The three client actions map onto ganesha's export options:

    elasticfilesystem:ClientMount       not allowed -> Access_Type = None (mounting fails)
    elasticfilesystem:ClientWrite       not allowed -> Access_Type = RO
    elasticfilesystem:ClientRootAccess  not allowed -> Root_Squash (uid 0 becomes anonymous)

With no policy every client has all three, as on AWS. An explicit Deny wins over any Allow.
`elasticfilesystem:AccessPointArn` is known in conditions for an access point's export.
"""

from __future__ import annotations

from dataclasses import dataclass

from strata.auth.evaluator import Facts, statement_applies
from strata.auth.policy import PolicyError, compile_policy
from strata.auth.principal import Principal
from strata.sim.clock import clock

ACTIONS = (
    "elasticfilesystem:clientmount",
    "elasticfilesystem:clientwrite",
    "elasticfilesystem:clientrootaccess",
)
_ANONYMOUS = Principal(access_key="", account_id="", arn="anonymous", kind="anonymous", unrestricted=False)


@dataclass(frozen=True)
class ClientAccess:
    mount: bool = True
    write: bool = True
    root: bool = True


FULL = ClientAccess()


def client_access(
    policy: str | None, fs_arn: str, region: str, access_point_arn: str | None = None
) -> ClientAccess:
    """What an anonymous NFS client may do on the file system (through the access point)."""
    if not policy:
        return FULL
    try:
        compiled = compile_policy(policy, "resource")
    except PolicyError:
        return ClientAccess(False, False, False)  # never stored (PutFileSystemPolicy checks it)
    extra = {"elasticfilesystem:accesspointarn": access_point_arn} if access_point_arn else {}
    facts = Facts(_ANONYMOUS, region, "", False, clock.time, extra)
    allowed = []
    for action in ACTIONS:
        allow = False
        deny = False
        for s in compiled.statements:
            if statement_applies(s, action, fs_arn, facts, _ANONYMOUS) is None:
                continue
            if s.allow:
                allow = True
            else:
                deny = True
        allowed.append(allow and not deny)
    return ClientAccess(*allowed)
