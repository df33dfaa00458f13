"""Knobs of local / S3 storage: retries and multipart sizes."""

from __future__ import annotations

from pydantic import Field

from drivefine_core.params_base import Section


class StorageParams(Section):
    retry_attempts: int = Field(5, ge=1, description="tries per request, the first included")
    retry_base_delay_s: float = Field(0.2, ge=0.0, description="backoff doubles from here")
    retry_max_delay_s: float = Field(5.0, ge=0.0)
    # Objects up to this size go in one PUT; larger ones in a multipart upload completed at the end.
    multipart_threshold_mb: float = Field(8.0, ge=5.0, description="S3 parts must be >= 5 MiB except the last")
    multipart_chunk_mb: float = Field(8.0, ge=5.0)
    connect_timeout_s: float = Field(5.0, gt=0.0)
    read_timeout_s: float = Field(60.0, gt=0.0)

    @property
    def multipart_threshold_bytes(self) -> int:
        return int(self.multipart_threshold_mb * 1024 * 1024)

    @property
    def multipart_chunk_bytes(self) -> int:
        return int(self.multipart_chunk_mb * 1024 * 1024)
