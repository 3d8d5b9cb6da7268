"""Strata: the AWS storage and database services on one local endpoint."""

__version__ = "0.1.0"
