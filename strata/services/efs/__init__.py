"""efs service."""
