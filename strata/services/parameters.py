"""What Strata does with each input member of each operation: the parameter audit table.

A setting Strata accepts must change what Strata does. Every input member of every operation a
provider serves is classified in `strata/services/<service>/parameters.json`:

    {"Operation": {"Member": "honoured" | "inert" | {"status": "refused", ...}, ...}, ...}

- honoured: Strata acts on it (or validates and stores it where AWS only records it: tags, KMS
  key ids, encryption flags).
- inert: AWS itself treats it as informational here (RequestPayer on a bucket that is not
  Requester Pays, MFA where MFA Delete cannot be on, idempotency tokens...); `note` says why.
- refused: a request that sets it (to anything but an "off" value: null, false, 0, "", [], {}, or
  one of the entry's `accept` values) gets the service's error for an unsupported value before
  the operation runs, instead of being accepted and ignored. `key` checks one member of a
  structure (StreamSpecification.StreamEnabled); `refuse` lists the only refused values (when
  `false` is the unsupported one); `error` = [code, message, status] overrides the service's
  default (`REFUSALS`).

`refusing(service)` is a class decorator that wraps a provider's operations with these checks;
tests/services/test_parameter_audit.py keeps the table complete against the botocore models and
sends every refused member to a real server.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore import xform_name

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.protocol.spec import service_model

STATUSES = ("honoured", "inert", "refused")
_HERE = Path(__file__).parent
_NOT_OPERATIONS = {"start", "stop", "health"}

# The service's error for a setting it does not support, when the table names none. S3 names the
# header (NotImplemented, as S3 answers for a header implying functionality it lacks).
REFUSALS: dict[str, tuple[str, str, int]] = {
    "s3": ("NotImplemented", "A header you provided implies functionality that is not implemented", 501),
    "s3control": ("NotImplemented", "{member} is not implemented by Strata", 501),
    "dynamodb": ("ValidationException", "{member} is not supported by Strata", 400),
    "rds": ("InvalidParameterCombination", "{member} is not supported by Strata", 400),
    "elasticache": ("InvalidParameterCombination", "{member} is not supported by Strata", 400),
    "sts": ("InvalidParameterValue", "{member} is not supported by Strata", 400),
    "iam": ("InvalidInput", "{member} is not supported by Strata", 400),
    "kms": ("UnsupportedOperationException", "{member} is not supported by Strata", 400),
    "ec2": ("InvalidParameterValue", "{member} is not supported by Strata", 400),
    "ebs": ("ValidationException", "{member} is not supported by Strata", 400),
    "efs": ("BadRequest", "{member} is not supported by Strata", 400),
    "application-autoscaling": ("ValidationException", "{member} is not supported by Strata", 400),
    "cloudwatch": ("InvalidParameterValue", "{member} is not supported by Strata", 400),
    "ce": ("ValidationException", "{member} is not supported by Strata", 400),
    "fis": ("ValidationException", "{member} is not supported by Strata", 400),
}
# A service whose model name is not a Python package name lives in this package.
PACKAGES: dict[str, str] = {"application-autoscaling": "autoscaling"}


def table(service: str) -> dict[str, dict[str, Any]]:
    """The audit table of a service ({} when it has none)."""
    path = _HERE / PACKAGES.get(service, service) / "parameters.json"
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def status_of(entry: str | dict) -> str:
    return entry if isinstance(entry, str) else entry["status"]


def _refusal(service: str, member: str, entry: dict, header: str | None) -> ServiceError:
    code, message, status = entry.get("error") or REFUSALS[service]
    fields = {}
    if service == "s3" and code == "NotImplemented":
        if header:
            fields["Header"] = header
        else:
            message = f"The parameter {member} implies functionality that is not implemented"
    return ServiceError(code, message.format(member=member), status, fields=fields)


def refused_members(service: str) -> dict[str, list[tuple[str, dict]]]:
    """Per operation, the refused members and their entries."""
    out: dict[str, list[tuple[str, dict]]] = {}
    for operation, members in table(service).items():
        rules = [(m, e) for m, e in members.items() if status_of(e) == "refused"]
        if rules:
            out[operation] = [(m, e if isinstance(e, dict) else {"status": e}) for m, e in rules]
    return out


def check(service: str, req: dict, rules: list[tuple[str, dict, str | None]]) -> None:
    """Raise the refusal for the first refused member `req` sets; nothing when it sets none."""
    for member, entry, header in rules:
        value = req.get(member)
        if "key" in entry and isinstance(value, dict):
            value = value.get(entry["key"])
        if "refuse" in entry:
            if value is None or value not in entry["refuse"]:
                continue
        elif _is_off(value) or value in entry.get("accept", ()):
            continue
        raise _refusal(service, member, entry, header)


def _is_off(value: Any) -> bool:
    return value is None or value is False or (type(value) in (int, str, list, dict) and not value)


def refusing(service: str) -> Callable[[type], type]:
    """Class decorator: operations with refused members check them before they run."""

    def decorate(cls: type) -> type:
        model = service_model(service)
        names = {xform_name(op): op for op in model.operation_names}
        refused = refused_members(service)
        for name, fn in inspect.getmembers(cls, inspect.isfunction):
            operation = names.get(name)
            if name.startswith("_") or name in _NOT_OPERATIONS or operation not in refused:
                continue
            shape = model.operation_model(operation).input_shape
            rules = [(m, e, _header(shape, m)) for m, e in refused[operation]]
            setattr(cls, name, _wrap(fn, service, rules))
        return cls

    return decorate


def _header(shape: Any, member: str) -> str | None:
    ser = shape.members[member].serialization if member in shape.members else {}
    return ser.get("name") if ser.get("location") == "header" else None


def _wrap(fn: Callable, service: str, rules: list) -> Callable:
    # A request names none of the refused members (the parser leaves out what the client did not
    # send) most of the time: one set operation answers that, and the rules are read only if not.
    names = frozenset(member for member, _, _ in rules)
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_op(self: Any, ctx: RequestContext, req: dict) -> Any:
            if not names.isdisjoint(req):
                check(service, req, rules)
            return await fn(self, ctx, req)

        return async_op

    @functools.wraps(fn)
    def op(self: Any, ctx: RequestContext, req: dict) -> Any:
        if not names.isdisjoint(req):
            check(service, req, rules)
        return fn(self, ctx, req)

    return op
