"""elasticache service."""
