"""iam service."""
