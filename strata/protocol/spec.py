"""Service models: botocore's `service-2.json` plus Strata's corrections, loaded once per service.

Corrections live as data in `patches/<service>.json` (a deep merge into the model: missing error
shapes, root tag names, status codes), never as code.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path

from botocore.loaders import Loader
from botocore.model import OperationModel, ServiceModel

_PATCHES = Path(__file__).parent / "patches"
_loader = Loader()


def _merge(base: dict, patch: dict) -> dict:
    for key, value in patch.items():
        if value is None:
            base.pop(key, None)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


@cache
def service_model(name: str) -> ServiceModel:
    """The (patched) botocore service model for a service, e.g. 's3', 'dynamodb', 'ec2'."""
    # No copy of botocore's parsed JSON: `_loader` is this module's own and this function runs once
    # per service, so nothing else sees the patched dict (a deep copy cost ~0.25 s per server start).
    raw = _loader.load_service_model(name, "service-2")
    patch_file = _PATCHES / f"{name}.json"
    if patch_file.exists():
        _merge(raw, json.loads(patch_file.read_text()))
    return ServiceModel(raw, service_name=name)


@cache
def operation_model(service: str, operation: str) -> OperationModel:
    return service_model(service).operation_model(operation)
