"""The policy evaluator on its own: AWS's evaluation logic, matching rules and every condition
operator. (Pure functions; the end-to-end tests through a real server are in test_iam_*.py.)"""

from __future__ import annotations

import json

import pytest

from strata.auth.conditions import PolicyError
from strata.auth.evaluator import Facts, PolicySet, evaluate
from strata.auth.policy import compile_policy
from strata.auth.principal import Principal

ACCOUNT = "123456789012"
OTHER = "222222222222"
NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z

ALICE = Principal(
    "AKIAALICE", ACCOUNT, f"arn:aws:iam::{ACCOUNT}:user/alice", "AIDAALICE", "user", "alice", "", False
)
SESSION = Principal(
    "ASIAX",
    ACCOUNT,
    f"arn:aws:sts::{ACCOUNT}:assumed-role/reader/sess",
    "AROAREADER:sess",
    "assumed-role",
    "sess",
    f"arn:aws:iam::{ACCOUNT}:role/reader",
    False,
    {"issued": NOW - 60},
)
ROOT = Principal("ROOTKEY", ACCOUNT, f"arn:aws:iam::{ACCOUNT}:root", ACCOUNT)
OTHER_USER = Principal(
    "AKIABOB", OTHER, f"arn:aws:iam::{OTHER}:user/bob", "AIDABOB", "user", "bob", "", False
)


def pol(*statements: dict, kind: str = "identity"):
    return compile_policy(json.dumps({"Version": "2012-10-17", "Statement": list(statements)}), kind)


def allow(action="*", resource="*", **kw) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **kw}


def deny(action="*", resource="*", **kw) -> dict:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **kw}


def facts(caller=ALICE, **extra) -> Facts:
    return Facts(
        caller,
        extra.pop("region", "us-east-1"),
        extra.pop("ip", "10.1.2.3"),
        extra.pop("secure", False),
        lambda: NOW,
        {k.lower(): v for k, v in extra.items()},
    )


def check(policies: PolicySet, action: str, resource: str = "*", caller=ALICE, **kw):
    rp = kw.pop("resource_policy", None)
    racct = kw.pop("resource_account", None)
    required = kw.pop("resource_required", False)
    return evaluate(caller, action, resource, facts(caller, **kw), policies, rp, racct, required)


def ids(*policies) -> PolicySet:
    return PolicySet(identity=tuple(policies))


def cond_allows(condition: dict, **kw) -> bool:
    return check(ids(pol(allow(Condition=condition))), "s3:GetObject", "arn:aws:s3:::b/k", **kw).allowed


# ---- the evaluation logic


def test_no_policy_is_an_implicit_deny_with_aws_message():
    d = check(ids(), "s3:PutObject", "arn:aws:s3:::bucket/key")
    assert not d.allowed
    assert d.message(ALICE.arn, "s3:PutObject", "arn:aws:s3:::bucket/key") == (
        "User: arn:aws:iam::123456789012:user/alice is not authorized to perform: s3:PutObject on resource: "
        "arn:aws:s3:::bucket/key because no identity-based policy allows the s3:PutObject action"
    )


def test_allow_then_explicit_deny_wins():
    p = ids(pol(allow("s3:*")), pol(deny("s3:DeleteObject", "arn:aws:s3:::b/*")))
    assert check(p, "s3:GetObject", "arn:aws:s3:::b/k").allowed
    d = check(p, "s3:DeleteObject", "arn:aws:s3:::b/k")
    assert not d.allowed and d.reason == "with an explicit deny in an identity-based policy"
    assert check(p, "s3:DeleteObject", "arn:aws:s3:::other/k").allowed


def test_root_is_unrestricted_but_not_cross_account():
    p = PolicySet(unrestricted=True)
    assert check(p, "iam:DeleteUser", caller=ROOT).allowed
    assert not check(p, "s3:GetObject", "arn:aws:s3:::b/k", caller=ROOT, resource_account=OTHER).allowed


def test_permissions_boundary_limits_and_its_deny_wins():
    p = PolicySet(identity=(pol(allow("*")),), boundary=pol(allow("s3:*"), deny("s3:DeleteBucket")))
    assert check(p, "s3:GetObject", "arn:aws:s3:::b/k").allowed
    d = check(p, "dynamodb:GetItem", "arn:aws:dynamodb:us-east-1:123456789012:table/t")
    assert d.reason == "because no permissions boundary allows the dynamodb:GetItem action"
    d = check(p, "s3:DeleteBucket", "arn:aws:s3:::b")
    assert d.reason == "with an explicit deny in a permissions boundary"
    # The boundary alone grants nothing.
    p = PolicySet(identity=(), boundary=pol(allow("*")))
    assert (
        check(p, "s3:GetObject").reason == "because no identity-based policy allows the s3:GetObject action"
    )


def test_session_policy_intersects():
    p = PolicySet(identity=(pol(allow("s3:*")),), session=(pol(allow("s3:GetObject")),))
    assert check(p, "s3:GetObject", caller=SESSION).allowed
    assert (
        check(p, "s3:PutObject", caller=SESSION).reason
        == "because no session policy allows the s3:PutObject action"
    )
    p = PolicySet(identity=(pol(allow("s3:*")),), session=(pol(deny("s3:GetObject")),))
    assert check(p, "s3:GetObject", caller=SESSION).reason == "with an explicit deny in a session policy"


def test_cross_account_needs_both_sides():
    resource = "arn:aws:s3:::theirs/k"
    grants_account = pol(
        {"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "s3:GetObject", "Resource": "*"},
        kind="resource",
    )
    grants_nobody = pol(
        {"Effect": "Allow", "Principal": {"AWS": "333333333333"}, "Action": "s3:GetObject", "Resource": "*"},
        kind="resource",
    )
    both = check(
        ids(pol(allow("s3:GetObject"))),
        "s3:GetObject",
        resource,
        resource_policy=grants_account,
        resource_account=OTHER,
    )
    assert both.allowed
    only_resource = check(
        ids(), "s3:GetObject", resource, resource_policy=grants_account, resource_account=OTHER
    )
    assert only_resource.reason == "because no identity-based policy allows the s3:GetObject action"
    only_identity = check(
        ids(pol(allow("s3:GetObject"))),
        "s3:GetObject",
        resource,
        resource_policy=grants_nobody,
        resource_account=OTHER,
    )
    assert only_identity.reason == "because no resource-based policy allows the s3:GetObject action"
    no_policy = check(ids(pol(allow("s3:GetObject"))), "s3:GetObject", resource, resource_account=OTHER)
    assert not no_policy.allowed


def test_same_account_resource_policy_naming_the_caller_grants_alone():
    direct = pol(
        {"Effect": "Allow", "Principal": {"AWS": ALICE.arn}, "Action": "s3:GetObject", "Resource": "*"},
        kind="resource",
    )
    account = pol(
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "s3:GetObject",
            "Resource": "*",
        },
        kind="resource",
    )
    assert check(ids(), "s3:GetObject", resource_policy=direct, resource_account=ACCOUNT).allowed
    # Naming the account delegates to the account's identity policies.
    assert not check(ids(), "s3:GetObject", resource_policy=account, resource_account=ACCOUNT).allowed
    assert check(
        ids(pol(allow("s3:*"))), "s3:GetObject", resource_policy=account, resource_account=ACCOUNT
    ).allowed


def test_resource_policy_deny_wins_even_for_root():
    p = pol({"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*"}, kind="resource")
    d = check(
        PolicySet(unrestricted=True), "s3:GetObject", caller=ROOT, resource_policy=p, resource_account=ACCOUNT
    )
    assert d.reason == "with an explicit deny in a resource-based policy"


def test_required_resource_policy_as_kms_key_policies():
    key_policy_for_account = pol(
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "kms:*",
            "Resource": "*",
        },
        kind="resource",
    )
    key_policy_for_bob = pol(
        {"Effect": "Allow", "Principal": {"AWS": OTHER_USER.arn}, "Action": "kms:*", "Resource": "*"},
        kind="resource",
    )
    admin = ids(pol(allow("*")))
    ok = check(
        admin,
        "kms:Decrypt",
        resource_policy=key_policy_for_account,
        resource_account=ACCOUNT,
        resource_required=True,
    )
    assert ok.allowed
    # The key policy does not name the account: identity policies count for nothing, root included.
    d = check(
        admin,
        "kms:Decrypt",
        resource_policy=key_policy_for_bob,
        resource_account=ACCOUNT,
        resource_required=True,
    )
    assert d.reason == "because no resource-based policy allows the kms:Decrypt action"
    root = check(
        PolicySet(unrestricted=True),
        "kms:Decrypt",
        caller=ROOT,
        resource_policy=key_policy_for_bob,
        resource_account=ACCOUNT,
        resource_required=True,
    )
    assert not root.allowed
    # Without the requirement (S3 semantics) the identity policy alone grants in-account.
    assert check(admin, "s3:GetObject", resource_policy=key_policy_for_bob, resource_account=ACCOUNT).allowed


def test_not_principal():
    p = pol(
        {"Effect": "Deny", "NotPrincipal": {"AWS": ALICE.arn}, "Action": "s3:*", "Resource": "*"},
        kind="resource",
    )
    everyone = ids(pol(allow("*")))
    assert check(everyone, "s3:GetObject", resource_policy=p, resource_account=ACCOUNT).allowed
    bob = Principal("K", ACCOUNT, f"arn:aws:iam::{ACCOUNT}:user/bob", "AIDAB", "user", "bob", "", False)
    assert not check(
        everyone, "s3:GetObject", caller=bob, resource_policy=p, resource_account=ACCOUNT
    ).allowed


def test_resource_policy_naming_the_role_still_leaves_session_policies_in_force():
    by_role = pol(
        {"Effect": "Allow", "Principal": {"AWS": SESSION.role_arn}, "Action": "s3:*", "Resource": "*"},
        kind="resource",
    )
    by_session = pol(
        {"Effect": "Allow", "Principal": {"AWS": SESSION.arn}, "Action": "s3:*", "Resource": "*"},
        kind="resource",
    )
    narrowed = PolicySet(session=(pol(allow("dynamodb:*")),))
    d = check(narrowed, "s3:GetObject", caller=SESSION, resource_policy=by_role, resource_account=ACCOUNT)
    assert d.reason == "because no session policy allows the s3:GetObject action"
    assert check(
        narrowed, "s3:GetObject", caller=SESSION, resource_policy=by_session, resource_account=ACCOUNT
    ).allowed


def test_role_arn_in_principal_matches_its_sessions():
    trust = pol(
        {"Effect": "Allow", "Principal": {"AWS": SESSION.role_arn}, "Action": "s3:*", "Resource": "*"},
        kind="resource",
    )
    assert check(
        ids(), "s3:GetObject", caller=SESSION, resource_policy=trust, resource_account=ACCOUNT
    ).allowed


# ---- Action / Resource matching


def test_action_wildcards_are_case_insensitive():
    p = ids(pol(allow(["s3:Get*", "dynamodb:?etItem"])))
    assert check(p, "s3:GetObject").allowed
    assert check(p, "S3:getobjecttagging").allowed
    assert check(p, "dynamodb:GetItem").allowed
    assert not check(p, "dynamodb:PutItem").allowed
    assert not check(p, "s3:PutObject").allowed


def test_not_action_and_not_resource():
    p = ids(pol({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}))
    assert check(p, "s3:GetObject").allowed
    assert not check(p, "iam:CreateUser").allowed
    p = ids(pol({"Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3:::secret/*"}))
    assert check(p, "s3:GetObject", "arn:aws:s3:::public/a").allowed
    assert not check(p, "s3:GetObject", "arn:aws:s3:::secret/a").allowed


def test_resource_wildcards_stay_within_arn_fields_and_are_case_sensitive():
    p = ids(pol(allow("*", "arn:aws:dynamodb:*:*:table/Orders*")))
    assert check(p, "dynamodb:GetItem", "arn:aws:dynamodb:us-east-1:123456789012:table/Orders").allowed
    assert check(
        p, "dynamodb:GetItem", "arn:aws:dynamodb:eu-west-1:123456789012:table/Orders/index/byDate"
    ).allowed
    assert not check(p, "dynamodb:GetItem", "arn:aws:dynamodb:us-east-1:123456789012:table/orders").allowed
    p = ids(pol(allow("*", "arn:aws:rds:us-east-1:*:db:prod-?")))
    assert check(p, "rds:DeleteDBInstance", "arn:aws:rds:us-east-1:123456789012:db:prod-1").allowed
    assert not check(p, "rds:DeleteDBInstance", "arn:aws:rds:us-east-1:123456789012:db:prod-12").allowed
    # `*` in the region field does not swallow the account field.
    p = ids(pol(allow("*", "arn:aws:rds:*:db:x")))
    assert not check(p, "rds:X", "arn:aws:rds:us-east-1:123456789012:db:x").allowed
    p = ids(pol(allow("*", "arn:aws:s3:::b/*")))
    assert check(p, "s3:GetObject", "arn:aws:s3:::b/dir/with:colon").allowed


def test_policy_variables_in_resources():
    p = ids(pol(allow("s3:*", "arn:aws:s3:::home/${aws:username}/*")))
    assert check(p, "s3:GetObject", "arn:aws:s3:::home/alice/x").allowed
    assert not check(p, "s3:GetObject", "arn:aws:s3:::home/bob/x").allowed
    # A session has no aws:username: the statement does not match (no default given).
    assert not check(p, "s3:GetObject", "arn:aws:s3:::home/alice/x", caller=SESSION).allowed
    p = ids(pol(allow("s3:*", "arn:aws:s3:::home/${aws:username, 'shared'}/*")))
    assert check(p, "s3:GetObject", "arn:aws:s3:::home/shared/x", caller=SESSION).allowed
    # ${*} is a literal asterisk.
    p = ids(pol(allow("s3:*", "arn:aws:s3:::b/${*}")))
    assert check(p, "s3:GetObject", "arn:aws:s3:::b/*").allowed
    assert not check(p, "s3:GetObject", "arn:aws:s3:::b/x").allowed


def test_policy_variables_need_version_2012_10_17():
    old = compile_policy(
        json.dumps(
            {
                "Version": "2008-10-17",
                "Statement": [allow("s3:*", "arn:aws:s3:::home/${aws:username}/*")],
            }
        )
    )
    assert not check(ids(old), "s3:GetObject", "arn:aws:s3:::home/alice/x").allowed
    assert check(ids(old), "s3:GetObject", "arn:aws:s3:::home/${aws:username}/x").allowed
    no_version = compile_policy(
        json.dumps(
            {"Statement": [allow("s3:*", Condition={"StringEquals": {"s3:prefix": "${aws:username}"}})]}
        )
    )
    assert not check(ids(no_version), "s3:ListBucket", **{"s3:prefix": "alice"}).allowed
    assert check(ids(no_version), "s3:ListBucket", **{"s3:prefix": "${aws:username}"}).allowed


# ---- conditions


def test_string_operators():
    assert cond_allows({"StringEquals": {"aws:username": "alice"}})
    assert not cond_allows({"StringEquals": {"aws:username": "Alice"}})
    assert cond_allows({"StringEqualsIgnoreCase": {"aws:username": "ALICE"}})
    assert cond_allows({"StringNotEquals": {"aws:username": ["bob", "carol"]}})
    assert not cond_allows({"StringNotEquals": {"aws:username": ["bob", "alice"]}})
    assert not cond_allows({"StringNotEqualsIgnoreCase": {"aws:username": "ALICE"}})
    assert cond_allows({"StringLike": {"s3:prefix": ["home/*", "pub?"]}}, **{"s3:prefix": "home/x/y"})
    assert cond_allows({"StringLike": {"s3:prefix": ["home/*", "pub?"]}}, **{"s3:prefix": "pubs"})
    assert not cond_allows({"StringLike": {"s3:prefix": "home/*"}}, **{"s3:prefix": "etc"})
    assert cond_allows({"StringNotLike": {"s3:prefix": "home/*"}}, **{"s3:prefix": "etc"})
    # Condition key names are case-insensitive.
    assert cond_allows({"StringEquals": {"AWS:UserName": "alice"}})


def test_policy_variable_in_condition_value():
    assert cond_allows(
        {"StringLike": {"s3:prefix": "home/${aws:username}/*"}}, **{"s3:prefix": "home/alice/a"}
    )
    assert not cond_allows(
        {"StringLike": {"s3:prefix": "home/${aws:username}/*"}}, **{"s3:prefix": "home/bob/a"}
    )


def test_missing_keys_positive_negated_ifexists_null():
    assert not cond_allows({"StringEquals": {"s3:prefix": "a"}})
    assert cond_allows({"StringNotEquals": {"s3:prefix": "a"}})  # negated: true when missing
    assert cond_allows({"StringEqualsIfExists": {"s3:prefix": "a"}})
    assert cond_allows({"StringEqualsIfExists": {"s3:prefix": "a"}}, **{"s3:prefix": "a"})
    assert not cond_allows({"StringEqualsIfExists": {"s3:prefix": "a"}}, **{"s3:prefix": "b"})
    assert cond_allows({"Null": {"s3:prefix": "true"}})
    assert not cond_allows({"Null": {"s3:prefix": "false"}})
    assert cond_allows({"Null": {"s3:prefix": "false"}}, **{"s3:prefix": "x"})
    assert cond_allows({"NumericLessThanIfExists": {"s3:max-keys": "10"}})


def test_numeric_operators():
    k = {"s3:max-keys": "5"}
    assert cond_allows({"NumericEquals": {"s3:max-keys": "5"}}, **k)
    assert cond_allows({"NumericNotEquals": {"s3:max-keys": "6"}}, **k)
    assert cond_allows({"NumericLessThan": {"s3:max-keys": "6"}}, **k)
    assert not cond_allows({"NumericLessThan": {"s3:max-keys": "5"}}, **k)
    assert cond_allows({"NumericLessThanEquals": {"s3:max-keys": "5"}}, **k)
    assert cond_allows({"NumericGreaterThan": {"s3:max-keys": 4}}, **k)
    assert cond_allows({"NumericGreaterThanEquals": {"s3:max-keys": "5.0"}}, **k)
    assert not cond_allows({"NumericGreaterThan": {"s3:max-keys": "5"}}, **k)
    assert not cond_allows({"NumericEquals": {"s3:max-keys": "5"}}, **{"s3:max-keys": "five"})


def test_date_operators_use_the_simulated_clock():
    assert cond_allows({"DateGreaterThan": {"aws:CurrentTime": "2027-01-01T00:00:00Z"}})
    assert not cond_allows({"DateLessThan": {"aws:CurrentTime": "2027-01-01T00:00:00Z"}})
    assert cond_allows({"DateLessThan": {"aws:CurrentTime": "2027-02-01"}})
    assert cond_allows({"DateLessThanEquals": {"aws:EpochTime": str(int(NOW))}})
    assert cond_allows({"DateEquals": {"aws:CurrentTime": "2027-01-15T08:00:00Z"}})
    assert cond_allows({"DateNotEquals": {"aws:CurrentTime": "2027-01-15T08:00:01Z"}})
    assert cond_allows({"DateGreaterThanEquals": {"aws:CurrentTime": int(NOW)}})


def test_bool_binary_and_secure_transport():
    assert cond_allows({"Bool": {"aws:SecureTransport": "false"}})
    assert not cond_allows({"Bool": {"aws:SecureTransport": "true"}})
    assert cond_allows({"Bool": {"aws:SecureTransport": "true"}}, secure=True)
    assert cond_allows({"BinaryEquals": {"x:blob": "aGVsbG8="}}, **{"x:blob": b"hello"})
    assert not cond_allows({"BinaryEquals": {"x:blob": "aGVsbG8="}}, **{"x:blob": b"bye"})


def test_ip_operators():
    assert cond_allows({"IpAddress": {"aws:SourceIp": ["10.0.0.0/8"]}})
    assert not cond_allows({"IpAddress": {"aws:SourceIp": "192.168.0.0/16"}})
    assert cond_allows({"NotIpAddress": {"aws:SourceIp": "192.168.0.0/16"}})
    assert cond_allows({"IpAddress": {"aws:SourceIp": "2001:db8::/32"}}, ip="2001:db8::1")
    assert not cond_allows({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, ip="2001:db8::1")
    assert cond_allows({"IpAddress": {"aws:SourceIp": "10.1.2.3"}})


def test_arn_operators():
    assert cond_allows({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/al*"}})
    assert cond_allows({"ArnEquals": {"aws:PrincipalArn": ALICE.arn}})
    assert cond_allows({"ArnNotEquals": {"aws:PrincipalArn": "arn:aws:iam::123456789012:user/bob"}})
    assert not cond_allows({"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/*"}})
    # For a role session aws:PrincipalArn is the role's ARN.
    assert cond_allows({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/reader"}}, caller=SESSION)


def test_set_qualifiers():
    tags = {"aws:tagkeys": ["env", "team"]}
    assert cond_allows({"ForAllValues:StringEquals": {"aws:TagKeys": ["env", "team", "cost"]}}, **tags)
    assert not cond_allows({"ForAllValues:StringEquals": {"aws:TagKeys": ["env"]}}, **tags)
    assert cond_allows({"ForAllValues:StringEquals": {"aws:TagKeys": ["env"]}})  # missing: true
    assert cond_allows({"ForAllValues:StringEquals": {"aws:TagKeys": ["env"]}}, **{"aws:tagkeys": []})
    assert cond_allows({"ForAnyValue:StringEquals": {"aws:TagKeys": ["team"]}}, **tags)
    assert not cond_allows({"ForAnyValue:StringEquals": {"aws:TagKeys": ["cost"]}}, **tags)
    assert not cond_allows({"ForAnyValue:StringEquals": {"aws:TagKeys": ["cost"]}})  # missing: false
    assert cond_allows({"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["env"]}}, **tags)
    assert not cond_allows({"ForAllValues:StringNotEquals": {"aws:TagKeys": ["env"]}}, **tags)
    assert cond_allows({"ForAllValues:StringLike": {"aws:TagKeys": ["e*", "t*"]}}, **tags)


def test_global_keys():
    assert cond_allows({"StringEquals": {"aws:PrincipalAccount": ACCOUNT}})
    assert cond_allows({"StringEquals": {"aws:userid": "AIDAALICE"}})
    assert cond_allows({"StringEquals": {"aws:userid": "AROAREADER:sess"}}, caller=SESSION)
    assert cond_allows({"StringEquals": {"aws:RequestedRegion": "eu-west-1"}}, region="eu-west-1")
    assert not cond_allows({"StringEquals": {"aws:RequestedRegion": "eu-west-1"}})
    assert cond_allows({"StringEquals": {"aws:PrincipalType": "AssumedRole"}}, caller=SESSION)
    assert cond_allows({"Null": {"aws:TokenIssueTime": "false"}}, caller=SESSION)
    assert cond_allows({"Null": {"aws:TokenIssueTime": "true"}})


def test_conditions_are_anded_across_keys_and_operators():
    c = {
        "StringEquals": {"aws:username": "alice", "aws:PrincipalAccount": ACCOUNT},
        "Bool": {"aws:SecureTransport": "true"},
    }
    assert not cond_allows(c)
    assert cond_allows(c, secure=True)


@pytest.mark.parametrize(
    "doc",
    [
        "not json",
        "[]",
        '{"Statement": []}',
        '{"Version": "2012-10-17"}',
        '{"Version": "2010-01-01", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}',
        '{"Statement": {"Effect": "Maybe", "Action": "*", "Resource": "*"}}',
        '{"Statement": {"Effect": "Allow", "Resource": "*"}}',
        '{"Statement": {"Effect": "Allow", "Action": "*"}}',
        '{"Statement": {"Effect": "Allow", "Action": "GetObject", "Resource": "*"}}',
        '{"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", "Bogus": 1}}',
        '{"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"StringSorta": {"a:b": "c"}}}}',
        '{"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", "Principal": "*"}}',
    ],
)
def test_malformed_documents_are_refused(doc):
    with pytest.raises(PolicyError):
        compile_policy(doc)


def test_trust_policy_grammar():
    trust = compile_policy(
        json.dumps(
            {"Statement": {"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}}
        ),
        "trust",
    )
    assert trust.statements[0].resources is None
    with pytest.raises(PolicyError):
        compile_policy(json.dumps({"Statement": {"Effect": "Allow", "Action": "sts:AssumeRole"}}), "trust")
