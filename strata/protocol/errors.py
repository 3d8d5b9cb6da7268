"""The one error type of Strata.

Raise `ServiceError(code, message, status)` anywhere below the gateway; the protocol layer renders
it in the service's wire format (rest-xml `<Error>`, json `__type`, query `<ErrorResponse>`, ec2
`<Response><Errors>`). Extra members of the error shape (S3's `BucketName`, DynamoDB's
`CancellationReasons`, `Item`) go in `fields`; extra HTTP headers in `headers`.
"""

from __future__ import annotations


class ServiceError(Exception):
    def __init__(
        self,
        code: str,
        message: str = "",
        status: int = 400,
        *,
        fields: dict | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.fields = fields or {}
        self.headers = headers or {}

    @property
    def sender_fault(self) -> bool:
        return self.status < 500


class NotImplementedOperation(ServiceError):
    """The operation exists in the AWS model but Strata does not implement it yet (HTTP 501)."""

    def __init__(self, service: str, operation: str) -> None:
        super().__init__(
            "NotImplemented",
            f"The operation {operation} of {service} is not implemented by Strata yet",
            501,
        )
        self.operation = operation


class InternalError(ServiceError):
    def __init__(self, message: str = "We encountered an internal error. Please try again.") -> None:
        super().__init__("InternalError", message, 500)
