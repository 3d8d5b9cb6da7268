"""rds service."""
