"""dynamodb service."""
