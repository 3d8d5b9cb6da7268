"""S3's condition keys that the request members alone do not answer, for the policy engine's
`condition_key` hook: the tags an object already has (`s3:ExistingObjectTag/<key>`), the tags a
request sets (`s3:RequestObjectTag/<key>`, `s3:RequestObjectTagKeys`: from `x-amz-tagging` on
PutObject/CopyObject/CreateMultipartUpload, or the TagSet of PutObjectTagging) and the bucket
owner's account (`s3:ResourceAccount`).

Asked only when a policy has such a condition, so an object is read for its tags only then.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from strata.services.s3.acl import decided_object
from strata.services.s3.core import S3Core


def _request_tags(req: dict) -> dict[str, str] | None:
    if isinstance(req.get("Tagging"), str):  # x-amz-tagging: k=v&k2=v2
        return dict(parse_qsl(req["Tagging"], keep_blank_values=True))
    tagging = req.get("Tagging")
    if isinstance(tagging, dict) and isinstance(tagging.get("TagSet"), list):
        return {str(t.get("Key")): str(t.get("Value", "")) for t in tagging["TagSet"] if isinstance(t, dict)}
    return None


def _find(tags: dict[str, str] | None, want: str) -> str | None:
    for k, v in (tags or {}).items():
        if k.lower() == want:  # condition key names, the tag key in them included, ignore case
            return v
    return None


class ConditionKeys(S3Core):
    def condition_key(self, req: dict, key: str) -> Any:
        if key.startswith("s3:existingobjecttag/"):
            return _find(self._existing_tags(req), key.split("/", 1)[1])
        if key.startswith("s3:requestobjecttag/"):
            return _find(_request_tags(req), key.split("/", 1)[1])
        if key == "s3:requestobjecttagkeys":
            tags = _request_tags(req)
            return list(tags) if tags is not None else None
        if key == "s3:resourceaccount":
            return self.resource_account(req)  # type: ignore[attr-defined]
        return None

    def _existing_tags(self, req: dict) -> dict[str, str] | None:
        bucket, key, version = req.get("Bucket"), req.get("Key"), req.get("VersionId")
        if not isinstance(bucket, str) or not isinstance(key, str):
            return None
        if version is not None and not isinstance(version, str):
            return None
        row = decided_object(self.store, bucket, req)  # (the operation takes it: read once)
        return (row.attrs.get("tags") or None) if row is not None else None
