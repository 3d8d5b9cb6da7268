"""Browser uploads: POST /bucket with a multipart/form-data body and a signed policy."""

from __future__ import annotations

from strata.services.s3.core import S3Core


class PostObjectOperations(S3Core):
    pass
