"""Option groups: Create/Copy/Describe/Modify/DeleteOptionGroup and DescribeOptionGroupOptions, and
the option group an instance is a member of (CreateDBInstance / ModifyDBInstance OptionGroupName).

Every instance engine has a default group per major version (`default:postgres-18`,
`default:mariadb-10-11`), which is what an instance without OptionGroupName joins. Custom groups
are records of the account. The options Strata runs are in options.py (MARIADB_AUDIT_PLUGIN on
mariadb and mysql); any other is refused instead of recorded with nothing to honour it.

A change of a group's options (ModifyOptionGroup) reaches the engines of the instances in it (the
plugin installed or uninstalled, its variables set) as AWS documents ApplyImmediately: "immediately
or during the next maintenance window for each instance associated with the option group". With
it, at once. Without (AWS's default), the group shows its new options at once, but each member
keeps running the options it ran before, held in its record's `pending` (options.HELD_OPTIONS, its
membership `pending-maintenance-apply`) until its own PreferredMaintenanceWindow opens on the
simulated clock, or a ModifyDBInstance with ApplyImmediately applies its held modifications
(modify_instance.py, the `rds.maintenance` rule), or a later ModifyOptionGroup with ApplyImmediately.
"""

from __future__ import annotations

from strata.context import RequestContext
from strata.services.base import run_blocking
from strata.services.rds import model as m
from strata.services.rds import options as opt
from strata.services.rds.listing import filtered, page
from strata.services.rds.parameter_groups import ParameterGroupOperations
from strata.sim.clock import clock

MAX_OPTION_GROUPS = 20  # custom option groups per account and region (RDS quota)
OPTION_ENGINES = ("postgres", "mariadb", "mysql")  # the instance engines with option groups


def major_of(engine: str, version: str) -> str:
    """RDS's major engine version: "18" for PostgreSQL 18.1, "10.11" for MariaDB 10.11.6, "8.0"
    for MySQL 8.0.35."""
    return m.major_version(engine, version)


def default_option_group(engine: str, version: str) -> str:
    return f"default:{engine}-{major_of(engine, version).replace('.', '-')}"


def _aws_major(group: dict) -> dict:
    """`group`, its major AWS's: a mysql group an earlier Strata made carries MariaDB's (10.11)."""
    if group["engine"] in m.AWS_VERSIONS:
        group["major"] = m.major_version(group["engine"], group["major"])
    return group


class OptionGroupOperations(ParameterGroupOperations):
    def _option_majors(self, engine: str) -> list[str]:
        return sorted({major_of(engine, v) for v in self._versions_of(engine)})

    def _default_option_groups(self) -> list[dict]:
        return [
            {
                "name": f"default:{engine}-{major.replace('.', '-')}",
                "engine": engine,
                "major": major,
                "description": f"Default option group for {engine} {major}",
                "options": [],
                "default": True,
            }
            for engine in OPTION_ENGINES
            for major in self._option_majors(engine)
        ]

    def _get_option_group(self, name: str | None) -> dict:
        key = (name or "").lower()
        group = self.store.get_doc("option_group", key)
        if group is None:
            group = next((g for g in self._default_option_groups() if g["name"] == key), None)
        if group is None:
            raise m.fault("OptionGroupNotFoundFault", f"Specified OptionGroupName: {name} not found.", 404)
        return _aws_major(group)

    def _option_group_for(self, name: str | None, engine: str, version: str) -> str | None:
        """The custom option group an instance of `engine` `version` joins (None: its default),
        refused when it is of another engine or major version, as RDS does."""
        if not name:
            return None
        group = self._get_option_group(name)
        major = major_of(engine, version)
        if group["engine"] != engine or group["major"] != major:
            raise m.fault(
                "InvalidParameterCombination",
                f"The option group {group['name']} is for {group['engine']} {group['major']}; this "
                f"DB instance runs {engine} {major}.",
            )
        return None if group.get("default") else group["name"]

    def _option_group_out(self, g: dict) -> dict:
        out = {
            "OptionGroupName": g["name"],
            "OptionGroupDescription": g["description"],
            "EngineName": g["engine"],
            "MajorEngineVersion": g["major"],
            "Options": [opt.option_out(o) for o in g.get("options", [])],
            "AllowsVpcAndNonVpcInstanceMemberships": True,
            "OptionGroupArn": m.arn(self.region, self.account, "og", g["name"]),
        }
        if g.get("source"):
            out["SourceOptionGroup"] = g["source"]
        return out

    def _new_option_group(
        self, name: str | None, engine: str, major: str, description: str, tags: list | None
    ) -> dict:
        name = m.check_identifier(name, "OptionGroupName", 255)
        if self.store.get_doc("option_group", name) or name.startswith("default"):
            raise m.fault("OptionGroupAlreadyExistsFault", f"Option group {name} already exists.")
        if len(self.store.list_docs("option_group")) >= MAX_OPTION_GROUPS:
            raise m.fault(
                "OptionGroupQuotaExceededFault", f"Cannot create more than {MAX_OPTION_GROUPS} option groups."
            )
        group = {
            "name": name,
            "engine": engine,
            "major": major,
            "description": description,
            "options": [],
            "tags": m.tags_in(tags),
        }
        self.store.put_doc("option_group", name, group)
        return group

    def create_option_group(self, ctx: RequestContext, req: dict) -> dict:
        self._require(req, "OptionGroupName", "EngineName", "MajorEngineVersion", "OptionGroupDescription")
        engine = req["EngineName"]
        if engine not in OPTION_ENGINES:
            raise m.fault("InvalidParameterValue", f"Invalid DB engine: {engine}")
        if req["MajorEngineVersion"] not in self._option_majors(engine):
            raise m.fault(
                "InvalidParameterCombination",
                f"Cannot find major version {req['MajorEngineVersion']} for {engine}",
            )
        group = self._new_option_group(
            req["OptionGroupName"],
            engine,
            req["MajorEngineVersion"],
            req["OptionGroupDescription"],
            req.get("Tags"),
        )
        return {"OptionGroup": self._option_group_out(group)}

    def copy_option_group(self, ctx: RequestContext, req: dict) -> dict:
        self._require(
            req, "SourceOptionGroupIdentifier", "TargetOptionGroupIdentifier", "TargetOptionGroupDescription"
        )
        source = self._get_option_group(req["SourceOptionGroupIdentifier"].split(":og:")[-1])
        group = self._new_option_group(
            req["TargetOptionGroupIdentifier"],
            source["engine"],
            source["major"],
            req["TargetOptionGroupDescription"],
            req.get("Tags"),
        )
        group["source"] = source["name"]
        group["options"] = [dict(o) for o in source.get("options", [])]
        self.store.put_doc("option_group", group["name"], group)
        return {"OptionGroup": self._option_group_out(group)}

    def describe_option_groups(self, ctx: RequestContext, req: dict) -> dict:
        if req.get("OptionGroupName"):
            groups = [self._get_option_group(req["OptionGroupName"])]
        else:
            groups = sorted(
                self._default_option_groups() + [_aws_major(g) for g in self.store.list_docs("option_group")],
                key=lambda g: g["name"],
            )
        if req.get("EngineName"):
            groups = [g for g in groups if g["engine"] == req["EngineName"]]
        if req.get("MajorEngineVersion"):
            if not req.get("EngineName"):
                raise m.fault("InvalidParameterCombination", "MajorEngineVersion requires EngineName.")
            groups = [g for g in groups if g["major"] == req["MajorEngineVersion"]]
        groups = filtered(groups, req, {})
        resp = page(groups, req, "OptionGroupsList")
        resp["OptionGroupsList"] = [self._option_group_out(g) for g in resp["OptionGroupsList"]]
        return resp

    async def modify_option_group(self, ctx: RequestContext, req: dict) -> dict:
        self._require(req, "OptionGroupName")
        group = self._get_option_group(req["OptionGroupName"])
        if group.get("default"):
            raise m.fault("InvalidOptionGroupStateFault", "Default option groups cannot be modified.")
        include = req.get("OptionsToInclude") or []
        remove = req.get("OptionsToRemove") or []
        if not include and not remove:
            raise m.fault("InvalidParameterCombination", "At least one option must be added or removed.")
        before = [dict(o) for o in group["options"]]
        options = {o["name"]: o for o in group["options"]}
        for name in remove:
            if name not in options:
                raise m.fault(
                    "InvalidParameterValue", f"Option {name} is not a member of option group {group['name']}."
                )
            del options[name]
        for conf in include:
            option = opt.configure(group["engine"], group["major"], conf)
            options[option["name"]] = option
        group["options"] = list(options.values())
        self.store.put_doc("option_group", group["name"], group)
        immediately = bool(req.get("ApplyImmediately"))
        for doc in self.store.list_docs("instance"):
            if doc.get("option_group") == group["name"] and self._hold_options(
                doc, before, group["options"], immediately
            ):
                await self._apply_options(doc)
        return {"OptionGroup": self._option_group_out(group)}

    def _hold_options(self, doc: dict, before: list[dict], after: list[dict], immediately: bool) -> bool:
        """Record what a member's engines run after its group's options changed from `before` to
        `after`; whether they must be brought to `after` now.

        Without ApplyImmediately the options it runs (`before`, or what an earlier change held)
        stay held for its maintenance window; a change back to them cancels the hold, and one with
        ApplyImmediately drops it and applies the group at once."""
        pending = dict(doc.get("pending") or {})
        running = pending.get(opt.HELD_OPTIONS, before)
        if not immediately and running != after:
            pending[opt.HELD_OPTIONS] = running
            doc["pending"] = pending
            doc.setdefault("pending_since", clock.time())
            self._save(doc)
            return False
        if opt.HELD_OPTIONS in pending:
            del pending[opt.HELD_OPTIONS]
            if pending:
                doc["pending"] = pending
            else:
                doc.pop("pending", None)
                doc.pop("pending_since", None)
            self._save(doc)
        return immediately

    async def _apply_options(self, doc: dict) -> None:
        """Bring a running instance's engines to its option group's options (and parameters)."""
        if doc["status"] == "available" and doc["kind"] == "mariadb":
            await run_blocking(self._locked, doc["id"], self.fleet.apply_params, doc, self._params_for(doc))

    def delete_option_group(self, ctx: RequestContext, req: dict) -> dict:
        self._require(req, "OptionGroupName")
        group = self._get_option_group(req["OptionGroupName"])
        if group.get("default"):
            raise m.fault("InvalidOptionGroupStateFault", "Default option groups cannot be deleted.")
        users = [  # members, and instances that join it in their maintenance window
            d["id"]
            for d in self.store.list_docs("instance")
            if group["name"] in (d.get("option_group"), (d.get("pending") or {}).get("OptionGroupName"))
        ]
        if users:
            raise m.fault(
                "InvalidOptionGroupStateFault",
                f"The option group {group['name']} cannot be deleted because it is in use.",
            )
        self.store.delete_doc("option_group", group["name"])
        return {}

    def describe_option_group_options(self, ctx: RequestContext, req: dict) -> dict:
        self._require(req, "EngineName")
        engine = req["EngineName"]
        if engine not in m.ENGINES:
            raise m.fault("InvalidParameterValue", f"Invalid DB engine: {engine}")
        majors = self._option_majors(engine) if engine in OPTION_ENGINES else []
        if req.get("MajorEngineVersion"):
            majors = [v for v in majors if v == req["MajorEngineVersion"]]
        found = [
            opt.option_group_option_out(spec, engine, major)
            for major in majors
            for spec in opt.options_for(engine)
        ]
        found = filtered(found, req, {})
        return page(found, req, "OptionGroupOptions")
