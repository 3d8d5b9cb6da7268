"""S3's server access log format: the lines, the log objects' keys, and the records of what
lifecycle does on its own (S3.EXPIRE.OBJECT, S3.TRANSITION_SIA.OBJECT ...), which S3 logs too.

The fields of a line, in order: bucket owner, bucket, [time], remote IP, requester, request ID,
operation, key, "request-URI", HTTP status, error code, bytes sent, object size, total time,
turn-around time, "referrer", "user-agent", version ID, host ID, signature version, cipher suite,
authentication type, host header, TLS version, access point ARN, aclRequired; '-' for none.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from strata.services.s3.lifecycle_rules import Plan
from strata.services.s3.store import BucketRow
from strata.sim.server_access_logs import Record

LIFECYCLE_REQUESTER = "AmazonS3"
# the operation S3 logs for a lifecycle transition, by target class
_TRANSITION = {
    "STANDARD_IA": "S3.TRANSITION_SIA.OBJECT",
    "ONEZONE_IA": "S3.TRANSITION_ZIA.OBJECT",
    "INTELLIGENT_TIERING": "S3.TRANSITION_INT.OBJECT",
    "GLACIER_IR": "S3.TRANSITION_GIR.OBJECT",
    "GLACIER": "S3.TRANSITION.OBJECT",
    "DEEP_ARCHIVE": "S3.TRANSITION_GDA.OBJECT",
}

# REST.<method>.<resource> as S3 names operations in its logs (others: the method and the
# operation's subresource, see rest_operation)
_REST = {
    "GetObject": "REST.GET.OBJECT",
    "HeadObject": "REST.HEAD.OBJECT",
    "PutObject": "REST.PUT.OBJECT",
    "DeleteObject": "REST.DELETE.OBJECT",
    "CopyObject": "REST.COPY.OBJECT",
    "ListObjects": "REST.GET.BUCKET",
    "ListObjectsV2": "REST.GET.BUCKET",
    "ListObjectVersions": "REST.GET.BUCKETVERSIONS",
    "HeadBucket": "REST.HEAD.BUCKET",
    "CreateBucket": "REST.PUT.BUCKET",
    "DeleteBucket": "REST.DELETE.BUCKET",
    "DeleteObjects": "REST.POST.MULTI_OBJECT_DELETE",
    "CreateMultipartUpload": "REST.POST.UPLOADS",
    "UploadPart": "REST.PUT.PART",
    "UploadPartCopy": "REST.COPY.PART",
    "CompleteMultipartUpload": "REST.POST.UPLOAD",
    "AbortMultipartUpload": "REST.DELETE.UPLOAD",
    "ListParts": "REST.GET.UPLOAD",
    "ListMultipartUploads": "REST.GET.UPLOADS",
    "GetBucketLogging": "REST.GET.LOGGING_STATUS",
    "PutBucketLogging": "REST.PUT.LOGGING_STATUS",
    "GetBucketAcl": "REST.GET.ACL",
    "GetObjectAcl": "REST.GET.ACL",
    "PutBucketAcl": "REST.PUT.ACL",
    "PutObjectAcl": "REST.PUT.ACL",
    "PostObject": "REST.POST.OBJECT",
    "RestoreObject": "REST.POST.RESTORE",
}


def rest_operation(operation: str, method: str) -> str:
    """The log's OPERATION field: REST.GET.OBJECT, REST.PUT.LOGGING_STATUS ..."""
    known = _REST.get(operation)
    if known:
        return known
    if operation.startswith("S3."):  # S3's own actions (lifecycle), named as logged
        return operation
    resource = operation
    for verb in ("Get", "Put", "Delete", "List", "Head"):
        if resource.startswith(verb):
            resource = resource[len(verb) :]
            break
    resource = resource.removeprefix("Bucket").removeprefix("Object") or "Bucket"
    snake = "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(resource))
    return f"REST.{method}.{snake.upper()}"


def _field(value: str) -> str:
    return value if value else "-"


def _quoted(value: str) -> str:
    return '"' + (value or "-").replace('"', '\\"') + '"'


def log_line(r: Record, owner_canonical_id: str) -> str:
    """One record in S3's server access log format (space-separated, '-' for none)."""
    at = datetime.fromtimestamp(r.at, UTC).strftime("[%d/%b/%Y:%H:%M:%S +0000]")
    fields = [
        owner_canonical_id,
        r.bucket,
        at,
        _field(r.remote_ip),
        _field(r.requester),
        r.request_id,
        rest_operation(r.operation, r.method),
        _field(r.key),
        _quoted(r.request_uri),
        str(r.status) if r.status else "-",
        _field(r.error_code),
        str(r.bytes_sent) if r.bytes_sent else "-",
        str(r.object_size) if r.object_size else "-",
        str(round(r.total_ms)) if r.status else "-",
        str(round(r.total_ms)) if r.status else "-",  # turn-around: Strata answers whole
        _quoted(r.referrer),
        _quoted(r.user_agent),
        _field(r.version_id),
        r.request_id,  # host id: Strata's x-amz-id-2 is the request id
        r.signature_version,
        r.tls[0] if r.tls else "-",
        r.auth_type,
        _field(r.host),
        r.tls[1] if r.tls else "-",
        _field(r.access_point),
        "Yes" if r.acl_required else "-",
    ]
    return " ".join(fields)


def log_key(config: dict, source: BucketRow, delivered_at: float, event_at: float) -> str:
    """The log object's key: SimplePrefix `prefix + YYYY-mm-DD-HH-MM-SS-<16 hex>` or the
    PartitionedPrefix form `prefix + account/region/bucket/YYYY/mm/DD/` before it."""
    name = datetime.fromtimestamp(delivered_at, UTC).strftime("%Y-%m-%d-%H-%M-%S-")
    name += secrets.token_hex(8).upper()
    prefix = config.get("TargetPrefix") or ""
    partitioned = (config.get("TargetObjectKeyFormat") or {}).get("PartitionedPrefix")
    if partitioned is None:
        return prefix + name
    source_time = partitioned.get("PartitionDateSource") or "DeliveryTime"
    day = datetime.fromtimestamp(event_at if source_time == "EventTime" else delivered_at, UTC)
    account = source.config.get("owner") or ""
    return f"{prefix}{account}/{source.region}/{source.name}/{day:%Y/%m/%d}/{name}"


def _lifecycle_record(at: float, bucket: str, key: str, operation: str, size: int, version_id: str) -> Record:
    return Record(
        at, bucket, "", LIFECYCLE_REQUESTER, secrets.token_hex(8).upper(), operation, "", key, "",
        0, "", 0, size, 0.0, "", "", version_id, "-", "-", "", None, "", False,
    )  # fmt: skip


def lifecycle_records(bucket: str, key: str, plan: Plan) -> list[Record]:
    """What lifecycle did to `key`, as S3 logs it: each stamped with the instant it fell due."""
    out = [
        _lifecycle_record(v.removed_at or 0.0, bucket, key, "S3.EXPIRE.OBJECT", v.size, v.version_id)
        for v in plan.delete
    ]
    for v in plan.moves:
        operation = _TRANSITION.get(v.target or "", "S3.TRANSITION.OBJECT")
        out.append(_lifecycle_record(v.moved_at or 0.0, bucket, key, operation, v.size, v.version_id))
    if plan.marker is not None:
        m = plan.marker
        out.append(_lifecycle_record(m.modified, bucket, key, "S3.CREATE.DELETEMARKER", 0, m.version_id))
    return out
