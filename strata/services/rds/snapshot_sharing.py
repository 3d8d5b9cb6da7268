"""Sharing manual DB snapshots and DB cluster snapshots with other accounts:
Modify/DescribeDBSnapshotAttribute(s) and Modify/DescribeDBClusterSnapshotAttribute(s) (attribute
`restore`), and finding a snapshot another account shared.

A snapshot's `restore` list holds the account IDs it is shared with, or `all` (public). Another
account of the same Strata then names it by its ARN (`arn:aws:rds:<region>:<owner>:snapshot:<id>`)
(`...:cluster-snapshot:<id>` for a cluster snapshot) to restore it (RestoreDBInstanceFromDBSnapshot,
RestoreDBClusterFromSnapshot) or copy it into its own account (CopyDBSnapshot), and sees it in
DescribeDBSnapshots / DescribeDBClusterSnapshots with IncludeShared / IncludePublic.

Encrypted snapshots are not shared (refused): sharing one needs the other account to use the
owner's KMS key through the key policy, which Strata's restore does not follow yet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.rds import model as m
from strata.services.rds.core import RDSCore

MAX_SHARED_ACCOUNTS = 20  # accounts one manual snapshot can be shared with (RDS quota)
_ACCOUNT = re.compile(r"^\d{12}$")


@dataclass(frozen=True)
class SnapshotKind:
    doc: str  # record kind in the store
    arn: str  # ARN resource type
    label: str  # AWS's name: DBSnapshot / DBClusterSnapshot
    missing: str  # the not-found error code
    invalid_state: str  # the wrong-state error code

    def arn_pattern(self) -> re.Pattern:
        return re.compile(rf"^arn:aws[a-z-]*:rds:([a-z0-9-]+):(\d{{12}}):{self.arn}:(.+)$")

    def not_found(self, ident: str) -> ServiceError:
        return m.fault(self.missing, f"{self.label} {ident} not found.", 404)


DB_SNAPSHOT = SnapshotKind(
    "snapshot", "snapshot", "DBSnapshot", "DBSnapshotNotFound", "InvalidDBSnapshotState"
)
CLUSTER_SNAPSHOT = SnapshotKind(
    "cluster_snapshot",
    "cluster-snapshot",
    "DBClusterSnapshot",
    "DBClusterSnapshotNotFoundFault",
    "InvalidDBClusterSnapshotStateFault",
)


def shared_with(snap: dict, account: str) -> bool:
    restore = snap.get("restore") or []
    return account in restore or "all" in restore


class SnapshotSharingOperations(RDSCore):
    def _shared_snapshot(
        self, ident: str, other_region: bool = False, kind: SnapshotKind = DB_SNAPSHOT
    ) -> dict | None:
        """The snapshot an ARN of another scope names: another account's that it shared with the
        caller, or (`other_region`, for CopyDBSnapshot) the caller's own in another region. None
        when `ident` is not such an ARN."""
        match = kind.arn_pattern().match(ident)
        if match is None:
            return None
        region, owner, snap_id = match.groups()
        if (owner, region) == (self.account, self.region):
            return None
        if region != self.region and not (other_region and owner == self.account):
            raise kind.not_found(ident)
        with self.store.acting_as(owner, region):
            snap = self.store.get_doc(kind.doc, snap_id) or self.store.get_doc(kind.doc, snap_id.lower())
        if snap is None or (
            owner != self.account and (snap["type"] != "manual" or not shared_with(snap, self.account))
        ):
            raise kind.not_found(ident)
        return snap

    def _snapshots_shared_with_me(
        self, public: bool, shared: bool, kind: SnapshotKind = DB_SNAPSHOT
    ) -> list[dict]:
        """Other accounts' manual snapshots in this region shared with the caller (`shared`) or
        with everyone (`public`)."""
        out = []
        for snap in self.store.every_scope(kind.doc):
            owner = self.store.owner(snap)
            if owner == self.account or self.store.region_of(snap) != self.region or snap["type"] != "manual":
                continue
            restore = snap.get("restore") or []
            if (shared and self.account in restore) or (public and "all" in restore):
                out.append(snap)
        return out

    def _snapshot_names(self, snap: dict, kind: SnapshotKind) -> tuple[str, str]:
        """(identifier, ARN) as a describe shows them: another account's is named by its ARN."""
        owner = self.store.owner(snap)
        arn = m.arn(self.store.region_of(snap), owner, kind.arn, snap["id"])
        return (snap["id"] if owner == self.account else arn), arn

    def _own_snapshot(self, ident: str, kind: SnapshotKind = DB_SNAPSHOT) -> dict:
        snap_id = ident.split(f":{kind.arn}:")[-1]
        snap = self.store.get_doc(kind.doc, snap_id) or self.store.get_doc(kind.doc, snap_id.lower())
        if snap is None:
            raise kind.not_found(snap_id)
        return snap

    def _attributes_out(self, snap: dict, kind: SnapshotKind = DB_SNAPSHOT) -> dict:
        return {
            f"{kind.label}Identifier": snap["id"],
            f"{kind.label}Attributes": [
                {"AttributeName": "restore", "AttributeValues": list(snap.get("restore") or [])}
            ],
        }

    def _modify_attribute(self, req: dict, kind: SnapshotKind) -> dict:
        self._require(req, f"{kind.label}Identifier", "AttributeName")
        snap = self._own_snapshot(req[f"{kind.label}Identifier"], kind)
        if req["AttributeName"] != "restore":
            raise m.fault(
                "InvalidParameterValue", f"Invalid attribute name: {req['AttributeName']}. Use restore."
            )
        add, remove = req.get("ValuesToAdd") or [], req.get("ValuesToRemove") or []
        for value in add + remove:
            if value != "all" and not _ACCOUNT.match(value):
                raise m.fault("InvalidParameterValue", f"Invalid AWS account ID: {value}")
        if snap["type"] != "manual":
            raise m.fault(kind.invalid_state, "Only manual snapshots can be shared.")
        if add and snap.get("encrypted"):
            raise m.fault(
                "InvalidParameterCombination",
                "Strata does not share encrypted snapshots: the other account could not use the "
                "snapshot's KMS key to restore it.",
            )
        restore = [v for v in snap.get("restore") or [] if v not in remove]
        restore += [v for v in add if v not in restore]
        if len([v for v in restore if v != "all"]) > MAX_SHARED_ACCOUNTS:
            raise m.fault(
                "SharedSnapshotQuotaExceeded",
                f"You have exceeded the maximum number of accounts ({MAX_SHARED_ACCOUNTS}) with which "
                "a snapshot can be shared.",
            )
        snap["restore"] = restore
        self.store.put_doc(kind.doc, snap["id"], snap)
        return {f"{kind.label}AttributesResult": self._attributes_out(snap, kind)}

    def modify_db_snapshot_attribute(self, ctx: RequestContext, req: dict) -> dict:
        return self._modify_attribute(req, DB_SNAPSHOT)

    def describe_db_snapshot_attributes(self, ctx: RequestContext, req: dict) -> dict:
        self._require(req, "DBSnapshotIdentifier")
        snap = self._own_snapshot(req["DBSnapshotIdentifier"])
        return {"DBSnapshotAttributesResult": self._attributes_out(snap)}

    def modify_db_cluster_snapshot_attribute(self, ctx: RequestContext, req: dict) -> dict:
        return self._modify_attribute(req, CLUSTER_SNAPSHOT)

    def describe_db_cluster_snapshot_attributes(self, ctx: RequestContext, req: dict) -> dict:
        self._require(req, "DBClusterSnapshotIdentifier")
        snap = self._own_snapshot(req["DBClusterSnapshotIdentifier"], CLUSTER_SNAPSHOT)
        return {"DBClusterSnapshotAttributesResult": self._attributes_out(snap, CLUSTER_SNAPSHOT)}
