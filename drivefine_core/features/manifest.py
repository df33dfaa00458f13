"""`_manifest.json` of a feature store: the key, size and row groups of every log partition."""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drivefine_core.features.params import SCHEMA_VERSION
from drivefine_core.storage import StorageParams, join_uri, read_bytes, stat, write_bytes_atomic

MANIFEST_NAME = "_manifest.json"


class PartitionEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str  # digest of (content_digest, params_digest): equal key = reusable partition
    content_digest: str
    params_digest: str
    split: str
    path: str  # relative to the store root
    rows: int
    bytes: int
    row_groups: list[int]  # rows per row group, so a loader needs no footer reads to plan its shards
    clipped_values: int = 0
    sha256: str = ""  # of the partition file: a reused partition must still hold exactly these bytes


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    logs: dict[str, PartitionEntry] = Field(default_factory=dict)

    def total_rows(self) -> int:
        return sum(e.rows for e in self.logs.values())

    def total_bytes(self) -> int:
        return sum(e.bytes for e in self.logs.values())


def manifest_uri(store_uri: str) -> str:
    return join_uri(store_uri, MANIFEST_NAME)


def load_manifest(store_uri: str, storage: StorageParams | None = None) -> Manifest:
    """The store's manifest; an empty one when the store is new or was built by another schema version."""
    uri = manifest_uri(store_uri)
    if stat(uri, storage) is None:
        return Manifest()
    try:
        data = json.loads(read_bytes(uri, storage))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{uri}: not valid JSON: {exc}") from None
    if data.get("schema_version") != SCHEMA_VERSION:
        return Manifest()  # every partition will be rebuilt and overwritten
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(f"{uri}: field '{'.'.join(map(str, first['loc']))}': {first['msg']}") from None


def save_manifest(store_uri: str, manifest: Manifest, storage: StorageParams | None = None) -> None:
    data = json.dumps(manifest.model_dump(mode="json"), indent=1, sort_keys=True).encode()
    write_bytes_atomic(manifest_uri(store_uri), data, storage)
