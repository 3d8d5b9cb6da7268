"""S3 server access logs: the gateway's in-memory buffer of the requests on logged buckets.

`logged` is kept by the S3 provider (strata/services/s3/access_logs.py): bucket name -> its
owner's canonical id. For each answered S3 request on a logged bucket the gateway appends one
`Record` (plain fields, no formatting: the hot path pays one dict lookup for an unlogged bucket and
a tuple append for a logged one); the `s3.access_logs` scheduler rule drains the buffer every few
simulated minutes, formats the lines and writes them to the target buckets. Like AWS's delivery
this is best effort: records still buffered when the server is killed are lost, as S3 says
some records may be. A busy server does not wait for the rule: at FLUSH_AT buffered records the
provider's `on_full` starts a delivery at once. The buffer is bounded (MAX_BUFFERED records;
beyond that they are dropped and counted) so a stalled delivery never grows memory without end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import NamedTuple

FLUSH_AT = 10_000
MAX_BUFFERED = 100_000


class Record(NamedTuple):
    """One request, as the gateway saw it (times in simulated epoch seconds / milliseconds)."""

    at: float
    bucket: str
    remote_ip: str
    requester: str
    request_id: str
    operation: str  # the API operation name (GetObject); access_logs.py maps it to REST.GET.OBJECT
    method: str
    key: str
    request_uri: str
    status: int
    error_code: str
    bytes_sent: int
    object_size: int
    total_ms: float
    referrer: str
    user_agent: str
    version_id: str
    signature_version: str
    auth_type: str
    host: str
    tls: tuple[str, str] | None  # (cipher suite, TLS version) when over TLS
    access_point: str
    acl_required: bool


class ServerAccessLogs:
    def __init__(self) -> None:
        self.logged: dict[str, str] = {}
        self.dropped = 0
        self.on_full: Callable[[], None] | None = None  # set by the S3 provider
        self._records: list[Record] = []
        self._lock = threading.Lock()

    def watch(self, bucket: str, owner_canonical_id: str | None) -> None:
        """The bucket is logged now (None: no longer)."""
        if owner_canonical_id:
            self.logged[bucket] = owner_canonical_id
        else:
            self.logged.pop(bucket, None)

    def add(self, record: Record) -> None:
        with self._lock:
            if len(self._records) >= MAX_BUFFERED:
                self.dropped += 1
                return
            self._records.append(record)
            full = len(self._records) == FLUSH_AT
        if full and self.on_full is not None:
            self.on_full()

    def take_dropped(self) -> int:
        """Records dropped on a full buffer since the last call."""
        with self._lock:
            dropped, self.dropped = self.dropped, 0
        return dropped

    def drain(self) -> list[Record]:
        with self._lock:
            records, self._records = self._records, []
        return records


server_access_logs = ServerAccessLogs()
