"""S3 request metrics (CloudWatch's AWS/S3 per BucketName and FilterId), tallied in memory by the
gateway for the buckets that have a metrics configuration and drained once a simulated minute by
CloudWatch's publisher. A bucket without one costs a request one dict truthiness test.

`watched` is kept by the S3 provider (strata/services/s3/request_metrics.py): bucket -> (the
owner's `account:region`, [(filter id, key prefix, access point ARN)]). A tally is keyed by
(simulated minute, scope, bucket, filter id) and holds the counts below. Lost on a crash, like
the meter's unflushed tally: these are samples, not acknowledged writes.
"""

from __future__ import annotations

import math
import threading

from strata.sim.clock import clock

# the request kinds CloudWatch counts (AllRequests counts every request)
KINDS = (
    "GetRequests",
    "PutRequests",
    "DeleteRequests",
    "HeadRequests",
    "PostRequests",
    "ListRequests",
    "SelectRequests",
)
_KIND_OF = {
    "GetObject": 0,
    "PutObject": 1,
    "UploadPart": 1,
    "CopyObject": 1,
    "UploadPartCopy": 1,
    "DeleteObject": 2,
    "DeleteObjects": 4,  # a POST on the wire
    "HeadObject": 3,
    "HeadBucket": 3,
    "PostObject": 4,
    "CreateMultipartUpload": 4,
    "CompleteMultipartUpload": 4,
    "RestoreObject": 4,
    "ListObjects": 5,
    "ListObjectsV2": 5,
    "ListObjectVersions": 5,
    "ListMultipartUploads": 5,
    "ListParts": 5,
    "SelectObjectContent": 6,
}
# positions in a tally after the kinds
ALL, ERRORS_4XX, ERRORS_5XX, DOWN, DOWN_N, UP, UP_N, LAT_SUM, LAT_MIN, LAT_MAX = range(7, 17)


class BucketRequests:
    def __init__(self) -> None:
        self.watched: dict[str, tuple[str, list[tuple[str, str, str]]]] = {}
        self._tally: dict[tuple[int, str, str, str], list[float]] = {}
        self._lock = threading.Lock()

    def watch(self, bucket: str, scope: str, filters: list[tuple[str, str, str]]) -> None:
        """The bucket's metrics configurations now (none: stop watching it)."""
        if filters:
            self.watched[bucket] = (scope, filters)
        else:
            self.watched.pop(bucket, None)

    def add(
        self,
        bucket: str,
        key: str,
        access_point: str,
        operation: str,
        status: int,
        ms: float,
        bytes_in: int,
        bytes_out: int,
    ) -> None:
        """One answered request on a watched bucket (`access_point`: the ARN it came through)."""
        entry = self.watched.get(bucket)
        if entry is None:
            return
        scope, filters = entry
        minute = int(clock.time() // 60) * 60
        kind = _KIND_OF.get(operation)
        with self._lock:
            for filter_id, prefix, arn in filters:
                if (prefix and not key.startswith(prefix)) or (arn and arn != access_point):
                    continue
                k = (minute, scope, bucket, filter_id)
                t = self._tally.get(k)
                if t is None:
                    t = self._tally[k] = [0.0] * 17
                    t[LAT_MIN] = math.inf
                t[ALL] += 1
                if kind is not None:
                    t[kind] += 1
                if 400 <= status < 500:
                    t[ERRORS_4XX] += 1
                elif status >= 500:
                    t[ERRORS_5XX] += 1
                if bytes_out:
                    t[DOWN] += bytes_out
                    t[DOWN_N] += 1
                if bytes_in:
                    t[UP] += bytes_in
                    t[UP_N] += 1
                t[LAT_SUM] += ms
                t[LAT_MIN] = min(t[LAT_MIN], ms)
                t[LAT_MAX] = max(t[LAT_MAX], ms)

    def drain(self) -> dict[tuple[int, str, str, str], list[float]]:
        with self._lock:
            tally, self._tally = self._tally, {}
        return tally


bucket_requests = BucketRequests()
