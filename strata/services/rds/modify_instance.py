"""ModifyDBInstance, and the modifications it holds for the maintenance window.

With ApplyImmediately false (AWS's default: Terraform's `apply_immediately = false`), the members
AWS documents as "applied during the next maintenance window unless ApplyImmediately" wait in the
instance record (`pending`, shown as PendingModifiedValues; an option group as a
`pending-maintenance-apply` membership, and so is a change of its group's options that
ModifyOptionGroup made without ApplyImmediately, option_groups.py) until the instance's
PreferredMaintenanceWindow next opens on the simulated clock (the scheduler's `rds.maintenance`
rule), or until a later ModifyDBInstance with ApplyImmediately true applies them with its own.
Every other member applies at once whatever ApplyImmediately says, as on AWS (MasterUserPassword,
the backup and maintenance windows, security groups, the parameter group, deletion protection, a
retention change between two non-zero values). RebootDBInstance does not apply held modifications
(AWS applies only pending parameter-group changes at a reboot). Sources: the ModifyDBInstance API
reference per member, the RDS User Guide's "Settings for DB instances", and ModifyOptionGroup's.
"""

from __future__ import annotations

from strata.context import RequestContext
from strata.services.base import run_blocking
from strata.services.rds import model as m
from strata.services.rds import security
from strata.services.rds.instances import InstanceOperations
from strata.services.rds.options import HELD_OPTIONS
from strata.services.rds.parameter_groups import INSTANCE
from strata.sim import timings
from strata.sim.clock import clock
from strata.sim.windows import latest_weekly_window_start

# ModifyDBInstance members that wait for the maintenance window -> the instance record's field.
# BackupRetentionPeriod waits only when it turns backups on or off (0 <-> non-zero).
DEFERRED = {
    "DBInstanceClass": "class",
    "AllocatedStorage": "allocated_storage",
    "StorageType": "storage_type",
    "MultiAZ": "multi_az",
    "BackupRetentionPeriod": "backup_retention",
    "OptionGroupName": "option_group",
}


class ModifyInstanceOperations(InstanceOperations):
    async def modify_db_instance(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._get_instance(req.get("DBInstanceIdentifier"))
        if doc["status"] not in ("available", "stopped"):
            raise m.invalid_state(doc["id"], doc["status"])
        if req.get("NewDBInstanceIdentifier"):
            raise m.fault("InvalidParameterCombination", "Renaming a DB instance is not supported by Strata.")
        self._same_version(req, doc["engine_version"], doc["engine"])
        values = self._deferrable(doc, req)
        tier = req.get("PromotionTier")
        if tier is not None:
            tier = m.check_promotion_tier(tier, m.ENGINES[doc["engine"]].aurora)
        m.check_backup_window(req.get("PreferredBackupWindow") or None)
        maintenance = m.check_maintenance_window(req.get("PreferredMaintenanceWindow") or None)
        if maintenance or req.get("PreferredBackupWindow"):
            m.check_windows_apart(
                req.get("PreferredBackupWindow") or doc["backup_window"],
                maintenance or doc["maintenance_window"],
            )
        new_group = req.get("DBParameterGroupName")
        if new_group:
            self._group_of_family(new_group, INSTANCE, doc["engine"], doc["engine_version"])
        if req.get("VpcSecurityGroupIds") and doc.get("cluster"):
            raise m.fault("InvalidParameterCombination", security.MANAGED_BY_CLUSTER)
        password = req.get("MasterUserPassword")
        if password:
            m.check_password(password)
        # -- checked: from here on the request is applied (or held)
        now = self._hold(doc, values, bool(req.get("ApplyImmediately")))
        if maintenance:
            doc["maintenance_window"] = maintenance
        if req.get("PreferredBackupWindow"):
            doc["backup_window"] = req["PreferredBackupWindow"]
        for key, field in (
            ("DeletionProtection", "deletion_protection"),
            ("CopyTagsToSnapshot", "copy_tags_to_snapshot"),
            ("PubliclyAccessible", "publicly_accessible"),
        ):
            if req.get(key) is not None:
                doc[field] = bool(req[key])
        if new_group:
            doc["param_group"] = new_group
        if tier is not None:
            doc["promotion_tier"] = tier
        if req.get("VpcSecurityGroupIds"):
            doc["vpc_groups"] = security.vpc_groups(
                self,
                req["VpcSecurityGroupIds"],
                self._subnet_group_vpc(doc.get("subnet_group")),
                egress=True,
            )
        change_az, new_options = self._set_deferrable(doc, now)
        live_work = bool(password or change_az or new_group or new_options) and doc["status"] == "available"
        # under `--timings aws` every modification of an available instance takes its time
        live_work = live_work or (
            doc["status"] == "available" and timings.seconds(self.settings, "rds_instance_modify") > 0
        )
        if live_work:
            doc["status"] = "modifying"
        self._save(doc)
        if req.get("VpcSecurityGroupIds"):
            await run_blocking(security.guard, self, doc)
        if live_work:
            self._spawn(
                doc["id"],
                self._apply_modify,
                doc["id"],
                password,
                now["MultiAZ"] if change_az else None,
                bool(new_group or new_options),
            )
        self._event(
            doc["id"],
            "db-instance",
            "Finished applying modification to DB instance",
            ["configuration change"],
        )
        return {"DBInstance": self._instance_out(doc)}

    def _deferrable(self, doc: dict, req: dict) -> dict:
        """The members of `req` that may wait for the maintenance window, checked and in the
        record's form (member -> value)."""
        values: dict = {}
        if req.get("OptionGroupName"):
            values["OptionGroupName"] = self._option_group_for(
                req["OptionGroupName"], doc["engine"], doc["engine_version"]
            )
        if req.get("DBInstanceClass"):
            values["DBInstanceClass"] = m.check_class(req["DBInstanceClass"])
        if req.get("AllocatedStorage"):
            if int(req["AllocatedStorage"]) < doc["allocated_storage"]:
                raise m.fault("InvalidParameterCombination", "Can't reduce allocated storage.")
            values["AllocatedStorage"] = int(req["AllocatedStorage"])
        if req.get("StorageType"):
            values["StorageType"] = req["StorageType"]
        if req.get("BackupRetentionPeriod") is not None:
            values["BackupRetentionPeriod"] = m.check_retention(req["BackupRetentionPeriod"])
        if req.get("MultiAZ") is not None:
            values["MultiAZ"] = bool(req["MultiAZ"])
            if values["MultiAZ"] != doc["multi_az"]:
                if doc.get("source"):
                    raise m.fault(
                        "InvalidParameterCombination", "A read replica cannot be made Multi-AZ by Strata."
                    )
                if any(r.startswith("arn:") for r in doc.get("replicas", [])):
                    raise m.fault(
                        "InvalidParameterCombination",
                        "Strata does not make a DB instance with cross-region read replicas Multi-AZ.",
                    )
        return values

    def _hold(self, doc: dict, values: dict, apply_immediately: bool) -> dict:
        """Record in `doc` what waits for the maintenance window; the values to apply now.

        With ApplyImmediately, every held modification is applied with the request's (its own
        values win) and nothing stays held. Without, a deferred member asking for what the
        instance already has cancels a held change of it (how AWS reverts one)."""
        pending = dict(doc.get("pending") or {})
        if apply_immediately:
            doc.pop("pending", None)
            doc.pop("pending_since", None)
            return {**pending, **values}
        now = {}
        for member, value in values.items():
            waits = member in DEFERRED and (
                member != "BackupRetentionPeriod" or (value == 0) != (doc["backup_retention"] == 0)
            )
            if not waits:
                now[member] = value
            elif value == doc.get(DEFERRED[member]):
                pending.pop(member, None)
            else:
                pending[member] = value
        if pending:
            doc["pending"] = pending
            doc.setdefault("pending_since", clock.time())
        else:
            doc.pop("pending", None)
            doc.pop("pending_since", None)
        return now

    def _set_deferrable(self, doc: dict, values: dict) -> tuple[bool, bool]:
        """Set the record's fields from checked `values`; whether the engines must change: the
        Multi-AZ standby, and a MariaDB option group's plugins."""
        old_options = doc.get("option_group")
        for member, field in DEFERRED.items():
            if member in values and member != "MultiAZ":
                doc[field] = values[member]
        change_az = "MultiAZ" in values and values["MultiAZ"] != doc["multi_az"]
        # a new group, or its options changed while the instance ran the ones before (held)
        changed = doc.get("option_group") != old_options or HELD_OPTIONS in values
        new_options = changed and doc["kind"] == "mariadb"
        return change_az, new_options

    def _apply_modify(
        self, ident: str, password: str | None, multi_az: bool | None, params_changed: bool
    ) -> None:
        started = clock.time()
        doc = self._get_instance(ident)
        params = self._params_for(doc)
        if password:
            self.fleet.primary(doc).set_password(password)
        if params_changed:
            self.fleet.apply_params(doc, params)
        if multi_az is True:
            doc["multi_az"], doc["secondary_az"] = True, self._other_az(doc["az"], doc.get("subnet_group"))
            self.fleet.add_standby(doc, doc["secondary_az"], params)
        elif multi_az is False:
            self.fleet.remove_standby(doc)
            doc["multi_az"], doc["secondary_az"] = False, None
        self._save(doc, "nodes", "next_node", "multi_az", "secondary_az")
        timings.wait_since(started, timings.seconds(self.settings, "rds_instance_modify"))
        self._set_status(ident, "available")

    # -- the maintenance window --------------------------------------------------------------------

    async def _maintenance_rule(self, since: float, until: float) -> dict[str, int]:
        """The scheduler's `rds.maintenance` rule: apply an instance's held modifications once its
        weekly PreferredMaintenanceWindow has opened after they were held.

        Decided from the record and `until` only (a window opening after `pending_since`, at or
        before `until`), so a run again to the same instant, or after a restart, does nothing
        new. An instance that is not available then (busy, stopped) keeps them, counted
        "deferred", and gets them at a later run while the window has still opened since."""
        counts = {"applied": 0, "deferred": 0}
        for doc in self.store.list_docs("instance"):
            if not doc.get("pending"):
                continue
            with self.store.acting_for(doc):
                opened = latest_weekly_window_start(doc["maintenance_window"], until)
                if opened <= doc.get("pending_since", 0.0):
                    continue
                if doc["status"] != "available" or self._is_busy(doc["id"]):
                    counts["deferred"] += 1
                    continue
                self._apply_held(doc)
                counts["applied"] += 1
        return counts

    def _apply_held(self, doc: dict) -> None:
        """Apply `doc`'s held modifications now (the maintenance window opened)."""
        self._meter_instance(doc)  # the hours before the change are billed as they ran
        values = self._hold(doc, {}, True)
        change_az, new_options = self._set_deferrable(doc, values)
        if change_az or new_options:
            doc["status"] = "modifying"
        self._save(doc)
        if change_az or new_options:
            self._spawn(
                doc["id"],
                self._apply_modify,
                doc["id"],
                None,
                values["MultiAZ"] if change_az else None,
                new_options,
            )
        self._event(
            doc["id"],
            "db-instance",
            "Finished applying pending modifications to DB instance in its maintenance window",
            ["maintenance"],
        )
