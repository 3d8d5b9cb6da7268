"""IAM (query protocol): who exists in an account and what they may do.

identities.py  users, groups, roles: CRUD, membership, tags, inline policies, attachments,
               permissions boundaries
policies.py    customer managed policies and versions; AWS-managed policies (read-only data)
keys.py        access keys (two per user, Active/Inactive)
simulate.py    SimulatePrincipalPolicy/SimulateCustomPolicy, GetAccountAuthorizationDetails
account.py     the account password policy, instance profiles, tags on managed policies
service_roles.py  service-linked roles
core.py        lookups with IAM's errors, rendering, paging

State is the server's identity directory (strata.auth.directory), the same one every request is
authorized against: a change here takes effect on the next request.
"""

from __future__ import annotations

from strata.services.iam.account import AccountOperations
from strata.services.iam.identities import IdentityOperations
from strata.services.iam.keys import AccessKeyOperations
from strata.services.iam.policies import PolicyOperations
from strata.services.iam.service_roles import ServiceRoleOperations
from strata.services.iam.simulate import SimulationOperations
from strata.services.parameters import refusing


@refusing("iam")
class IAMProvider(
    IdentityOperations,
    PolicyOperations,
    AccessKeyOperations,
    SimulationOperations,
    AccountOperations,
    ServiceRoleOperations,
):
    """Constructed once per server as `IAMProvider(runtime)`."""
