"""The parameter audit table (strata/services/<service>/parameters.json) against the models and a server.

- Every input member of every operation a provider serves is classified (honoured, inert or
  refused), and nothing else is: a new botocore member or a newly served operation fails here
  until someone decides what Strata does with it.
- Every refused member is sent, set to a valid value generated from its shape, through boto3 to
  a real server, and must come back as the service's refusal naming it — never as success.
"""

from __future__ import annotations

import datetime
import inspect
from typing import Any

import pytest
from botocore import xform_name
from botocore.exceptions import ClientError

from strata.protocol.spec import service_model
from strata.services.parameters import REFUSALS, STATUSES, refused_members, status_of, table
from strata.services.registry import SERVICES, load_provider_class

AUDITED = (
    "s3",
    "s3control",
    "dynamodb",
    "rds",
    "elasticache",
    "sts",
    "iam",
    "kms",
    "ec2",
    "ebs",
    "efs",
    "application-autoscaling",
    "cloudwatch",
    "ce",
    "fis",
)
# botocore rewrites these before sending: the member the server sees instead.
REWRITTEN = {("rds", "SourceRegion"): "PreSignedUrl"}
# Names whose generated value must also pass the client's own checks.
NAMES = {"Bucket": "strata-audit", "Key": "k"}


def served_operations(service: str) -> list[str]:
    cls = load_provider_class(SERVICES[service])
    model = service_model(service)
    return [op for op in model.operation_names if callable(getattr(cls, xform_name(op), None))]


@pytest.mark.parametrize("service", AUDITED)
def test_every_member_of_every_served_operation_is_classified(service: str) -> None:
    model = service_model(service)
    audit = table(service)
    served = served_operations(service)
    assert sorted(audit) == sorted(served), "operations served and operations audited differ"
    for op in served:
        shape = model.operation_model(op).input_shape
        members = list(shape.members) if shape is not None else []
        assert sorted(audit[op]) == sorted(members), f"{op}: audit members differ from the model"
        for member, entry in audit[op].items():
            assert status_of(entry) in STATUSES, f"{op}.{member}: {entry}"


def value_for(shape: Any, avoid: list, depth: int = 0) -> Any:
    """A valid value of `shape` that is not 'off' and not in `avoid`."""
    kind = shape.type_name
    if kind == "string":
        options = list(shape.enum) if shape.enum else ["x" * max(shape.metadata.get("min", 1), 3)]
        return next((o for o in options if o not in avoid), options[-1])
    if kind in ("integer", "long"):
        low = max(int(shape.metadata.get("min", 1)), 1)
        return next(v for v in range(low, low + 5) if v not in avoid)
    if kind in ("double", "float"):
        return 1.0
    if kind == "boolean":
        return True
    if kind == "timestamp":
        return datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    if kind == "blob":
        return b"x"
    if kind == "list":
        return [value_for(shape.member, [], depth + 1) for _ in range(max(shape.metadata.get("min", 1), 1))]
    if kind == "map":
        return {"k": value_for(shape.value, [], depth + 1)}
    if kind == "structure":
        names = list(shape.required_members) or list(shape.members)[:1]
        if depth > 4:
            names = list(shape.required_members)
        return {n: value_for(shape.members[n], [], depth + 1) for n in names}
    raise AssertionError(f"no generator for {kind}")


def request_for(service: str, op: str, member: str, entry: dict) -> dict:
    shape = service_model(service).operation_model(op).input_shape
    req = {n: NAMES.get(n) or value_for(shape.members[n], []) for n in shape.required_members}
    if "refuse" in entry:
        value: Any = entry["refuse"][0]
    else:
        value = value_for(shape.members[member], entry.get("accept", []))
    if "key" in entry:  # one member of a structure: a flag, a refused value, or any valid value
        sub = shape.members[member].members[entry["key"]]
        if "refuse" in entry:
            inner: Any = entry["refuse"][0]
        else:
            inner = True if sub.type_name == "boolean" else value_for(sub, entry.get("accept", []))
        value = dict(value_for(shape.members[member], []), **{entry["key"]: inner})
    req[member] = value
    return req


def refused_cases() -> list[tuple[str, str, str, dict]]:
    return [
        (service, op, member, entry)
        for service in AUDITED
        for op, rules in sorted(refused_members(service).items())
        for member, entry in rules
    ]


def _control_to_address(request: Any, **_: Any) -> None:
    """S3 Control: the SDK puts the account id in front of the endpoint's address, which no DNS
    resolves; the connection goes to the address (the signed Host header keeps the name)."""
    scheme, _, rest = request.url.partition("://")
    host, _, path = rest.partition("/")
    request.url = f"{scheme}://{host.split('.', 1)[1]}/{path}"


def test_refused_members_are_refused_by_a_real_server(strata_server: Any) -> None:
    cases = refused_cases()
    assert len(cases) > 100  # the table is not empty by accident
    clients = {s: strata_server.client(s) for s in AUDITED}
    clients["s3control"].meta.events.register("before-send", _control_to_address)
    answered = []
    for service, op, member, entry in cases:
        client = clients[service]
        method = getattr(client, xform_name(op), None)
        if method is None:  # an operation only Strata's patched model has (S3 PostObject)
            continue
        req = request_for(service, op, member, entry)
        with pytest.raises(ClientError) as e:
            method(**req)
        err = e.value.response["Error"]
        status = e.value.response["ResponseMetadata"]["HTTPStatusCode"]
        code, _message, want_status = entry.get("error") or REFUSALS[service]
        if op.startswith("Head"):  # no body: the client knows only the status
            assert status == want_status, (service, op, member, err)
            continue
        assert (err["Code"], status) == (code, want_status), (service, op, member, err)
        named = REWRITTEN.get((service, member), member)
        shape = service_model(service).operation_model(op).input_shape
        header = shape.members[named].serialization.get("name", "") if named in shape.members else ""
        said = f"{err.get('Message', '')} {err.get('Header', '')}"
        if "error" not in entry:
            assert named in said or (header and header in said), (service, op, member, err)
        answered.append((service, op, member))
    assert len(answered) > 100


def test_refusal_wrappers_leave_signatures_alone() -> None:
    """The gateway calls `method(ctx, req)`; a wrapped operation keeps that shape."""
    for service in AUDITED:
        cls = load_provider_class(SERVICES[service])
        for op in refused_members(service):
            fn = getattr(cls, xform_name(op))
            assert list(inspect.signature(fn).parameters) == ["self", "ctx", "req"], (service, op)
