"""Bucket configurations Strata does not act on: website hosting, event notifications, replication,
inventory, storage class analysis, Requester Pays (server access logging: access_logs.py).

Tools read all of them when they look at a bucket (Terraform's aws_s3_bucket, CloudFormation drift
detection, the console), so each is answered as S3 answers for a bucket that has none: the empty
document or S3's own "no such configuration" error. Turning one off succeeds (it is off); setting one
is refused with S3's NotImplemented, never stored and ignored: no user may believe their events are
delivered or their objects replicated when they are not.
"""

from __future__ import annotations

from typing import Any

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.s3.core import S3Core


def not_implemented(what: str) -> ServiceError:
    return ServiceError("NotImplemented", f"Strata does not serve {what}.", 501)


def _no_such_configuration() -> ServiceError:
    return ServiceError("NoSuchConfiguration", "The specified configuration does not exist.", 404)


def _any(config: dict[str, Any] | None, *members: str) -> bool:
    return any((config or {}).get(m) for m in members)


class AbsentConfigOperations(S3Core):
    def _bucket(self, ctx: RequestContext, req: dict) -> Any:
        self._count(ctx, req["Bucket"])
        return self._require_bucket(req["Bucket"])

    # -- website ---------------------------------------------------------------------------------

    def get_bucket_website(self, ctx: RequestContext, req: dict) -> dict:
        b = self._bucket(ctx, req)
        raise ServiceError(
            "NoSuchWebsiteConfiguration",
            "The specified bucket does not have a website configuration",
            404,
            fields={"BucketName": b.name},
        )

    def put_bucket_website(self, ctx: RequestContext, req: dict) -> dict:
        self._bucket(ctx, req)
        raise not_implemented("static website hosting")

    def delete_bucket_website(self, ctx: RequestContext, req: dict) -> dict:
        self._bucket(ctx, req)
        return {}

    # -- event notifications ---------------------------------------------------------------------

    def get_bucket_notification_configuration(self, ctx: RequestContext, req: dict) -> dict:
        self._bucket(ctx, req)
        return {}

    def get_bucket_notification(self, ctx: RequestContext, req: dict) -> dict:
        self._bucket(ctx, req)
        return {}

    def put_bucket_notification_configuration(self, ctx: RequestContext, req: dict) -> dict:
        self._bucket(ctx, req)
        config = req.get("NotificationConfiguration")
        members = ("TopicConfigurations", "QueueConfigurations", "LambdaFunctionConfigurations")
        if _any(config, *members) or (config or {}).get("EventBridgeConfiguration") is not None:
            raise not_implemented("event notifications (Strata has no SNS, SQS, Lambda or EventBridge)")
        return {}

    def put_bucket_notification(self, ctx: RequestContext, req: dict) -> dict:
        self._bucket(ctx, req)
        config = req.get("NotificationConfiguration")
        if _any(config, "TopicConfiguration", "QueueConfiguration", "CloudFunctionConfiguration"):
            raise not_implemented("event notifications (Strata has no SNS, SQS or Lambda)")
        return {}

    # -- replication -----------------------------------------------------------------------------

    def get_bucket_replication(self, ctx: RequestContext, req: dict) -> dict:
        b = self._bucket(ctx, req)
        raise ServiceError(
            "ReplicationConfigurationNotFoundError",
            "The replication configuration was not found",
            404,
            fields={"BucketName": b.name},
        )

    def put_bucket_replication(self, ctx: RequestContext, req: dict) -> dict:
        b = self._bucket(ctx, req)
        if b.versioning != "Enabled":
            raise ServiceError(
                "InvalidRequest",
                "Versioning must be 'Enabled' on the bucket to apply a replication configuration",
                400,
            )
        raise not_implemented("replication")

    def delete_bucket_replication(self, ctx: RequestContext, req: dict) -> dict:
        self._bucket(ctx, req)
        return {}

    # -- Requester Pays --------------------------------------------------------------------------

    def get_bucket_request_payment(self, ctx: RequestContext, req: dict) -> dict:
        self._bucket(ctx, req)
        return {"Payer": "BucketOwner"}

    def put_bucket_request_payment(self, ctx: RequestContext, req: dict) -> dict:
        self._bucket(ctx, req)
        payer = (req.get("RequestPaymentConfiguration") or {}).get("Payer")
        if payer == "Requester":
            raise not_implemented("Requester Pays buckets")
        if payer != "BucketOwner":
            raise ServiceError(
                "MalformedXML",
                "The XML you provided was not well-formed or did not validate against our published schema",
                400,
            )
        return {}

    # -- inventory and storage class analysis ----------------------------------------------------

    def get_bucket_inventory_configuration(self, ctx: RequestContext, req: dict) -> dict:
        self._bucket(ctx, req)
        raise _no_such_configuration()

    def delete_bucket_inventory_configuration(self, ctx: RequestContext, req: dict) -> dict:
        self._bucket(ctx, req)
        raise _no_such_configuration()

    def list_bucket_inventory_configurations(self, ctx: RequestContext, req: dict) -> dict:
        self._bucket(ctx, req)
        return {"IsTruncated": False}

    def put_bucket_inventory_configuration(self, ctx: RequestContext, req: dict) -> dict:
        self._bucket(ctx, req)
        raise not_implemented("S3 Inventory")

    def get_bucket_analytics_configuration(self, ctx: RequestContext, req: dict) -> dict:
        self._bucket(ctx, req)
        raise _no_such_configuration()

    def delete_bucket_analytics_configuration(self, ctx: RequestContext, req: dict) -> dict:
        self._bucket(ctx, req)
        raise _no_such_configuration()

    def list_bucket_analytics_configurations(self, ctx: RequestContext, req: dict) -> dict:
        self._bucket(ctx, req)
        return {"IsTruncated": False}

    def put_bucket_analytics_configuration(self, ctx: RequestContext, req: dict) -> dict:
        self._bucket(ctx, req)
        raise not_implemented("storage class analysis")
