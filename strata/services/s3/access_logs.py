"""Put/GetBucketLogging and the delivery of S3 server access logs (the `s3.access_logs` rule).

PutBucketLogging checks what AWS checks before it accepts a LoggingEnabled:
- the target bucket exists (InvalidTargetBucketForLogging), is owned by the source bucket's owner
  (InvalidTargetBucketForLogging) and is in its region (CrossLocationLoggingProhibitted, AWS's
  code for cross-Region logging);
- the target has no Object Lock default retention (AWS cannot deliver to one);
- the target lets the logging service write: its bucket policy allows the service principal
  `logging.s3.amazonaws.com` s3:PutObject on `TargetPrefix...` (Deny statements and conditions on
  aws:SourceAccount / aws:SourceArn evaluated as for the real delivery), or, when the target has
  ACLs enabled, its ACL grants the LogDelivery group WRITE. Otherwise InvalidTargetBucketForLogging;
- TargetGrants need ACLs on the target (BucketOwnerEnforced refuses them) and are applied to every
  log object delivered (READ, FULL_CONTROL; WRITE means nothing on an object and is refused).

Records are buffered in memory by the gateway (strata.sim.server_access_logs) and delivered by the
scheduler rule `s3.access_logs` every DELIVERY_EVERY simulated seconds (and at a graceful stop),
one object per source bucket per run, written through PutObject as Strata itself (so the target's
default encryption, metering and listing apply). AWS delivers within a few hours, best effort; so does Strata: a crash loses the
records still in memory, and a delivery that fails (target deleted, policy revoked) drops them.
Strata's own log writes never reach the gateway, so a bucket that logs to itself does not loop.
"""

from __future__ import annotations

import asyncio

from strata.auth.service_principals import service_refused
from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.protocol.http import Headers, HttpRequest
from strata.services.s3 import acl_rules
from strata.services.s3.access_log_lines import log_key, log_line
from strata.services.s3.acl import ENFORCED
from strata.services.s3.core import S3Core, log, owner_id
from strata.services.s3.lifecycle import malformed
from strata.services.s3.store import BucketRow
from strata.sim.clock import clock
from strata.sim.scheduler import scheduler
from strata.sim.server_access_logs import Record, server_access_logs

SERVICE = "logging.s3.amazonaws.com"
DELIVERY_EVERY = 300.0  # simulated seconds between deliveries
_GRANT_MEMBER = {"READ": "GrantRead", "FULL_CONTROL": "GrantFullControl"}


def _invalid_target(message: str, target: str) -> ServiceError:
    return ServiceError("InvalidTargetBucketForLogging", message, 400, fields={"TargetBucket": target})


def delivery_denied(target: BucketRow, prefix: str, source: BucketRow, ownership: str) -> bool:
    """True when neither the target's bucket policy nor (ACLs enabled) its ACL lets the logging
    service write `prefix...` for `source`."""
    resource = f"arn:aws:s3:::{target.name}/{prefix}2000-01-01-00-00-00-0000000000000000"
    refused = service_refused(
        SERVICE,
        [("s3:PutObject", resource)],
        target.config.get("policy"),
        "resource",
        region=target.region,
        source_account=source.config.get("owner") or "",
        source_arn=f"arn:aws:s3:::{source.name}",
    )
    if refused is None:
        return False
    if ownership == ENFORCED:
        return True
    grants = target.config.get("acl") or []
    return not any(
        g.get("Grantee", {}).get("URI") == acl_rules.LOG_DELIVERY
        and g.get("Permission") in ("WRITE", "FULL_CONTROL")
        for g in grants
    )


def _grant_members(grants: list[dict]) -> dict[str, str]:
    """TargetGrants as the x-amz-grant-* members of the PutObject that delivers a log."""
    out: dict[str, list[str]] = {}
    for g in grants:
        grantee = g.get("Grantee") or {}
        member = _GRANT_MEMBER.get(g.get("Permission") or "")
        if member is None:
            raise ServiceError(
                "NotImplemented", "Strata applies READ and FULL_CONTROL TargetGrants only.", 501
            )
        if grantee.get("Type") == "CanonicalUser" and grantee.get("ID"):
            value = f'id="{grantee["ID"]}"'
        elif grantee.get("Type") == "Group" and grantee.get("URI"):
            value = f'uri="{grantee["URI"]}"'
        elif grantee.get("Type") == "AmazonCustomerByEmail":
            raise ServiceError("UnsupportedArgument", "The request contained an unsupported argument.", 400)
        else:
            raise malformed()
        out.setdefault(member, []).append(value)
    return {m: ", ".join(v) for m, v in out.items()}


class AccessLogOperations(S3Core):
    _early_deliveries: set[asyncio.Task] = set()  # (each provider gets its own in start())

    # -- configuration ---------------------------------------------------------------------------

    def _watch_logging(self, bucket: BucketRow) -> None:
        """Tell the gateway whether `bucket`'s requests are to be recorded."""
        logged = bucket.config.get("logging")
        owner = owner_id(bucket.config.get("owner") or self.settings.account_id)
        server_access_logs.watch(bucket.name, owner if logged else None)

    def _watch_all_logging(self) -> None:
        """At start-up: every logged bucket (the gateway's set is in memory)."""
        after = ""
        while page := self.store.list_buckets(after=after):
            for bucket in page:
                if bucket.config.get("logging"):
                    self._watch_logging(bucket)
            after = page[-1].name

    def get_bucket_logging(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        config = self._require_bucket(req["Bucket"]).config.get("logging")
        return {"LoggingEnabled": config} if config else {}

    def _checked_logging(self, source: BucketRow, enabled: dict) -> dict:
        """Validate a LoggingEnabled for `source`; the document to store."""
        target_name = enabled.get("TargetBucket") or ""
        prefix = enabled.get("TargetPrefix")
        if not target_name or prefix is None:
            raise malformed()
        fmt = enabled.get("TargetObjectKeyFormat") or {}
        if "SimplePrefix" in fmt and "PartitionedPrefix" in fmt:
            raise malformed()
        date_source = (fmt.get("PartitionedPrefix") or {}).get("PartitionDateSource")
        if date_source not in (None, "EventTime", "DeliveryTime"):
            raise malformed()
        target = self.store.bucket(target_name)
        if target is None:
            raise _invalid_target("The target bucket for logging does not exist", target_name)
        if (target.config.get("owner") or "") != (source.config.get("owner") or ""):
            raise _invalid_target(
                "The owner for the bucket to be logged and the target bucket must be the same.",
                target_name,
            )
        if target.region != source.region:
            raise ServiceError(
                "CrossLocationLoggingProhibitted",
                "Cross S3 location logging not allowed.",
                403,
                fields={"TargetBucketLocation": target.region},
            )
        if (target.config.get("object_lock") or {}).get("rule"):
            raise _invalid_target(
                "The target bucket for logging must not have a default Object Lock retention period",
                target_name,
            )
        ownership = target.config.get("ownership", ENFORCED)
        grants = enabled.get("TargetGrants") or []
        if grants:
            if ownership == ENFORCED:
                raise _invalid_target(
                    "Target grants are not supported for buckets that use the bucket owner enforced "
                    "setting for Object Ownership",
                    target_name,
                )
            _grant_members(grants)
            for g in grants:  # a grantee PutObject would refuse at every delivery: refused now
                grantee_id = (g.get("Grantee") or {}).get("ID")
                if grantee_id and not self._known(grantee_id):  # type: ignore[attr-defined]
                    raise acl_rules.invalid_argument("Invalid id", "CanonicalUser/ID", grantee_id)
        if delivery_denied(target, prefix, source, ownership):
            raise _invalid_target(
                "You must either provide the necessary permissions to the logging service using a "
                "bucket policy or give the log-delivery group WRITE and READ_ACP permissions to the "
                "target bucket",
                target_name,
            )
        return {k: v for k, v in enabled.items() if v is not None}

    async def put_bucket_logging(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        source = self._require_bucket(req["Bucket"])
        status = req.get("BucketLoggingStatus")
        if status is None:
            raise malformed()
        enabled = status.get("LoggingEnabled")
        doc = self._checked_logging(source, enabled) if enabled is not None else None

        def write() -> None:
            bucket = self._bucket_for_write(req["Bucket"])
            config = {k: v for k, v in bucket.config.items() if k != "logging"}
            if doc:
                config["logging"] = doc
            self.store.set_bucket_field(bucket.name, "config", config)

        await self._write(write, bucket=req["Bucket"])
        self._watch_logging(self._bucket_for_write(req["Bucket"]))
        return {}

    # -- delivery --------------------------------------------------------------------------------

    async def start(self) -> None:
        scheduler.register("s3.access_logs", self._deliver_access_logs, every=DELIVERY_EVERY)
        self._early_deliveries = set()
        server_access_logs.on_full = self._deliver_early
        await super().start()  # type: ignore[misc]

    def _deliver_early(self) -> None:
        """The gateway's buffer is full enough: deliver now rather than at the rule's next run
        (called on the event loop, from the gateway's hook)."""
        now = clock.time()
        task = asyncio.get_running_loop().create_task(self._deliver_access_logs(now, now))
        self._early_deliveries.add(task)
        task.add_done_callback(self._early_deliveries.discard)

    async def stop(self) -> None:
        """A graceful stop delivers what is buffered (only a kill loses records)."""
        server_access_logs.on_full = None
        try:
            if self._early_deliveries:
                await asyncio.gather(*self._early_deliveries, return_exceptions=True)
            await self._deliver_access_logs(clock.time(), clock.time())
        finally:
            await super().stop()

    async def _deliver_access_logs(self, since: float, until: float) -> dict[str, int]:
        """Write the buffered records, one object per logged bucket (per event day under a
        PartitionedPrefix on EventTime); what was delivered, and what was lost."""
        by_bucket: dict[str, list[Record]] = {}
        for r in server_access_logs.drain():
            by_bucket.setdefault(r.bucket, []).append(r)
        counts = {"objects": 0, "records": 0, "dropped": server_access_logs.take_dropped()}
        for name, records in by_bucket.items():
            source = self.store.bucket(name, cached=False)
            config = source.config.get("logging") if source is not None else None
            if source is None or not config:
                continue  # logging was turned off (or the bucket deleted) since
            for group in _object_groups(config, records):
                try:
                    await self._deliver(source, config, group, until)
                except Exception as e:  # noqa: BLE001 - best effort, as AWS: the next bucket still gets its logs
                    log.warning("access logs of %s not delivered: %s", name, e)
                    counts["dropped"] += len(group)
                    continue
                counts["objects"] += 1
                counts["records"] += len(group)
        return {k: v for k, v in counts.items() if v}

    async def _deliver(self, source: BucketRow, config: dict, records: list[Record], until: float) -> None:
        """One log object in the target bucket, written by PutObject as the target's owner after
        the delivery permission is checked again (a policy revoked since stops delivery)."""
        owner_canonical = owner_id(source.config.get("owner") or self.settings.account_id)
        body = "".join(log_line(r, owner_canonical) + "\n" for r in records).encode()
        target = self._require_bucket(config["TargetBucket"])
        ownership = target.config.get("ownership", ENFORCED)
        if delivery_denied(target, config.get("TargetPrefix") or "", source, ownership):
            raise ServiceError("AccessDenied", "Access Denied", 403)
        account = target.config.get("owner") or self.settings.account_id
        internal = HttpRequest("PUT", "/", "", Headers())
        ctx = RequestContext("internal", "s3", "PutObject", target.region, account, None, internal)
        key = log_key(config, source, until, records[0].at)
        put = {
            "Bucket": target.name,
            "Key": key,
            "Body": body,
            **_grant_members(config.get("TargetGrants") or []),
        }
        await self.put_object(ctx, put)  # type: ignore[attr-defined]


def _object_groups(config: dict, records: list[Record]) -> list[list[Record]]:
    """The records of one delivery split by log object: all in one, or one per UTC day of the
    events when the key is partitioned by EventTime."""
    partitioned = (config.get("TargetObjectKeyFormat") or {}).get("PartitionedPrefix")
    if not partitioned or partitioned.get("PartitionDateSource") != "EventTime":
        return [records]
    by_day: dict[int, list[Record]] = {}
    for r in records:
        by_day.setdefault(int(r.at // 86400), []).append(r)
    return list(by_day.values())
