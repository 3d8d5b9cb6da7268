"""s3 service."""
