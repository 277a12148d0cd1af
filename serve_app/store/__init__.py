"""Content-addressed asset storage on fsspec: a local directory by default, object storage at scale."""

from serve_app.store.base import (
    DERIVABLE_FORMATS,
    AssetNotFound,
    AssetStore,
    CollectResult,
    DerivedAsset,
    InvalidAssetKey,
    StoreError,
    UnsupportedFormat,
    normalize_ext,
    validate_sha256,
)
from serve_app.store.filesystem import FsspecAssetStore

__all__ = [
    "DERIVABLE_FORMATS",
    "AssetNotFound",
    "AssetStore",
    "CollectResult",
    "DerivedAsset",
    "FsspecAssetStore",
    "InvalidAssetKey",
    "StoreError",
    "UnsupportedFormat",
    "normalize_ext",
    "validate_sha256",
]
