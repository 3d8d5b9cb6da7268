"""AWS Fault Injection Service: experiment templates, experiments run in real time, the action
catalog, tags.

Contents:
- this module: the operations (templates, experiments, actions, target resource types, tags);
- `templates`: template validation (targets, actions, stop conditions);
- `runner`: experiments as asyncio tasks, state written through on every change;
- `targets`: target resolution by ARN or tags and the selection modes;
- `catalog`: the actions Strata performs and their parameters; durations;
- `authority`: the experiment role's policies must allow what each action does.

Records are JSON documents in `<data>/fis/fis.db` (kinds `ext` templates, `exp` experiments,
`token` idempotency tokens). Injected API faults live in strata.sim.faults, read by the gateway.
"""

from __future__ import annotations

import secrets
import string
from datetime import UTC, datetime
from typing import Any

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.base import ServiceRuntime
from strata.services.fis import disk_full
from strata.services.fis import templates as tpl
from strata.services.fis.catalog import ACTIONS, TARGET_PARAMETERS, TARGET_TYPES
from strata.services.fis.runner import ACTIVE, Runner
from strata.services.fis.stops import check_alarms_exist
from strata.services.parameters import refusing
from strata.sim.clock import clock
from strata.storage.metadata import MetadataStore

_ID_CHARS = string.ascii_letters + string.digits


def _new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ID_CHARS) for _ in range(14))


def _ts(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def _not_found(kind: str, ident: str) -> ServiceError:
    return ServiceError("ResourceNotFoundException", f"{kind} {ident} not found", 404)


def _page(items: list, req: dict, key: str, limit: int = 100) -> dict:
    """One page of a listing: nextToken is the offset of the next item."""
    token = req.get("nextToken")
    try:
        start = int(token) if token else 0
    except ValueError as e:
        raise tpl.invalid(f"Invalid nextToken: {token}") from e
    size = req.get("maxResults") or limit
    out: dict[str, Any] = {key: items[start : start + size]}
    if start + size < len(items):
        out["nextToken"] = str(start + size)
    return out


@refusing("fis")
class FISProvider:
    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.store = MetadataStore(runtime.data_dir / "fis.db", fsync=runtime.settings.fsync)
        self.runner = Runner(self.store, runtime.peer, runtime.settings)

    async def start(self) -> None:
        self.runner.interrupted()

    async def stop(self) -> None:
        await self.runner.shutdown()

    # -- helpers -------------------------------------------------------------------------------

    def _arn(self, ctx: RequestContext, kind: str, ident: str) -> str:
        return f"arn:aws:fis:{ctx.region}:{ctx.account_id}:{kind}/{ident}"

    def _owned(self, kind: str, ident: str | None, ctx: RequestContext, what: str) -> dict:
        doc = self.runner.live.get(ident or "") if kind == "exp" else None
        doc = doc or self.store.get_doc(kind, ident or "")
        if doc is None or doc["account"] != ctx.account_id or doc["region"] != ctx.region:
            raise _not_found(what, ident or "")
        return doc

    def _token(self, ctx: RequestContext, op: str, token: str | None) -> dict | None:
        if not token:
            return None
        return self.store.get_doc("token", f"{ctx.account_id}/{ctx.region}/{op}/{token}")

    def _remember(self, ctx: RequestContext, op: str, token: str | None, kind: str, ident: str) -> None:
        if token:
            self.store.put_doc(
                "token", f"{ctx.account_id}/{ctx.region}/{op}/{token}", {"kind": kind, "id": ident}
            )

    def _template_out(self, doc: dict) -> dict:
        return {
            "id": doc["id"],
            "arn": doc["arn"],
            "description": doc["description"],
            "targets": doc["targets"],
            "actions": doc["actions"],
            "stopConditions": doc["stopConditions"],
            "creationTime": _ts(doc["creationTime"]),
            "lastUpdateTime": _ts(doc["lastUpdateTime"]),
            "roleArn": doc["roleArn"],
            "tags": doc["tags"],
            "experimentOptions": doc["experimentOptions"],
            "targetAccountConfigurationsCount": 0,
        }

    def _experiment_out(self, doc: dict) -> dict:
        actions = {}
        for name, a in doc["actions"].items():
            actions[name] = {
                k: v
                for k, v in a.items()
                if k in ("actionId", "description", "parameters", "targets", "startAfter", "state")
            }
            for key in ("startTime", "endTime"):
                if a.get(key) is not None:
                    actions[name][key] = _ts(a[key])
        out = {
            "id": doc["id"],
            "arn": doc["arn"],
            "experimentTemplateId": doc["experimentTemplateId"],
            "roleArn": doc["roleArn"],
            "state": doc["state"],
            "targets": doc["targets"],
            "actions": actions,
            "stopConditions": doc["stopConditions"],
            "creationTime": _ts(doc["creationTime"]),
            "tags": doc["tags"],
            "experimentOptions": doc["experimentOptions"],
            "targetAccountConfigurationsCount": 0,
        }
        for key in ("startTime", "endTime"):
            if doc.get(key) is not None:
                out[key] = _ts(doc[key])
        return out

    # -- experiment templates ------------------------------------------------------------------

    async def create_experiment_template(self, ctx: RequestContext, req: dict) -> dict:
        earlier = self._token(ctx, "CreateExperimentTemplate", req.get("clientToken"))
        if earlier is not None and (doc := self.store.get_doc("ext", earlier["id"])) is not None:
            return {"experimentTemplate": self._template_out(doc)}
        targets = tpl.check_targets(req.get("targets") or {})
        doc = {
            "description": req.get("description") or "",
            "stopConditions": tpl.check_stop_conditions(req.get("stopConditions") or []),
            "targets": targets,
            "actions": tpl.check_actions(req.get("actions") or {}, targets),
            "roleArn": tpl.check_role_arn(req.get("roleArn")),
            "tags": dict(req.get("tags") or {}),
            "experimentOptions": tpl.check_template_options(req.get("experimentOptions")),
        }
        disk_full.check_template(self.runtime.peer, ctx, targets, doc["actions"])
        await check_alarms_exist(self.runtime.peer, doc["stopConditions"], ctx.region, ctx.account_id)
        ident = _new_id("EXT")
        now = clock.time()
        doc.update(
            id=ident,
            arn=self._arn(ctx, "experiment-template", ident),
            account=ctx.account_id,
            region=ctx.region,
            creationTime=now,
            lastUpdateTime=now,
        )
        self.store.put_doc("ext", ident, doc)
        self._remember(ctx, "CreateExperimentTemplate", req.get("clientToken"), "ext", ident)
        return {"experimentTemplate": self._template_out(doc)}

    def get_experiment_template(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._owned("ext", req.get("id"), ctx, "Experiment template")
        return {"experimentTemplate": self._template_out(doc)}

    def list_experiment_templates(self, ctx: RequestContext, req: dict) -> dict:
        items = [
            {
                k: v
                for k, v in self._template_out(d).items()
                if k in ("id", "arn", "description", "creationTime", "lastUpdateTime", "tags")
            }
            for d in self.store.list_docs("ext")
            if d["account"] == ctx.account_id and d["region"] == ctx.region
        ]
        return _page(items, req, "experimentTemplates")

    async def update_experiment_template(self, ctx: RequestContext, req: dict) -> dict:
        """Members given replace the template's (targets and actions as whole maps); the result
        is validated as a whole, as CreateExperimentTemplate validates."""
        doc = self._owned("ext", req.get("id"), ctx, "Experiment template")
        targets = tpl.check_targets(req["targets"]) if req.get("targets") is not None else doc["targets"]
        actions = req["actions"] if req.get("actions") is not None else doc["actions"]
        doc["actions"] = tpl.check_actions(actions, targets)
        disk_full.check_template(self.runtime.peer, ctx, targets, doc["actions"])
        doc["targets"] = targets
        if req.get("stopConditions") is not None:
            conditions = tpl.check_stop_conditions(req["stopConditions"])
            await check_alarms_exist(self.runtime.peer, conditions, ctx.region, ctx.account_id)
            doc["stopConditions"] = conditions
        if req.get("roleArn") is not None:
            doc["roleArn"] = tpl.check_role_arn(req["roleArn"])
        if req.get("description") is not None:
            doc["description"] = req["description"]
        if req.get("experimentOptions") is not None:
            doc["experimentOptions"] = tpl.check_template_options(
                req["experimentOptions"], doc["experimentOptions"]
            )
        doc["lastUpdateTime"] = clock.time()
        self.store.put_doc("ext", doc["id"], doc)
        return {"experimentTemplate": self._template_out(doc)}

    def delete_experiment_template(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._owned("ext", req.get("id"), ctx, "Experiment template")
        self.store.delete_doc("ext", doc["id"])
        return {"experimentTemplate": self._template_out(doc)}

    # -- experiments ---------------------------------------------------------------------------

    async def start_experiment(self, ctx: RequestContext, req: dict) -> dict:
        earlier = self._token(ctx, "StartExperiment", req.get("clientToken"))
        if earlier is not None and (doc := self.store.get_doc("exp", earlier["id"])) is not None:
            return {"experiment": self._experiment_out(doc)}
        template = self._owned("ext", req.get("experimentTemplateId"), ctx, "Experiment template")
        disk_full.check_template(self.runtime.peer, ctx, template["targets"], template["actions"])
        ident = _new_id("EXP")
        now = clock.time()
        actions = {
            name: {**a, "state": {"status": "pending", "reason": "Initial state"}}
            for name, a in template["actions"].items()
        }
        doc = {
            "id": ident,
            "arn": self._arn(ctx, "experiment", ident),
            "experimentTemplateId": template["id"],
            "roleArn": template["roleArn"],
            "state": {"status": "pending", "reason": "Experiment is pending."},
            "targets": template["targets"],
            "actions": actions,
            "stopConditions": template["stopConditions"],
            "creationTime": now,
            "startTime": now,
            "tags": dict(req.get("tags") or {}),
            "experimentOptions": {
                **template["experimentOptions"],
                "actionsMode": (req.get("experimentOptions") or {}).get("actionsMode") or "run-all",
            },
            "account": ctx.account_id,
            "region": ctx.region,
        }
        self.store.put_doc("exp", ident, doc)
        self._remember(ctx, "StartExperiment", req.get("clientToken"), "exp", ident)
        self.runner.launch(doc)
        return {"experiment": self._experiment_out(doc)}

    def get_experiment(self, ctx: RequestContext, req: dict) -> dict:
        return {"experiment": self._experiment_out(self._owned("exp", req.get("id"), ctx, "Experiment"))}

    def list_experiments(self, ctx: RequestContext, req: dict) -> dict:
        template = req.get("experimentTemplateId")
        items = [
            {
                k: v
                for k, v in self._experiment_out(d).items()
                if k
                in ("id", "arn", "experimentTemplateId", "state", "creationTime", "tags", "experimentOptions")
            }
            for d in self.store.list_docs("exp")
            if d["account"] == ctx.account_id
            and d["region"] == ctx.region
            and (not template or d["experimentTemplateId"] == template)
        ]
        return _page(items, req, "experiments")

    def stop_experiment(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._owned("exp", req.get("id"), ctx, "Experiment")
        status = doc["state"]["status"]
        if status not in ACTIVE:
            raise tpl.invalid(f"Experiment {doc['id']} is {status} and cannot be stopped")
        if status != "stopping":
            self.runner.stop(doc)
        return {"experiment": self._experiment_out(doc)}

    def list_experiment_resolved_targets(self, ctx: RequestContext, req: dict) -> dict:
        """The resources each target resolved to (one entry per resource), once resolution ran."""
        doc = self._owned("exp", req.get("experimentId"), ctx, "Experiment")
        wanted = req.get("targetName")
        if wanted and wanted not in doc["targets"]:
            raise _not_found("Target", wanted)
        items = [
            {
                "resourceType": doc["targets"][name]["resourceType"],
                "targetName": name,
                "targetInformation": {"arn": arn},
            }
            for name, arns in (doc.get("resolved") or {}).items()
            if not wanted or name == wanted
            for arn in arns
        ]
        return _page(items, req, "resolvedTargets")

    # -- catalog -------------------------------------------------------------------------------

    def _action_out(self, ctx: RequestContext, action_id: str, full: bool) -> dict:
        spec = ACTIONS[action_id]
        out: dict[str, Any] = {
            "id": spec.id,
            "arn": f"arn:aws:fis:{ctx.region}::action/{spec.id}",
            "description": spec.description,
            "targets": {spec.target[0]: {"resourceType": spec.target[1]}} if spec.target else {},
            "tags": {},
        }
        if full:
            out["parameters"] = {
                name: {"description": doc, "required": required}
                for name, (doc, required) in spec.parameters.items()
            }
        return out

    def list_actions(self, ctx: RequestContext, req: dict) -> dict:
        return _page([self._action_out(ctx, a, False) for a in sorted(ACTIONS)], req, "actions")

    def get_action(self, ctx: RequestContext, req: dict) -> dict:
        if req.get("id") not in ACTIONS:
            raise _not_found("Action", req.get("id") or "")
        return {"action": self._action_out(ctx, req["id"], True)}

    def list_target_resource_types(self, ctx: RequestContext, req: dict) -> dict:
        items = [{"resourceType": t, "description": d} for t, d in sorted(TARGET_TYPES.items())]
        return _page(items, req, "targetResourceTypes")

    def get_target_resource_type(self, ctx: RequestContext, req: dict) -> dict:
        rtype = req.get("resourceType")
        if rtype not in TARGET_TYPES:
            raise _not_found("Target resource type", rtype or "")
        return {
            "targetResourceType": {
                "resourceType": rtype,
                "description": TARGET_TYPES[rtype],
                "parameters": {
                    name: {"description": doc, "required": required}
                    for name, (doc, required) in TARGET_PARAMETERS.get(rtype, {}).items()
                },
            }
        }

    # -- tags ----------------------------------------------------------------------------------

    def _tagged(self, ctx: RequestContext, arn: str | None) -> dict:
        kind, _, ident = (arn or "").rpartition(":")[2].partition("/")
        store_kind = {"experiment-template": "ext", "experiment": "exp"}.get(kind)
        doc = (self.runner.live.get(ident) if store_kind == "exp" else None) or (
            self.store.get_doc(store_kind, ident) if store_kind else None
        )
        if doc is None or doc["arn"] != arn:
            raise _not_found("Resource", arn or "")
        return doc

    def tag_resource(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._tagged(ctx, req.get("resourceArn"))
        doc["tags"] = {**doc["tags"], **(req.get("tags") or {})}
        self.store.put_doc("ext" if doc["id"].startswith("EXT") else "exp", doc["id"], doc)
        return {}

    def untag_resource(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._tagged(ctx, req.get("resourceArn"))
        drop = set(req.get("tagKeys") or [])
        doc["tags"] = {k: v for k, v in doc["tags"].items() if k not in drop}
        self.store.put_doc("ext" if doc["id"].startswith("EXT") else "exp", doc["id"], doc)
        return {}

    def list_tags_for_resource(self, ctx: RequestContext, req: dict) -> dict:
        return {"tags": self._tagged(ctx, req.get("resourceArn"))["tags"]}
