"""sts service."""
