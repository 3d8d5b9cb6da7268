"""DynamoDB's error codes as small constructors, so every raise site reads like the AWS docs.

All of them are `ServiceError`s; the json protocol renders `__type` and `message`.
"""

from __future__ import annotations

from strata.protocol.errors import ServiceError
from strata.protocol.spec import service_model

_PREFIX = "com.amazonaws.dynamodb.v20120810#"


def validation(message: str) -> ServiceError:
    """The catch-all 400 for bad input, worded like DynamoDB's own messages."""
    return ServiceError("ValidationException", message, 400)


def invalid_parameter(message: str) -> ServiceError:
    """`One or more parameter values were invalid: ...`, DynamoDB's most common prefix."""
    return validation("One or more parameter values were invalid: " + message)


def resource_not_found(message: str = "Requested resource not found") -> ServiceError:
    return ServiceError("ResourceNotFoundException", message, 400)


def table_not_found(name: str) -> ServiceError:
    return resource_not_found(f"Requested resource not found: Table: {name} not found")


def resource_in_use(message: str) -> ServiceError:
    return ServiceError("ResourceInUseException", message, 400)


def conditional_check_failed(item: dict | None = None) -> ServiceError:
    fields = {"Item": item} if item is not None else {}
    return ServiceError(
        "ConditionalCheckFailedException", "The conditional request failed", 400, fields=fields
    )


def transaction_canceled(reasons: list[dict]) -> ServiceError:
    codes = ", ".join(r["Code"] for r in reasons)
    return ServiceError(
        "TransactionCanceledException",
        f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]",
        400,
        fields={"CancellationReasons": reasons},
    )


def idempotent_mismatch() -> ServiceError:
    return ServiceError(
        "IdempotentParameterMismatchException",
        "The request uses the same client token as a previous, but non-identical request.",
        400,
    )


CONFLICT_MESSAGE = "Transaction is ongoing for the item"


def transaction_conflict() -> ServiceError:
    """A single-item write on an item that an in-flight TransactWriteItems holds."""
    return ServiceError("TransactionConflictException", CONFLICT_MESSAGE, 400)


def conflict_reason() -> dict:
    """The CancellationReason of a transaction action whose item another transaction holds."""
    return {"Code": "TransactionConflict", "Message": CONFLICT_MESSAGE}


def limit_exceeded(message: str) -> ServiceError:
    return ServiceError("LimitExceededException", message, 400)


def transaction_in_progress() -> ServiceError:
    """A TransactWriteItems retried with the token of one that is not yet acknowledged."""
    return ServiceError(
        "TransactionInProgressException",
        "The transaction with the given request token is already in progress.",
        400,
    )


def check_range(value: int, member: str, shape: str) -> None:
    """A number within the `min`/`max` the model gives `shape`, else DynamoDB's constraint error."""
    limits = service_model("dynamodb").shape_for(shape).metadata
    if "min" in limits and value < limits["min"]:
        broken = f"greater than or equal to {limits['min']}"
    elif "max" in limits and value > limits["max"]:
        broken = f"less than or equal to {limits['max']}"
    else:
        return
    raise validation(
        f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: "
        f"Member must have value {broken}"
    )
