"""Scalable targets, scaling policies and scaling activities, kept as documents in the service's
SQLite file (strata.storage.MetadataStore), keyed so a prefix lists one target's records in order.

    target    scope|namespace|resource|dimension
    policy    <target key>|<policy name>
    activity  <target key>|<start time, fixed width>|<id>     (kept six weeks, as AWS does)
"""

from __future__ import annotations

import uuid
from pathlib import Path

from strata.storage import MetadataStore

ACTIVITY_DAYS = 42


def target_key(scope: str, namespace: str, resource: str, dimension: str) -> str:
    return f"{scope}|{namespace}|{resource}|{dimension}"


class Records:
    def __init__(self, path: Path, fsync: bool) -> None:
        self.db = MetadataStore(path, fsync=fsync)

    def close(self) -> None:
        self.db.close()

    # -- targets ----------------------------------------------------------------------------------

    def target(self, key: str) -> dict | None:
        return self.db.get_doc("target", key)

    def targets(self, scope: str = "") -> list[dict]:
        return self.db.list_docs("target", f"{scope}|" if scope else "")

    def put_target(self, target: dict) -> None:
        self.db.put_doc("target", target["key"], target)

    def delete_target(self, target: dict) -> None:
        for policy in self.policies(target):
            self.db.delete_doc("policy", policy["key"])
        self.db.delete_doc("target", target["key"])

    def scaled(self, target: dict, alarm: str, at: float) -> None:
        target.setdefault("last_scaled", {})[alarm] = at
        self.put_target(target)

    # -- policies ---------------------------------------------------------------------------------

    def policies(self, target: dict) -> list[dict]:
        return self.db.list_docs("policy", target["key"] + "|")

    def all_policies(self, scope: str) -> list[dict]:
        return self.db.list_docs("policy", f"{scope}|")

    def put_policy(self, policy: dict) -> None:
        self.db.put_doc("policy", policy["key"], policy)

    def delete_policy(self, policy: dict) -> None:
        self.db.delete_doc("policy", policy["key"])

    # -- activities -------------------------------------------------------------------------------

    def activity(
        self,
        target: dict,
        units: int,
        read: bool,
        cause: str,
        at: float,
        status: str,
        message: str = "",
    ) -> dict:
        what = "read" if read else "write"
        doc = {
            "ActivityId": str(uuid.uuid4()),
            "ServiceNamespace": target["ServiceNamespace"],
            "ResourceId": target["ResourceId"],
            "ScalableDimension": target["ScalableDimension"],
            "Description": f"Setting {what} capacity units to {units}.",
            "Cause": cause,
            "StartTime": at,
            "EndTime": at,
            "StatusCode": status,
        }
        if message:
            doc["StatusMessage"] = message
        key = f"{target['key']}|{at:017.6f}|{doc['ActivityId']}"
        self.db.put_doc("activity", key, doc)
        for old in self.db.list_docs("activity", target["key"] + "|"):
            if old["StartTime"] < at - ACTIVITY_DAYS * 86400:
                self.db.delete_doc(
                    "activity", f"{target['key']}|{old['StartTime']:017.6f}|{old['ActivityId']}"
                )
        return doc

    def activities(self, prefix: str) -> list[dict]:
        return self.db.list_docs("activity", prefix)
