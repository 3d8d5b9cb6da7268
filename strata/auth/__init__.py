"""Authentication (SigV4 in all its forms) and authorization (IAM/resource policies).

`Authenticator` verifies requests (header, presigned query, SigV2 presigned S3 URLs, streaming
chunk signatures and trailers); `verify_post_policy` checks S3 browser POST uploads.
"""

from strata.auth.presigned_post import verify_post_policy
from strata.auth.sigv4 import Authenticator

__all__ = ["Authenticator", "verify_post_policy"]
