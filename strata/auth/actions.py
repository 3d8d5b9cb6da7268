"""Which IAM action on which resource ARN each operation of each service is.

The table is data (`actions.json`, read once); the operation names come from the botocore models.
A `Plan` per (service, operation) is compiled on first use: the action name, the one resource
rule whose input member the operation has, and any per-entry or extra checks. `targets` applies
a plan to one parsed request: a short list of (action, resource ARN) pairs, usually one.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

from strata.protocol.spec import service_model

_TABLE: dict[str, Any] = json.loads((Path(__file__).with_name("actions.json")).read_text())


def prefix_of(service: str) -> str:
    return _TABLE.get(service, {}).get("prefix", service)


@dataclass(frozen=True)
class Plan:
    action: str  # "s3:GetObject"
    versioned_action: str  # used instead when the request names a VersionId
    rules: tuple[tuple[str, Template], ...]  # (member, template) in order; first present wins
    each: tuple[str, ...] | None = None  # (kind, member, item field, template)
    also: tuple[tuple[str, str, str], ...] = ()  # (action, member, template)
    caller_when_absent: bool = False
    always_allowed: bool = False
    creates: bool = False
    resource_required: bool = False
    keys: dict[str, str] = field(default_factory=dict)  # condition key -> member path


@cache
def plan(service: str, operation: str) -> Plan:
    entry = _TABLE.get(service, {})
    prefix = entry.get("prefix", service)
    name = entry.get("actions", {}).get(operation, operation)
    versioned = entry.get("versioned", {}).get(operation, name)
    try:
        members = set(service_model(service).operation_model(operation).input_shape.members)
    except Exception:  # noqa: BLE001 - an operation without input shape has no resource members
        members = set()
    rules = tuple((m, compile_template(t)) for m, t in entry.get("resources", []) if m in members)
    each = entry.get("each", {}).get(operation)
    also = tuple((f"{prefix}:{a}", m, t) for a, m, t in entry.get("also", {}).get(operation, []))
    return Plan(
        action=f"{prefix}:{name}",
        versioned_action=f"{prefix}:{versioned}",
        rules=rules,
        each=tuple(each) if each else None,
        also=also,
        caller_when_absent=operation in entry.get("caller_when_absent", ()),
        always_allowed=operation in entry.get("always_allowed", ()),
        creates=operation in entry.get("creates", ()),
        resource_required=bool({"*", operation} & set(entry.get("resource_policy_required", ()))),
        keys=entry.get("keys", {}),
    )


Template = tuple[tuple[str, str | None], ...]


@cache
def compile_template(template: str) -> Template:
    """'arn:aws:s3:::{Bucket}/{Key}' -> (('arn:aws:s3:::', 'Bucket'), ('/', 'Key')): filled by
    concatenation on the hot path instead of str.format."""
    return tuple((literal, name or None) for literal, name, _, _ in string.Formatter().parse(template))


def _fill(parts: Template, params: dict, region: str, account: str) -> str | None:
    out = []
    for literal, name in parts:
        out.append(literal)
        if name is None:
            continue
        if name == "region":
            value: Any = region
        elif name == "account":
            value = account
        else:
            value = params.get(name)
            if value is None:
                return None
            if type(value) is str and value.startswith("arn:"):
                return value  # the member already is an ARN (RDS, ElastiCache, DynamoDB accept both)
        out.append(value if type(value) is str else str(value))
    return "".join(out)


def _dig(params: dict, path: str) -> Any:
    value: Any = params
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def targets(p: Plan, params: dict, region: str, account: str, caller_arn: str = "") -> list[tuple[str, str]]:
    """The (action, resource) pairs one request must be allowed."""
    action = p.versioned_action if params.get("VersionId") else p.action
    out: list[tuple[str, str]] = []
    if p.each is not None:
        kind, member, item_field, template = p.each
        source = _dig(params, member)
        if kind == "keys" and isinstance(source, dict):
            out.extend((action, template.format(region=region, account=account, item=k)) for k in source)
        elif kind == "list" and isinstance(source, list):
            for entry in source:
                if isinstance(entry, dict) and entry.get(item_field) is not None:
                    out.append(
                        (action, template.format(item=entry[item_field], **_with(params, region, account)))
                    )
        elif kind == "transact" and isinstance(source, list):
            names = _TABLE["dynamodb"]["transact"]
            prefix = action.split(":", 1)[0]
            for entry in source:
                for op_key, body in (entry or {}).items():
                    if isinstance(body, dict) and body.get(item_field):
                        out.append(
                            (
                                f"{prefix}:{names.get(op_key, op_key)}",
                                template.format(region=region, account=account, item=body[item_field]),
                            )
                        )
        if out:
            return out
    resource = None
    for member, parts in p.rules:
        if params.get(member) is not None:
            resource = _fill(parts, params, region, account)
            if resource is not None:
                break
    if resource is None:
        resource = caller_arn if p.caller_when_absent and caller_arn else "*"
    out.append((action, resource))
    for extra_action, member, template in p.also:
        source = params.get(member)
        if isinstance(source, str):
            path = unquote(source.split("?", 1)[0]).lstrip("/")
            out.append((extra_action, template.format(source=path)))
    return out


def _with(params: dict, region: str, account: str) -> dict:
    return {**{k: v for k, v in params.items() if isinstance(v, str)}, "region": region, "account": account}


class ParamKeys:
    """Service condition keys read lazily from the parsed request (`s3:prefix` -> Prefix); the
    keys only the provider can answer (a KMS key's spec, a DynamoDB item's partition key value)
    come from its optional `condition_key(params, lowercase key)` hook."""

    __slots__ = ("params", "keys", "hook")

    def __init__(
        self, params: dict, keys: dict[str, str], hook: Callable[[dict, str], Any] | None = None
    ) -> None:
        self.params = params
        self.keys = keys
        self.hook = hook

    def get(self, key: str) -> Any:
        if key == "aws:tagkeys" or key.startswith("aws:requesttag/"):
            return _request_tags(self.params, key)
        path = self.keys.get(key)
        if path is None:
            return self.hook(self.params, key) if self.hook is not None else None
        value = _dig(self.params, path)
        if isinstance(value, bool):
            return value
        return str(value) if isinstance(value, int | float) else value


def _request_tags(params: dict, key: str) -> Any:
    tags = params.get("Tags")
    pairs: dict[str, str] = {}
    if isinstance(tags, list):
        pairs = {str(t["Key"]): str(t.get("Value", "")) for t in tags if isinstance(t, dict) and "Key" in t}
    elif isinstance(tags, dict):
        pairs = {str(k): str(v) for k, v in tags.items()}
    elif isinstance(params.get("Tagging"), str):  # S3 x-amz-tagging: k=v&k2=v2
        pairs = dict(parse_qsl(params["Tagging"], keep_blank_values=True))
    if not pairs and tags is None and not isinstance(params.get("Tagging"), str):
        return None
    if key == "aws:tagkeys":
        return list(pairs)
    want = key.split("/", 1)[1]
    for k, v in pairs.items():
        if k.lower() == want:
            return v
    return None
