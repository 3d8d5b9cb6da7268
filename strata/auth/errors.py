"""The authentication errors each AWS service family answers with.

AWS does not use one vocabulary: S3 says InvalidAccessKeyId where DynamoDB says
UnrecognizedClientException, STS/IAM/RDS say InvalidClientTokenId and EC2 says AuthFailure, and the
HTTP statuses differ too. The verifier raises by *kind* ("unknown_key", "bad_signature", ...) and
this table turns a kind into the error of the service the request was for.
"""

from __future__ import annotations

from strata.protocol.errors import ServiceError

_SIG_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)
_BAD_TOKEN = "The security token included in the request is invalid."
_MISSING = "Request is missing Authentication Token"
_EXPIRED_TOKEN = "The security token included in the request is expired"

# kind -> (code, status, message); "{detail}" is filled by the caller where the message varies.
_Table = dict[str, tuple[str, int, str]]

# JSON services behind the Coral front end (DynamoDB, KMS) answer 400 for everything.
_JSON: _Table = {
    "missing": ("MissingAuthenticationTokenException", 400, _MISSING),
    "unknown_key": ("UnrecognizedClientException", 400, _BAD_TOKEN),
    "bad_signature": ("InvalidSignatureException", 400, _SIG_MISMATCH),
    "skewed": ("InvalidSignatureException", 400, "{detail}"),
    "incomplete": ("IncompleteSignatureException", 400, "{detail}"),
    "expired": ("InvalidSignatureException", 400, "{detail}"),
    "bad_payload_hash": ("InvalidSignatureException", 400, _SIG_MISMATCH),
    "expired_token": ("ExpiredTokenException", 400, _EXPIRED_TOKEN),
    "bad_token": ("UnrecognizedClientException", 400, _BAD_TOKEN),
    "access_denied": ("AccessDeniedException", 400, "{detail}"),
}
# Query-protocol services (STS, IAM, RDS, ElastiCache).
_QUERY: _Table = {
    "missing": ("MissingAuthenticationToken", 403, _MISSING),
    "unknown_key": ("InvalidClientTokenId", 403, _BAD_TOKEN),
    "bad_signature": ("SignatureDoesNotMatch", 403, _SIG_MISMATCH),
    "skewed": ("SignatureDoesNotMatch", 403, "{detail}"),
    "incomplete": ("IncompleteSignature", 400, "{detail}"),
    "expired": ("SignatureDoesNotMatch", 403, "{detail}"),
    "bad_payload_hash": ("SignatureDoesNotMatch", 403, _SIG_MISMATCH),
    "expired_token": ("ExpiredToken", 403, _EXPIRED_TOKEN),
    "bad_token": ("InvalidClientTokenId", 403, _BAD_TOKEN),
    "access_denied": ("AccessDenied", 403, "{detail}"),
}
# EC2 folds unknown keys and bad signatures into AuthFailure and reports skew as RequestExpired.
_EC2: _Table = {
    "missing": (
        "MissingAuthenticationToken",
        403,
        "Request must contain either a valid (registered) AWS access key ID or X.509 certificate.",
    ),
    "unknown_key": ("AuthFailure", 401, "AWS was not able to validate the provided access credentials"),
    "bad_signature": ("AuthFailure", 401, "AWS was not able to validate the provided access credentials"),
    "skewed": ("RequestExpired", 400, "Request has expired."),
    "incomplete": ("IncompleteSignature", 400, "{detail}"),
    "expired": ("RequestExpired", 400, "Request has expired."),
    "bad_payload_hash": ("AuthFailure", 401, "AWS was not able to validate the provided access credentials"),
    "expired_token": ("RequestExpired", 400, "Request has expired."),
    "bad_token": ("AuthFailure", 401, "AWS was not able to validate the provided access credentials"),
    "access_denied": (
        "UnauthorizedOperation",
        403,
        "You are not authorized to perform this operation. {detail}",
    ),
}
# rest-json services behind API-Gateway-style front ends (EBS direct APIs, EFS) answer 403.
_REST_JSON: _Table = {
    "missing": ("MissingAuthenticationTokenException", 403, "Missing Authentication Token"),
    "unknown_key": ("UnrecognizedClientException", 403, _BAD_TOKEN),
    "bad_signature": ("InvalidSignatureException", 403, _SIG_MISMATCH),
    "skewed": ("InvalidSignatureException", 403, "{detail}"),
    "incomplete": ("IncompleteSignatureException", 403, "{detail}"),
    "expired": ("InvalidSignatureException", 403, "{detail}"),
    "bad_payload_hash": ("InvalidSignatureException", 403, _SIG_MISMATCH),
    "expired_token": ("ExpiredTokenException", 403, _EXPIRED_TOKEN),
    "bad_token": ("UnrecognizedClientException", 403, _BAD_TOKEN),
    "access_denied": ("AccessDeniedException", 403, "{detail}"),
}

FAMILY_BY_SERVICE: dict[str, _Table] = {
    "dynamodb": _JSON,
    "dynamodbstreams": _JSON,
    "kms": _JSON,
    "application-autoscaling": _JSON,
    "sts": _QUERY,
    "iam": _QUERY,
    "rds": _QUERY,
    "elasticache": _QUERY,
    "ec2": _EC2,
    "ebs": _REST_JSON,
    "efs": _REST_JSON,
}


def service_error(service: str, kind: str, detail: str = "") -> ServiceError:
    """The error a non-S3 `service` gives for an authentication failure of `kind`."""
    code, status, message = FAMILY_BY_SERVICE.get(service, _QUERY)[kind]
    return ServiceError(code, message.format(detail=detail) if "{detail}" in message else message, status)


# ---- S3 (rest-xml) speaks its own dialect, with extra fields in <Error>.

S3_SIG_MISMATCH = "The request signature we calculated does not match the signature you provided. Check your key and signing method."


def s3_access_denied(message: str = "Access Denied", **fields: str) -> ServiceError:
    return ServiceError("AccessDenied", message, 403, fields=fields)


def s3_header_malformed(detail: str) -> ServiceError:
    return ServiceError(
        "AuthorizationHeaderMalformed", f"The authorization header is malformed; {detail}", 400
    )


def s3_query_error(message: str) -> ServiceError:
    return ServiceError("AuthorizationQueryParametersError", message, 400)


def credential_error(service: str, kind: str, access_key: str) -> ServiceError:
    """The error for a key or session token that cannot be used (CredentialProblem.kind)."""
    if service != "s3":
        return service_error(service, kind)
    if kind == "expired_token":
        return ServiceError("ExpiredToken", "The provided token has expired.", 400)
    if kind == "bad_token":
        return ServiceError("InvalidToken", "The provided token is malformed or otherwise invalid.", 400)
    return ServiceError(
        "InvalidAccessKeyId",
        "The AWS Access Key Id you provided does not exist in our records.",
        403,
        fields={"AWSAccessKeyId": access_key},
    )


def access_denied(service: str, message: str) -> ServiceError:
    """A request the policies do not allow, in the service's own words."""
    if service == "s3":
        return ServiceError("AccessDenied", message, 403)
    return service_error(service, "access_denied", message)
