"""The storage port (DESIGN.md §2): `build_storage` picks the adapter from the settings."""

from __future__ import annotations

from app.config import Settings
from app.storage.base import (
    MIN_PART_SIZE,
    InvalidKey,
    InvalidPart,
    InvalidRange,
    ObjectInfo,
    ObjectNotFound,
    PartTarget,
    PartTooLarge,
    Storage,
    StorageError,
    StoredPart,
    UploadNotFound,
)
from app.storage.local import LocalStorage
from app.storage.s3 import S3Storage

__all__ = [
    "InvalidKey",
    "InvalidPart",
    "InvalidRange",
    "LocalStorage",
    "ObjectInfo",
    "ObjectNotFound",
    "PartTarget",
    "PartTooLarge",
    "S3Storage",
    "Storage",
    "StorageError",
    "StoredPart",
    "UploadNotFound",
    "build_storage",
]


def build_storage(settings: Settings, *, base_url: str) -> Storage:
    """The configured adapter. base_url is the API's public origin, which the local adapter
    puts in its signed media URLs."""
    if settings.storage == "s3":
        return S3Storage(
            bucket=settings.s3_bucket,
            region=settings.s3_region,
            endpoint_url=settings.s3_endpoint_url,
        )
    return LocalStorage(
        settings.media_dir,
        secret_key=settings.resolved_secret_key(),
        public_base_url=base_url,
        # S3's 5 MiB minimum, unless the deployment deliberately plans smaller parts.
        min_part_size=min(MIN_PART_SIZE, settings.upload_part_size),
    )
