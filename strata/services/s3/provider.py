"""Strata's S3: one method per S3 operation, grouped by topic in mixins.

buckets.py     CreateBucket, HeadBucket, DeleteBucket, ListBuckets, location, bucket tagging
objects.py     Put/Get/Head/Delete/Copy object, DeleteObjects, object tagging, attributes
multipart.py   Create/UploadPart/UploadPartCopy/Complete/Abort, ListParts, ListMultipartUploads
listing.py     ListObjects, ListObjectsV2, ListObjectVersions
versioning.py  Put/GetBucketVersioning
post_object.py browser uploads (POST with a signed policy)
restore.py     RestoreObject for GLACIER / DEEP_ARCHIVE, on the simulated clock
policy.py      Put/Get/DeleteBucketPolicy, GetBucketPolicyStatus; the policy the authorizer evaluates
acl.py         Object Ownership and ACLs (Put/Get*Acl, ACLs on writes, their part in authorization);
               acl_rules.py: canned ACLs, grants and the policy statements an ACL stands for
bpa.py         Block Public Access (bucket level); public.py says what a public policy is
lifecycle.py   Put/Get/DeleteBucketLifecycle(Configuration): S3's checks; lifecycle_rules.py what
               rules do and when; lifecycle_run.py runs them (the scheduler's s3.lifecycle rule)
tiering.py     Put/Get/List/DeleteBucketIntelligentTieringConfiguration; tiering_rules.py the
               access tiers of INTELLIGENT_TIERING objects
condition_keys.py  the policy condition keys only stored state answers (existing object tags)
cors.py        Put/Get/DeleteBucketCors; the rules the gateway's CORS answers read (gateway/cors.py)
access_point_authz.py  requests through S3 access points (s3control keeps them)
object_lock.py Object Lock: bucket configuration, per-version retention and legal hold, the
               rules that keep a locked version from being deleted
request_metrics.py  Put/Get/List/DeleteBucketMetricsConfiguration (CloudWatch request metrics)
bucket_encryption.py  Put/Get/DeleteBucketEncryption; object_encryption.py UpdateObjectEncryption;
               sse.py which encryption a write gets and
               the keys that open an object, encryption.py the format at rest, sse_io.py its I/O
access_logs.py Put/GetBucketLogging; server access logs delivered (the s3.access_logs rule);
               access_log_lines.py S3's log format, and lifecycle's own log records
absent_configs.py  website, notifications, replication, inventory, analytics,
               Requester Pays: read as absent, turning off accepted, setting refused
guard.py       around every operation: ExpectedBucketOwner, keys XML cannot carry
core.py        shared state and helpers; store.py the SQL (rows.py the schema and row types,
               upload_rows.py multipart uploads and parts); ingest.py bodies to blobs
"""

from __future__ import annotations

from strata.services.base import ServiceRuntime
from strata.services.parameters import refusing
from strata.services.s3.absent_configs import AbsentConfigOperations
from strata.services.s3.access_logs import AccessLogOperations
from strata.services.s3.access_point_authz import AccessPointAuthz
from strata.services.s3.acl import AclOperations
from strata.services.s3.bpa import PublicAccessBlockOperations
from strata.services.s3.bucket_encryption import EncryptionOperations
from strata.services.s3.buckets import BucketOperations
from strata.services.s3.condition_keys import ConditionKeys
from strata.services.s3.cors import CorsOperations
from strata.services.s3.guard import guarded
from strata.services.s3.lifecycle import LifecycleOperations
from strata.services.s3.lifecycle_run import LifecycleRun
from strata.services.s3.listing import ListingOperations
from strata.services.s3.multipart import MultipartOperations
from strata.services.s3.object_encryption import ObjectEncryptionOperations
from strata.services.s3.object_lock import ObjectLockOperations
from strata.services.s3.objects import ObjectOperations
from strata.services.s3.policy import BucketPolicyOperations
from strata.services.s3.post_object import PostObjectOperations
from strata.services.s3.request_metrics import MetricsConfigOperations
from strata.services.s3.restore import RestoreOperations
from strata.services.s3.store import BucketRow
from strata.services.s3.tagging import TaggingOperations
from strata.services.s3.tiering import TieringOperations
from strata.services.s3.versioning import VersioningOperations
from strata.sim.bucket_requests import bucket_requests
from strata.sim.server_access_logs import server_access_logs


@refusing("s3")
@guarded
class S3Provider(
    BucketOperations,
    ObjectOperations,
    TaggingOperations,
    MultipartOperations,
    ListingOperations,
    VersioningOperations,
    PostObjectOperations,
    RestoreOperations,
    BucketPolicyOperations,
    PublicAccessBlockOperations,
    AclOperations,
    LifecycleOperations,
    AccessLogOperations,
    LifecycleRun,
    TieringOperations,
    CorsOperations,
    ConditionKeys,
    ObjectLockOperations,
    AccessPointAuthz,
    EncryptionOperations,
    ObjectEncryptionOperations,
    MetricsConfigOperations,
    AbsentConfigOperations,
):
    """Constructed once per server as `S3Provider(runtime)`; state lives under runtime.data_dir."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        super().__init__(runtime)
        self._watch_all_metrics()
        self._watch_all_logging()
        if self.store.shared:
            self.store.on_bucket_changed = self._bucket_changed

    def _bucket_changed(self, name: str, row: BucketRow | None) -> None:
        """Another gateway may have changed the bucket's metrics or logging configuration."""
        if row is None:
            bucket_requests.watch(name, "", [])
            server_access_logs.watch(name, None)
        else:
            self._watch_metrics(row)
            self._watch_logging(row)
