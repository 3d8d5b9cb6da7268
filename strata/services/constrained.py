"""Model constraints checked before a provider's operations run (strata.protocol.constraints).

AWS validates a request against its model before any semantic check: a request that breaks a
length, range, enum or pattern constraint gets one ValidationException listing every broken
one ("2 validation errors detected: ..."), whatever else is wrong with it. `constrained` wraps a
provider's operations so that holds for each of them:

- up front, unless the request has only members named in `lean` (GetItem's TableName and Key):
  those requests are the hot path, and a broken constraint there (a table name AWS cannot hold,
  a key attribute name longer than 65,535 characters) cannot succeed anyway, so
- on the error path too: an operation that raised is checked, and the constraint errors win.

`skip` names shapes a provider validates itself (DynamoDB's AttributeValue: its items).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any

from botocore import xform_name

from strata.context import RequestContext
from strata.protocol.constraints import Node, compiled, validation_message
from strata.protocol.errors import ServiceError
from strata.protocol.spec import service_model


def constrained(
    service: str,
    error: Callable[[str], ServiceError],
    skip: Iterable[str] = (),
    lean: Iterable[str] = (),
) -> Callable[[type], type]:
    """Class decorator: every operation method of the class checks its model constraints;
    `error(message)` is the service's exception for them."""
    skipped, plain = frozenset(skip), frozenset(lean)

    def decorate(cls: type) -> type:
        model = service_model(service)
        names = {xform_name(op): op for op in model.operation_names}
        for name, fn in inspect.getmembers(cls, inspect.isfunction):
            operation = names.get(name)
            if operation is None or name.startswith("_"):
                continue
            node = compiled(model.operation_model(operation).input_shape, skipped)
            if node is not None:
                setattr(cls, name, _wrap(fn, node, error, plain))
        return cls

    return decorate


def _wrap(fn: Callable, node: Node, error: Callable[[str], ServiceError], plain: frozenset) -> Callable:
    ok, report = node

    def check(req: dict) -> None:
        if not ok(req):
            found: list[str] = []
            report(req, "", found)
            raise error(validation_message(found))

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_op(self: Any, ctx: RequestContext, req: dict) -> Any:
            if not (plain.issuperset(req) or ok(req)):
                check(req)
            try:
                return await fn(self, ctx, req)
            except ServiceError:
                check(req)
                raise

        return async_op

    @functools.wraps(fn)
    def op(self: Any, ctx: RequestContext, req: dict) -> Any:
        if not (plain.issuperset(req) or ok(req)):
            check(req)
        try:
            return fn(self, ctx, req)
        except ServiceError:
            check(req)
            raise

    return op
