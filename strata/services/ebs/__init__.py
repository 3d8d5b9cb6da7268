"""ebs service."""
