"""Durable state: a metadata store (SQLite in WAL mode) and a blob store (files, atomic publish)."""

from strata.storage.blobs import BlobStore
from strata.storage.metadata import MetadataStore

__all__ = ["BlobStore", "MetadataStore"]
