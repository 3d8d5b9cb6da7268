"""Authentication (SigV4 in all its forms) and authorization (IAM/resource policies)."""

from strata.auth.sigv4 import Authenticator

__all__ = ["Authenticator"]
