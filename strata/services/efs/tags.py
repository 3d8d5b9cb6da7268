"""The tags of file systems and access points (mixed into EFSProvider): the legacy operations
(CreateTags, DeleteTags, DescribeTags: file systems only, Marker pages) and the current ones
(TagResource, UntagResource, ListTagsForResource: a file system or an access point by id, NextToken
pages). Tags live in the resource's record (`tags`), checked against EFS's limits
(strata.services.efs.limits.check_tags)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strata.services.efs import limits as lim

if TYPE_CHECKING:
    from strata.context import RequestContext
    from strata.storage.metadata import MetadataStore


class TagsMixin:
    if TYPE_CHECKING:  # what EFSProvider (and its MountTargetsMixin) give it
        store: MetadataStore

        def _check(self, ctx: RequestContext, req: dict) -> None: ...
        def _fs(self, ctx: RequestContext, value: str | None) -> dict: ...
        def _access_point(self, ctx: RequestContext, value: str | None) -> dict: ...

    def _resource(self, ctx: RequestContext, resource_id: str) -> tuple[str, dict]:
        if "fsap-" in resource_id:
            ap = self._access_point(ctx, resource_id)
            return "ap", ap
        return "fs", self._fs(ctx, resource_id)

    def _set_tags(self, kind: str, doc: dict, tags: dict[str, str]) -> None:
        doc["tags"] = tags
        self.store.put_doc(kind, doc["id"], doc)

    def create_tags(self, ctx: RequestContext, req: dict) -> dict:
        self._check(ctx, req)
        doc = self._fs(ctx, req["FileSystemId"])
        self._set_tags("fs", doc, lim.check_tags(req["Tags"], doc["tags"]))
        return {}

    def delete_tags(self, ctx: RequestContext, req: dict) -> dict:
        self._check(ctx, req)
        doc = self._fs(ctx, req["FileSystemId"])
        self._set_tags("fs", doc, {k: v for k, v in doc["tags"].items() if k not in req["TagKeys"]})
        return {}

    def describe_tags(self, ctx: RequestContext, req: dict) -> dict:
        self._check(ctx, req)
        doc = self._fs(ctx, req["FileSystemId"])
        items = [{"id": f"{i:08d}", **t} for i, t in enumerate(lim.tag_list(doc["tags"]))]
        shown, marker = lim.page(items, req.get("Marker"), req.get("MaxItems") or 100)
        out: dict[str, Any] = {"Tags": [{"Key": t["Key"], "Value": t["Value"]} for t in shown]}
        if req.get("Marker"):
            out["Marker"] = req["Marker"]
        if marker:
            out["NextMarker"] = marker
        return out

    def tag_resource(self, ctx: RequestContext, req: dict) -> dict:
        self._check(ctx, req)
        kind, doc = self._resource(ctx, req["ResourceId"])
        self._set_tags(kind, doc, lim.check_tags(req["Tags"], doc["tags"]))
        return {}

    def untag_resource(self, ctx: RequestContext, req: dict) -> dict:
        self._check(ctx, req)
        kind, doc = self._resource(ctx, req["ResourceId"])
        self._set_tags(kind, doc, {k: v for k, v in doc["tags"].items() if k not in req["TagKeys"]})
        return {}

    def list_tags_for_resource(self, ctx: RequestContext, req: dict) -> dict:
        self._check(ctx, req)
        _, doc = self._resource(ctx, req["ResourceId"])
        items = [{"id": f"{i:08d}", **t} for i, t in enumerate(lim.tag_list(doc["tags"]))]
        shown, token = lim.page(items, req.get("NextToken"), req.get("MaxResults") or 100)
        out: dict[str, Any] = {"Tags": [{"Key": t["Key"], "Value": t["Value"]} for t in shown]}
        if token:
            out["NextToken"] = token
        return out
