"""Tags on cache clusters, replication groups, snapshots, users, user groups and cache parameter
groups, addressed by ARN."""

from __future__ import annotations

from typing import TYPE_CHECKING

from strata.context import RequestContext
from strata.services.elasticache import validate as v
from strata.services.elasticache.core import ElastiCacheCore
from strata.services.elasticache.errors import fault

if TYPE_CHECKING:
    from strata.services.elasticache.provider import ElastiCacheProvider

# ARN resource type -> (record kind, where its tags live in the record, not-found fault)
_KINDS = {
    "cluster": ("cluster", "tags", "CacheClusterNotFoundFault"),
    "replicationgroup": ("group", "tags", "ReplicationGroupNotFoundFault"),
    "snapshot": ("snapshot", "_tags", "SnapshotNotFoundFault"),
    "user": ("user", "tags", "UserNotFoundFault"),
    "usergroup": ("user_group", "tags", "UserGroupNotFoundFault"),
    "subnetgroup": ("subnet_group", "tags", "CacheSubnetGroupNotFoundFault"),
    "parametergroup": ("param_group", "tags", "CacheParameterGroupNotFoundFault"),
    "serverlesscache": ("serverless", "tags", "ServerlessCacheNotFoundFault"),
    "serverlesscachesnapshot": ("serverless_snapshot", "tags", "ServerlessCacheSnapshotNotFoundFault"),
}
MAX_TAGS = 50


class TagOperations(ElastiCacheCore):
    """ListTagsForResource / AddTagsToResource / RemoveTagsFromResource (a mixin of the provider)."""

    def _tagged(self: ElastiCacheProvider, arn: str | None) -> tuple[str, dict, str]:
        parts = (arn or "").split(":")
        if len(parts) != 7 or parts[0] != "arn" or parts[2] != "elasticache" or parts[5] not in _KINDS:
            raise fault("InvalidARNFault", f"The ARN {arn} is not a valid ElastiCache resource ARN.")
        kind, field, missing = _KINDS[parts[5]]
        doc = self.store.get_doc(kind, parts[6].lower() if kind != "snapshot" else parts[6])
        # another account's or another region's
        if (
            doc is None
            or parts[4] != (self.store.caller() or self.settings.account_id)
            or parts[3] != self.store.region()
        ):
            raise fault(missing, f"{parts[5]} {parts[6]} not found.")
        return kind, doc, field

    def _doc_id(self: ElastiCacheProvider, kind: str, doc: dict) -> str:
        return doc["SnapshotName"] if kind == "snapshot" else doc["id"]

    def list_tags_for_resource(self: ElastiCacheProvider, ctx: RequestContext, req: dict) -> dict:
        _, doc, field = self._tagged(req.get("ResourceName"))
        return {"TagList": doc.get(field) or []}

    def add_tags_to_resource(self: ElastiCacheProvider, ctx: RequestContext, req: dict) -> dict:
        kind, doc, field = self._tagged(req.get("ResourceName"))
        tags = {t["Key"]: t["Value"] for t in doc.get(field) or []}
        tags.update({t["Key"]: t["Value"] for t in v.tags(req.get("Tags"))})
        if len(tags) > MAX_TAGS:
            raise v.fault_tags()
        doc[field] = [{"Key": k, "Value": val} for k, val in tags.items()]
        self.store.put_doc(kind, self._doc_id(kind, doc), doc)
        return {"TagList": doc[field]}

    def remove_tags_from_resource(self: ElastiCacheProvider, ctx: RequestContext, req: dict) -> dict:
        kind, doc, field = self._tagged(req.get("ResourceName"))
        current = doc.get(field) or []
        keys = set(req.get("TagKeys") or [])
        missing = keys - {t["Key"] for t in current}
        if missing:
            raise fault("TagNotFoundFault", f"Tag(s) {', '.join(sorted(missing))} not found on the resource.")
        doc[field] = [t for t in current if t["Key"] not in keys]
        self.store.put_doc(kind, self._doc_id(kind, doc), doc)
        return {"TagList": doc[field]}
