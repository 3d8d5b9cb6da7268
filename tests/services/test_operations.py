"""Every provider against its botocore model: a public method is an AWS operation, by name.

The gateway dispatches an operation to the method named `xform_name(Operation)`, so a public
helper named like no operation is dead weight at best and a routing surprise at worst. The other
direction (which operations are served) is printed for the record and asserted per service in
each service's own tests.
"""

from __future__ import annotations

import inspect

import pytest
from botocore import xform_name

from strata.protocol.spec import service_model
from strata.services.registry import SERVICES, load_provider_class

HOOKS = {
    "start",
    "stop",
    "health",
    "resource_account",
    "resource_policy",
    "resource_arn",
    "further_resources",
    "related_requests",
    "condition_key",
    "request_targets",
    "request_target_operations",
    "cors_preflight",
    "cors_headers",
    # called by FIS actions (strata/services/fis/runner.py)
    "interrupt_az_power",
    "restore_az_power",
    "endpoints_in_zone",
    "set_replica_lag",
}


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_public_provider_methods_are_model_operations(service: str) -> None:
    cls = load_provider_class(SERVICES[service])
    if cls is None:
        pytest.skip(f"{service} has no provider yet (every operation answers 501)")
    operations = {xform_name(name) for name in service_model(service).operation_names}
    public = {name for name, _ in inspect.getmembers(cls, callable) if not name.startswith("_")}
    assert public - HOOKS - operations == set()
    served = sorted(public & operations)
    print(f"{service}: {len(served)}/{len(operations)} operations served")
    assert served
