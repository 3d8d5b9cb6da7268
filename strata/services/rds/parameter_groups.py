"""DB parameter groups and DB cluster parameter groups, applied to the engines that use them.

One machinery serves both: a `GroupKind` names what differs (record kind, AWS's member names, ARN
type, who uses it). An instance's engine configuration is its cluster's parameter group (when it is
a cluster member) overlaid with its own DB parameter group, as on Aurora, where an instance-level
setting wins. A change with ApplyMethod immediate is written to the engines' configuration and
reloaded at once; a static parameter (the engine needs a restart) takes effect at the next reboot,
and until then the users show `pending-reboot`.
"""

from __future__ import annotations

from dataclasses import dataclass

from strata.context import RequestContext
from strata.services.base import run_blocking
from strata.services.rds import model as m
from strata.services.rds.core import RDSCore
from strata.services.rds.engine_params import AURORA_AUDIT_PARAMS, catalogue, check_value
from strata.services.rds.listing import filtered, page
from strata.services.rds.options import engine_params, running_options

# Parameters Strata must own for the endpoint, replication and archive to work.
RESERVED_PARAMS = {
    "port",
    "listen_addresses",
    "unix_socket_directories",
    "archive_command",
    "archive_mode",
    "wal_level",
    "primary_conninfo",
    "restore_command",
    "synchronous_standby_names",
    "data_directory",
    "hba_file",
    "socket",
    "datadir",
    "bind_address",
    "log_bin",
    "server_id",
}
APPLY_METHODS = ("immediate", "pending-reboot")


@dataclass(frozen=True)
class GroupKind:
    doc: str  # record kind in the store
    label: str  # AWS's name of the resource: DBParameterGroup / DBClusterParameterGroup
    arn: str  # ARN resource type
    users: str  # the record kind that names the group in "param_group"


INSTANCE = GroupKind("param_group", "DBParameterGroup", "pg", "instance")
CLUSTER = GroupKind("cluster_param_group", "DBClusterParameterGroup", "cluster-pg", "cluster")


class ParameterGroupOperations(RDSCore):
    # -- shared machinery --------------------------------------------------------------------------

    def _default_group_name(self, doc: dict) -> str:
        return f"default.{m.family(doc['engine'], doc['engine_version'])}"

    def _get_param_group(self, name: str | None, kind: GroupKind = INSTANCE) -> dict:
        name = name or ""
        g = self.store.get_doc(kind.doc, name.split(":")[-1].lower())
        if g is None:
            family = m.current_family(name[len("default.") :]) if name.startswith("default.") else ""
            if family and m.known_family(family):
                return {
                    "name": f"default.{family}",
                    "family": family,
                    "description": f"Default parameter group for {family}",
                    "params": {},
                    "tags": {},
                }
            raise m.fault("DBParameterGroupNotFound", f"{kind.label} not found: {name}", 404)
        # a group an earlier Strata made with a family named after MariaDB works as AWS's family
        g["family"] = m.current_family(g["family"])
        return g

    def _group_of_family(self, name: str, kind: GroupKind, engine: str, version: str) -> dict:
        """The parameter group `name`, which a resource of `engine` `version` is to use: AWS's
        errors for a missing group or one of another family."""
        g = self._get_param_group(name, kind)
        family = m.family(engine, version)
        if g["family"] != family:
            raise m.wrong_family(g["name"], g["family"], family)
        return g

    def _cluster_group_for(self, name: str | None, engine: str, version: str) -> str | None:
        """The DB cluster parameter group a cluster of `engine` `version` is to use (None: the
        default one); AWS's errors for a missing group or one of another family."""
        if not name:
            return None
        g = self._group_of_family(name, CLUSTER, engine, version)
        return None if g["name"].startswith("default.") else g["name"]

    def _group_params(self, name: str | None, kind: GroupKind) -> dict[str, str]:
        group = self.store.get_doc(kind.doc, name.lower()) if name else None
        return {k: v["value"] for k, v in (group or {}).get("params", {}).items()}

    def _params_for(self, doc: dict) -> dict[str, str]:
        """The engine settings of an instance: its cluster's parameter group overlaid with its own,
        and what its option group's options need (options.py; the options it ran before, while
        a change of its group waits for its maintenance window)."""
        params: dict[str, str] = {}
        cluster = self.store.get_doc("cluster", doc["cluster"]) if doc.get("cluster") else None
        if cluster:
            params.update(self._group_params(cluster.get("param_group"), CLUSTER))
        params.update(self._group_params(doc.get("param_group"), INSTANCE))
        group = self.store.get_doc("option_group", doc["option_group"]) if doc.get("option_group") else None
        params.update(engine_params(running_options(doc, group)))
        if doc["engine"] == "aurora-mysql" and any(k in AURORA_AUDIT_PARAMS for k in params):
            params["plugin_load_add"] = "server_audit.so"  # Advanced Auditing's parameters need it
        return params

    def _group_out(self, g: dict, kind: GroupKind) -> dict:
        return {
            f"{kind.label}Name": g["name"],
            "DBParameterGroupFamily": g["family"],
            "Description": g["description"],
            f"{kind.label}Arn": m.arn(self.region, self.account, kind.arn, g["name"]),
        }

    def _new_group(
        self, kind: GroupKind, name: str, family: str, description: str, tags: list | None
    ) -> dict:
        name = m.check_identifier(name, f"{kind.label}Name", 255)
        if self.store.get_doc(kind.doc, name.lower()):
            raise m.fault("DBParameterGroupAlreadyExists", f"Parameter group {name} already exists")
        g = {
            "name": name,
            "family": m.check_family(family),
            "description": description,
            "params": {},
            "tags": m.tags_in(tags),
        }
        self.store.put_doc(kind.doc, name.lower(), g)
        return g

    def _in_use_by(self, name: str, kind: GroupKind) -> list[dict]:
        return [
            d
            for d in self.store.list_docs(kind.users)
            if (d.get("param_group") or "").lower() == name.lower()
        ]

    def _instances_using(self, name: str, kind: GroupKind) -> list[dict]:
        users = self._in_use_by(name, kind)
        if kind is INSTANCE:
            return users
        members = {i for c in users for i in c["members"]}
        return [d for d in self.store.list_docs("instance") if d["id"] in members]

    async def _modify_group(
        self, kind: GroupKind, name: str | None, changes: list[dict], reset: bool = False
    ) -> None:
        """Set (or reset) parameters; apply them to every engine using the group."""
        if not name:
            raise m.fault("MissingParameter", f"The request must contain the parameter {kind.label}Name")
        if name.startswith("default."):
            raise m.fault("InvalidParameterValue", "Default parameter groups cannot be modified.")
        g = self._get_param_group(name, kind)
        known = catalogue(g["family"])
        live = False  # a change that applies at once
        static = False  # a change that waits for a reboot
        for p in changes:
            pname = p.get("ParameterName")
            if not pname:
                raise m.fault("InvalidParameterValue", "A parameter must name the parameter (ParameterName).")
            info = (known or {}).get(pname)
            if known is not None and info is None:
                raise m.fault("InvalidParameterValue", f"Could not find parameter with name: {pname}")
            if pname.lower() in RESERVED_PARAMS or (info and not info["IsModifiable"]):
                raise m.fault("InvalidParameterValue", f"The parameter {pname} cannot be modified.")
            method = p.get("ApplyMethod") or ("pending-reboot" if reset else "immediate")
            if method not in APPLY_METHODS:
                raise m.fault("InvalidParameterValue", f"Invalid apply method: {method}")
            if info and info["ApplyType"] == "static" and method == "immediate":
                raise m.fault(
                    "InvalidParameterCombination", "cannot use immediate apply method for static parameter"
                )
            if reset or p.get("ParameterValue") is None:
                if reset and pname not in g["params"]:
                    continue
                g["params"].pop(pname, None)
            else:
                value = str(p["ParameterValue"])
                try:
                    value = check_value(
                        g["family"], info or {"ParameterName": pname, "DataType": "string"}, value
                    )
                except ValueError as e:
                    raise m.fault("InvalidParameterValue", str(e)) from None
                g["params"][pname] = {"value": value, "apply_method": method}
            if method == "immediate":
                live = True
            else:
                static = True
        self.store.put_doc(kind.doc, g["name"].lower(), g)
        for doc in self._instances_using(g["name"], kind):
            if static:  # shown as pending-reboot until RebootDBInstance (instance_lifecycle.py) clears it
                doc["params_pending_reboot"] = True
                self._save(doc, "params_pending_reboot")
            if live and doc["status"] == "available":
                # written to the configuration: a paused engine reads it when it resumes
                await run_blocking(
                    self._locked_idle, doc["id"], self.fleet.apply_params, doc, self._params_for(doc)
                )

    def _params_out(self, g: dict, req: dict) -> dict:
        """Every parameter of the group's family (AWS lists engine defaults too), the user's values
        over them; only the user's when the engine has no catalogue."""
        known = catalogue(g["family"]) or {}
        params = {n: dict(p) for n, p in known.items()}
        for k, v in g["params"].items():
            base = params.get(k) or {"ParameterName": k, "ApplyType": "dynamic", "IsModifiable": True}
            base.update(ParameterValue=v["value"], Source="user", ApplyMethod=v["apply_method"])
            params[k] = base
        out = [params[k] for k in sorted(params)]
        if req.get("Source"):
            out = [p for p in out if p["Source"] == req["Source"]]
        out = filtered(
            out,
            req,
            {"parameter-name": lambda p: p["ParameterName"], "apply-type": lambda p: p.get("ApplyType")},
        )
        return page(out, req, "Parameters")

    def _copy_group(self, kind: GroupKind, req: dict, prefix: str) -> dict:
        self._require(
            req, f"Source{prefix}Identifier", f"Target{prefix}Identifier", f"Target{prefix}Description"
        )
        source = self._get_param_group(req[f"Source{prefix}Identifier"], kind)
        target = req[f"Target{prefix}Identifier"]
        g = self._new_group(
            kind, target, source["family"], req[f"Target{prefix}Description"], req.get("Tags")
        )
        g["params"] = {k: dict(v) for k, v in source["params"].items()}
        self.store.put_doc(kind.doc, g["name"].lower(), g)
        return {kind.label: self._group_out(g, kind)}

    def _delete_group(self, kind: GroupKind, name: str | None) -> None:
        if (name or "").startswith("default."):
            raise m.fault(
                "InvalidDBParameterGroupState", f"Default parameter group {name} cannot be deleted."
            )
        g = self._get_param_group(name, kind)
        if self._in_use_by(g["name"], kind):
            raise m.fault("InvalidDBParameterGroupState", f"Parameter group {name} is in use.")
        self.store.delete_doc(kind.doc, g["name"].lower())

    def _describe_groups(self, kind: GroupKind, req: dict) -> dict:
        name = req.get(f"{kind.label}Name")
        groups = (
            [self._get_param_group(name, kind)]
            if name
            else [{**g, "family": m.current_family(g["family"])} for g in self.store.list_docs(kind.doc)]
        )
        key = f"{kind.label}s"
        resp = page(groups, req, key)
        resp[key] = [self._group_out(g, kind) for g in resp[key]]
        return resp

    def _engine_defaults(self, family: str | None, req: dict) -> dict:
        self._require(req, "DBParameterGroupFamily")
        m.check_family(family or "")
        resp = self._params_out({"family": family, "params": {}}, req)
        return {"EngineDefaults": {"DBParameterGroupFamily": family, **resp}}

    # -- DB parameter groups -----------------------------------------------------------------------

    def create_db_parameter_group(self, ctx: RequestContext, req: dict) -> dict:
        self._require(req, "DBParameterGroupName", "DBParameterGroupFamily", "Description")
        g = self._new_group(
            INSTANCE,
            req["DBParameterGroupName"],
            req["DBParameterGroupFamily"],
            req["Description"],
            req.get("Tags"),
        )
        return {"DBParameterGroup": self._group_out(g, INSTANCE)}

    def describe_db_parameter_groups(self, ctx: RequestContext, req: dict) -> dict:
        return self._describe_groups(INSTANCE, req)

    async def modify_db_parameter_group(self, ctx: RequestContext, req: dict) -> dict:
        self._require(req, "DBParameterGroupName", "Parameters")
        await self._modify_group(INSTANCE, req["DBParameterGroupName"], req["Parameters"])
        return {"DBParameterGroupName": req["DBParameterGroupName"]}

    async def reset_db_parameter_group(self, ctx: RequestContext, req: dict) -> dict:
        return await self._reset(INSTANCE, req)

    async def _reset(self, kind: GroupKind, req: dict) -> dict:
        name = req.get(f"{kind.label}Name")
        g = self._get_param_group(name, kind)
        if req.get("ResetAllParameters"):
            # as on AWS: dynamic parameters are reset at once, static ones at the next reboot
            known = catalogue(g["family"]) or {}
            changes = [
                {
                    "ParameterName": k,
                    "ApplyMethod": "pending-reboot"
                    if known.get(k, {}).get("ApplyType") == "static"
                    else "immediate",
                }
                for k in g["params"]
            ]
        else:
            changes = req.get("Parameters") or []
            if not changes:
                raise m.fault(
                    "InvalidParameterCombination", "Either ResetAllParameters or Parameters must be given."
                )
        await self._modify_group(kind, name, changes, reset=True)
        return {f"{kind.label}Name": g["name"]}

    def describe_db_parameters(self, ctx: RequestContext, req: dict) -> dict:
        return self._params_out(self._get_param_group(req["DBParameterGroupName"]), req)

    def describe_engine_default_parameters(self, ctx: RequestContext, req: dict) -> dict:
        return self._engine_defaults(req.get("DBParameterGroupFamily"), req)

    def copy_db_parameter_group(self, ctx: RequestContext, req: dict) -> dict:
        return self._copy_group(INSTANCE, req, "DBParameterGroup")

    def delete_db_parameter_group(self, ctx: RequestContext, req: dict) -> dict:
        self._delete_group(INSTANCE, req.get("DBParameterGroupName"))
        return {}

    # -- DB cluster parameter groups ---------------------------------------------------------------

    def create_db_cluster_parameter_group(self, ctx: RequestContext, req: dict) -> dict:
        self._require(req, "DBClusterParameterGroupName", "DBParameterGroupFamily", "Description")
        family = req["DBParameterGroupFamily"]
        # Aurora's, and those of Multi-AZ DB clusters (engine mysql or postgres)
        if not family.startswith(("aurora-postgresql", "aurora-mysql", "postgres", "mysql")):
            raise m.fault(
                "InvalidParameterValue",
                f"Strata runs DB clusters of aurora-postgresql, aurora-mysql, postgres and mysql: "
                f"family {family} is not served.",
            )
        g = self._new_group(
            CLUSTER, req["DBClusterParameterGroupName"], family, req["Description"], req.get("Tags")
        )
        return {"DBClusterParameterGroup": self._group_out(g, CLUSTER)}

    def describe_db_cluster_parameter_groups(self, ctx: RequestContext, req: dict) -> dict:
        return self._describe_groups(CLUSTER, req)

    async def modify_db_cluster_parameter_group(self, ctx: RequestContext, req: dict) -> dict:
        self._require(req, "DBClusterParameterGroupName", "Parameters")
        await self._modify_group(CLUSTER, req["DBClusterParameterGroupName"], req["Parameters"])
        return {"DBClusterParameterGroupName": req["DBClusterParameterGroupName"]}

    async def reset_db_cluster_parameter_group(self, ctx: RequestContext, req: dict) -> dict:
        return await self._reset(CLUSTER, req)

    def describe_db_cluster_parameters(self, ctx: RequestContext, req: dict) -> dict:
        return self._params_out(self._get_param_group(req.get("DBClusterParameterGroupName"), CLUSTER), req)

    def describe_engine_default_cluster_parameters(self, ctx: RequestContext, req: dict) -> dict:
        return self._engine_defaults(req.get("DBParameterGroupFamily"), req)

    def copy_db_cluster_parameter_group(self, ctx: RequestContext, req: dict) -> dict:
        return self._copy_group(CLUSTER, req, "DBClusterParameterGroup")

    def delete_db_cluster_parameter_group(self, ctx: RequestContext, req: dict) -> dict:
        self._delete_group(CLUSTER, req.get("DBClusterParameterGroupName"))
        return {}
