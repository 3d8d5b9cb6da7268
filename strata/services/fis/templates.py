"""Experiment template validation: targets, actions (parameters, target keys, startAfter order)
and stop conditions checked as FIS checks them, before anything is stored."""

from __future__ import annotations

import re
from typing import Any

from strata.protocol.errors import ServiceError
from strata.services.fis.catalog import ACTIONS, SCOPES, TARGET_PARAMETERS, TARGET_TYPES, duration_seconds
from strata.services.registry import SERVICES

_SELECTION = re.compile(r"^(ALL|COUNT\((\d+)\)|PERCENT\((\d+)\))$")
_ALARM_ARN = re.compile(r"^arn:aws[a-z-]*:cloudwatch:[a-z0-9-]+:\d{12}:alarm:.+$")
_ARN = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:\d{12}:.+$")


def invalid(message: str) -> ServiceError:
    return ServiceError("ValidationException", message, 400)


def check_selection_mode(mode: str) -> None:
    m = _SELECTION.match(mode or "")
    if not m:
        raise invalid(f"Invalid selection mode: {mode}. Valid values are ALL, COUNT(n) and PERCENT(n).")
    if m.group(2) is not None and int(m.group(2)) < 1:
        raise invalid(f"Invalid selection mode: {mode}. COUNT must be at least 1.")
    if m.group(3) is not None and not 1 <= int(m.group(3)) <= 100:
        raise invalid(f"Invalid selection mode: {mode}. PERCENT must be between 1 and 100.")


def check_targets(targets: dict[str, dict]) -> dict[str, dict]:
    out = {}
    for name, t in targets.items():
        rtype = t.get("resourceType")
        if rtype not in TARGET_TYPES:
            raise invalid(f"Target resource type {rtype} is not valid for target {name}")
        check_selection_mode(t.get("selectionMode", ""))
        arns, tags = t.get("resourceArns") or [], t.get("resourceTags") or {}
        if t.get("filters"):
            raise invalid(f"Target {name}: target filters are not supported by Strata")
        params = _check_target_parameters(name, rtype, dict(t.get("parameters") or {}))
        if bool(arns) == bool(tags):
            raise invalid(f"Target {name} must specify either resourceArns or resourceTags, not both")
        for arn in arns:
            if not _ARN.match(arn):
                raise invalid(f"Invalid resource ARN {arn} for target {name}")
        out[name] = {"resourceType": rtype, "selectionMode": t["selectionMode"]}
        if params:
            out[name]["parameters"] = params
        if arns:
            out[name]["resourceArns"] = list(arns)
        else:
            out[name]["resourceTags"] = dict(tags)
    return out


def _check_target_parameters(name: str, rtype: str, params: dict[str, str]) -> dict[str, str]:
    spec = TARGET_PARAMETERS.get(rtype, {})
    for key in params:
        if key not in spec:
            raise invalid(f"Target {name}: parameter {key} is not valid for resource type {rtype}")
    for key, (_doc, required) in spec.items():
        if required and not params.get(key):
            raise invalid(f"Target {name}: missing required parameter {key} for resource type {rtype}")
    return params


def _check_parameters(name: str, action_id: str, params: dict[str, str]) -> None:
    spec = ACTIONS[action_id]
    for key in params:
        if key not in spec.parameters:
            raise invalid(f"Action {name}: parameter {key} is not valid for action type {action_id}")
    for key, (_doc, required) in spec.parameters.items():
        if required and key not in params:
            raise invalid(f"Action {name}: missing required parameter {key} for action type {action_id}")
    if "duration" in params:
        duration_seconds(params["duration"])
    if "percentage" in params:
        p = params["percentage"]
        if not p.isdigit() or not 1 <= int(p) <= 100:
            raise invalid(f"Action {name}: percentage must be an integer from 1 to 100, got {p}")
    if "service" in params and params["service"] not in SERVICES:
        raise invalid(f"Action {name}: service {params['service']} is not a service Strata serves")
    if "operations" in params and not [o for o in params["operations"].split(",") if o.strip()]:
        raise invalid(f"Action {name}: operations must name at least one operation")
    if "lagSeconds" in params:
        lag = params["lagSeconds"]
        if not lag.isdigit() or not 1 <= int(lag) <= 3600:
            raise invalid(f"Action {name}: lagSeconds must be an integer from 1 to 3600, got {lag}")
    if params.get("scope", "all") not in SCOPES:
        raise invalid(
            f"Action {name}: scope {params['scope']} is not supported by Strata; the supported scopes are "
            + ", ".join(SCOPES)
        )
    if (params.get("scope") == "prefix-list") != bool(params.get("prefixListIdentifier")):
        raise invalid(
            f"Action {name}: prefixListIdentifier is required with scope prefix-list, and only with it"
        )
    if "forceFailover" in params and params["forceFailover"].lower() not in ("true", "false"):
        raise invalid(f"Action {name}: forceFailover must be true or false")


def check_actions(actions: dict[str, dict], targets: dict[str, dict]) -> dict[str, dict]:
    if not actions:
        raise invalid("An experiment template must have at least one action")
    out = {}
    for name, a in actions.items():
        action_id = a.get("actionId")
        if action_id not in ACTIONS:
            raise invalid(f"Action type {action_id} is not valid for action {name}")
        spec = ACTIONS[action_id]
        params = dict(a.get("parameters") or {})
        _check_parameters(name, action_id, params)
        action_targets = dict(a.get("targets") or {})
        for key, target in action_targets.items():
            if spec.target is None or key != spec.target[0]:
                raise invalid(f"Action {name}: target key {key} is not valid for action type {action_id}")
            if target not in targets:
                raise invalid(f"Action {name}: target {target} is not defined in the template")
            if targets[target]["resourceType"] != spec.target[1]:
                raise invalid(
                    f"Action {name}: target {target} has resource type {targets[target]['resourceType']}, "
                    f"action type {action_id} needs {spec.target[1]}"
                )
        if spec.target is not None and spec.target[0] not in action_targets:
            raise invalid(f"Action {name}: action type {action_id} requires the target {spec.target[0]}")
        after = list(a.get("startAfter") or [])
        for prior in after:
            if prior not in actions or prior == name:
                raise invalid(f"Action {name}: startAfter names an unknown action {prior}")
        out[name] = {"actionId": action_id, "parameters": params, "targets": action_targets}
        if a.get("description"):
            out[name]["description"] = a["description"]
        if after:
            out[name]["startAfter"] = after
    _check_acyclic(out)
    used = {t for a in out.values() for t in a["targets"].values()}
    for name in targets:
        if name not in used:
            raise invalid(f"Target {name} is not referenced by any action")
    return out


def _check_acyclic(actions: dict[str, dict]) -> None:
    state: dict[str, int] = {}

    def visit(name: str) -> None:
        if state.get(name) == 1:
            raise invalid(f"The startAfter dependencies of action {name} form a cycle")
        if state.get(name) == 2:
            return
        state[name] = 1
        for prior in actions[name].get("startAfter", []):
            visit(prior)
        state[name] = 2

    for name in actions:
        visit(name)


def check_stop_conditions(conditions: list[dict]) -> list[dict]:
    if not conditions:
        raise invalid("An experiment template must have at least one stop condition")
    out = []
    for c in conditions:
        source = c.get("source")
        if source == "none":
            if c.get("value"):
                raise invalid("A stop condition with source none takes no value")
            out.append({"source": "none"})
        elif source == "aws:cloudwatch:alarm":
            if not _ALARM_ARN.match(c.get("value") or ""):
                raise invalid(f"Invalid CloudWatch alarm ARN for stop condition: {c.get('value')}")
            out.append({"source": source, "value": c["value"]})
        else:
            raise invalid(f"Invalid stop condition source: {source}")
    return out


def check_role_arn(arn: Any) -> str:
    if not isinstance(arn, str) or not re.match(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$", arn):
        raise invalid(f"Invalid role ARN: {arn}")
    return arn


TEMPLATE_OPTIONS = {"accountTargeting": "single-account", "emptyTargetResolutionMode": "fail"}


def check_template_options(options: dict | None, current: dict | None = None) -> dict:
    """A template's experiment options: single-account targeting only; an empty target fails the
    experiment (`fail`) or skips the actions on it (`skip`)."""
    out = {
        **TEMPLATE_OPTIONS,
        **(current or {}),
        **{k: v for k, v in (options or {}).items() if v is not None},
    }
    if out["accountTargeting"] != "single-account":
        raise invalid("accountTargeting multi-account is not supported by Strata")
    if out["emptyTargetResolutionMode"] not in ("fail", "skip"):
        raise invalid(f"Invalid emptyTargetResolutionMode: {out['emptyTargetResolutionMode']}")
    return out
