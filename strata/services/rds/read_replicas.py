"""Read replicas of DB instances: CreateDBInstanceReadReplica and PromoteReadReplica.

A replica is an instance whose engine streams from its source's primary; the source lists its
replicas (a cross-region one by its ARN, as RDS does), and a replica names its source (`source`,
shown as ReadReplicaSourceDBInstanceIdentifier). Promotion makes it a standalone instance; deleting
a source promotes its replicas (instances.py `_delete`). Strata makes replicas of the caller's own
instances only, does not chain them, and keeps no cross-region replica of a Multi-AZ or encrypted
source.
"""

from __future__ import annotations

from strata.context import RequestContext
from strata.services.base import run_blocking
from strata.services.rds import model as m
from strata.services.rds import security
from strata.services.rds.instances import INSTANCE_ARN, InstanceOperations


class ReadReplicaOperations(InstanceOperations):
    async def create_db_instance_read_replica(self, ctx: RequestContext, req: dict) -> dict:
        ref = req.get("SourceDBInstanceIdentifier") or ""
        match = INSTANCE_ARN.match(ref)
        if match and match.group(2) != self.account:
            raise m.fault(
                "InvalidParameterCombination", "Strata makes read replicas of the caller's own DB instances."
            )
        cross_region = bool(match) and match.group(1) != self.region  # type: ignore[union-attr]
        with self._in_scope_of(ref) as source_id:
            source = self._get_instance(source_id)
            source_arn = self._arn_of(source)
        if cross_region:
            if source["multi_az"]:
                raise m.fault(
                    "InvalidParameterCombination",
                    "Strata does not keep cross-region read replicas of a Multi-AZ DB instance.",
                )
            if source.get("kms_key_id"):
                raise m.fault(
                    "InvalidParameterCombination",
                    "Strata does not make cross-region read replicas of encrypted DB instances.",
                )
        if source["status"] != "available":
            raise m.invalid_state(source["id"], source["status"])
        if source.get("source"):
            raise m.fault(
                "InvalidParameterCombination", "Strata does not chain read replicas (replica of a replica)."
            )
        if len(source.get("replicas", [])) >= m.MAX_READ_REPLICAS:
            raise m.fault(
                "InvalidParameterCombination",
                f"Source instance {source['id']} already has {m.MAX_READ_REPLICAS} read replicas.",
            )
        info = m.ENGINES[source["engine"]]
        req = {
            **req,
            "DBInstanceClass": req.get("DBInstanceClass") or source["class"],
            "AllocatedStorage": source["allocated_storage"],
            "BackupRetentionPeriod": 0,
        }
        if req.get("KmsKeyId") and not source.get("kms_key_id"):
            raise m.fault(
                "InvalidParameterCombination",
                "Cannot create an encrypted read replica from an unencrypted DB instance.",
            )
        doc = self._new_instance_doc(
            req,
            info,
            source["master_username"],
            az=None if cross_region else source["az"],
            inherited_key=source.get("kms_key_id"),
        )
        doc.update(
            source=source_arn if cross_region else source["id"],
            db_name=source.get("db_name"),
            multi_az=False,
            backup_retention=0,
            engine_version=source["engine_version"],
        )
        self.fleet.new_node(doc, "primary", doc["az"])
        doc["primary"] = next(iter(doc["nodes"]))
        await self._encrypt_instance(doc)
        self._save(doc)
        async with self._undone_on_error(doc):
            await run_blocking(security.guard, self, doc)
        # a source lists a cross-region replica by its ARN, as RDS does
        replica_ref = self._arn_of(doc) if cross_region else doc["id"]
        with self._in_scope_of(ref):
            source = self._get_instance(source["id"])
            source["replicas"] = [*source.get("replicas", []), replica_ref]
            self.store.put_doc("instance", source["id"], source)
        self._event(doc["id"], "db-instance", f"Creating read replica of {doc['source']}", ["read replica"])
        self._spawn(doc["id"], self._build_replica, doc["id"], doc["source"])
        return {"DBInstance": self._instance_out(doc)}

    def _build_replica(self, ident: str, source_ref: str) -> None:
        doc = self._get_instance(ident)
        with self._in_scope_of(source_ref) as source_id:
            source = self._get_instance(source_id)
            lock = self.fleet.lock(source_id)
            source_node = self.fleet.primary(source)
        with lock:
            self.fleet.create_replica(source, doc, self._params_for(doc), source_node)
        self._save(doc, "nodes")
        self._hold_creation(doc)  # --timings aws
        self._set_status(ident, "available")
        self._event(ident, "db-instance", "Replication for the read replica started", ["read replica"])

    async def promote_read_replica(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._get_instance(req.get("DBInstanceIdentifier"))
        if not doc.get("source"):
            raise m.fault("InvalidDBInstanceState", f"DB instance {doc['id']} is not a read replica.")
        if doc["status"] != "available":
            raise m.invalid_state(doc["id"], doc["status"])
        if req.get("BackupRetentionPeriod") is not None:
            doc["backup_retention"] = m.check_retention(req["BackupRetentionPeriod"])
        if req.get("PreferredBackupWindow"):
            doc["backup_window"] = m.check_backup_window(req["PreferredBackupWindow"])
        doc["status"] = "modifying"
        self._save(doc)
        self._spawn(doc["id"], self._promote, doc["id"])
        return {"DBInstance": self._instance_out(doc)}

    def _promote(self, ident: str) -> None:
        doc = self._get_instance(ident)
        self.fleet.promote_replica(doc)
        self._leave_source(doc)
        doc = self._get_instance(ident)
        doc["source"] = None
        doc["status"] = "available"
        self._save(doc)
        self._event(
            ident, "db-instance", "Read replica promoted to a standalone DB instance", ["read replica"]
        )
        if doc["backup_retention"] > 0:
            self._take_automated_backup(ident)

    def _leave_source(self, doc: dict) -> None:
        """Take a replica off its source's list of replicas (the source may be in another region)."""
        if not doc.get("source"):
            return
        names = {doc["id"], self._arn_of(doc)}
        with self._in_scope_of(doc["source"]) as source_id:
            src = self.store.get_doc("instance", source_id)
            if src:
                src["replicas"] = [r for r in src.get("replicas", []) if r not in names]
                self.store.put_doc("instance", src["id"], src)
