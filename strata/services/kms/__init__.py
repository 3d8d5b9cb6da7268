"""kms service."""
