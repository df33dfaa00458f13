"""Knobs of local / S3 storage: the one retry policy (botocore's standard mode), timeouts, part size."""

from __future__ import annotations

from pydantic import Field

from drivefine_core.params_base import Section


class StorageParams(Section):
    retry_attempts: int = Field(5, ge=1, description="tries per S3 request, the first included")
    multipart_chunk_mb: float = Field(8.0, ge=5.0, description="S3 parts must be >= 5 MiB except the last")
    connect_timeout_s: float = Field(5.0, gt=0.0)
    read_timeout_s: float = Field(60.0, gt=0.0)
