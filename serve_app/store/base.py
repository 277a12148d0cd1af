"""The asset store: image bytes, content-addressed by sha256.

A blob's key is its sha256 (hex) and extension; the same bytes are stored once, whoever puts them. Other
formats of a blob (webp, jpeg) are derived on request and kept, keyed by the source blob's sha256 and the
target extension, so ``GET /api/v2/assets/{sha256}.webp`` works for a blob stored as png.

Writes are atomic: bytes go to a temporary name in the blob's folder and are then renamed into place, so
no reader ever sees a half-written blob under its final name.

Garbage collection only removes blobs that are unreferenced *and* older than a grace period, so a blob
that a running job has just written (and not yet recorded in the database) is never collected; a put of
bytes already stored refreshes the blob's age for the same reason.

Exceptions::

    StoreError
    ├── AssetNotFound       no blob under that key (404)
    ├── InvalidAssetKey     not a sha256 hex digest or not an extension (422; also a ValueError)
    └── UnsupportedFormat   a derivation the store cannot make (422; also a ValueError)
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = [
    "DERIVABLE_FORMATS",
    "AssetNotFound",
    "AssetStore",
    "CollectResult",
    "DerivedAsset",
    "InvalidAssetKey",
    "StoreError",
    "UnsupportedFormat",
    "normalize_ext",
    "validate_sha256",
]

#: Formats :meth:`AssetStore.derive` can produce.
DERIVABLE_FORMATS = frozenset({"png", "webp", "jpeg"})

_SHA256 = re.compile(r"[0-9a-f]{64}")
_EXT = re.compile(r"[a-z0-9]{1,8}")
_ALIASES = {"jpg": "jpeg"}


class StoreError(Exception):
    """Base class for asset store failures."""


class AssetNotFound(StoreError):
    """No blob is stored under this key."""

    def __init__(self, sha256: str, ext: str) -> None:
        super().__init__(sha256, ext)
        self.sha256 = sha256
        self.ext = ext

    def __str__(self) -> str:
        return f"no asset {self.sha256}.{self.ext}"


class InvalidAssetKey(StoreError, ValueError):
    """A key part that is not a lowercase sha256 hex digest or a short alphanumeric extension."""

    def __init__(self, param: str, value: str, allowed: str) -> None:
        super().__init__(param, value, allowed)
        self.param = param
        self.value = value
        self.allowed = allowed

    def __str__(self) -> str:
        return f"{self.param}={self.value!r:.80} is invalid; allowed: {self.allowed}"


class UnsupportedFormat(StoreError, ValueError):
    """The store cannot derive this format."""

    def __init__(self, ext: str) -> None:
        super().__init__(ext)
        self.ext = ext

    def __str__(self) -> str:
        return f"cannot derive format {self.ext!r}; allowed: {', '.join(sorted(DERIVABLE_FORMATS))}"


def validate_sha256(sha256: str) -> str:
    """Return ``sha256`` if it is 64 lowercase hex digits.

    Raises:
        InvalidAssetKey: It is not.
    """
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise InvalidAssetKey("sha256", str(sha256), "64 lowercase hex digits")
    return sha256


def normalize_ext(ext: str) -> str:
    """Return the canonical extension: lowercase, no dot, ``jpg`` spelled ``jpeg``.

    Raises:
        InvalidAssetKey: It is not 1 to 8 letters and digits.
    """
    value = ext.lower().removeprefix(".") if isinstance(ext, str) else ""
    if not _EXT.fullmatch(value):
        raise InvalidAssetKey("ext", str(ext), "1 to 8 letters or digits, such as png, webp, jpeg")
    return _ALIASES.get(value, value)


@dataclass(frozen=True, slots=True)
class DerivedAsset:
    """A derived format of a blob.

    Attributes:
        sha256: The source blob's sha256 (the derived blob is found under it with ``ext``).
        ext: The derived format.
        size: Its size in bytes.
        hit: Whether it was already stored (no conversion ran).
    """

    sha256: str
    ext: str
    size: int
    hit: bool


@dataclass(slots=True)
class CollectResult:
    """What a garbage collection pass did (or, with ``dry_run``, would do).

    Attributes:
        removed: Paths removed (blobs, derived blobs and stale temporary files).
        bytes_freed: Their total size.
        kept_referenced: Blobs kept because something references them.
        kept_recent: Unreferenced blobs kept because they are younger than the grace period.
    """

    removed: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    kept_referenced: int = 0
    kept_recent: int = 0


@runtime_checkable
class AssetStore(Protocol):
    """Content-addressed blob storage."""

    async def put(self, data: bytes, ext: str) -> str:
        """Store ``data`` (once) and return its sha256."""
        ...

    async def get(self, sha256: str, ext: str) -> bytes:
        """Return the blob's bytes, or raise :class:`AssetNotFound`."""
        ...

    async def read_range(self, sha256: str, ext: str, start: int, end: int | None = None) -> bytes:
        """Return bytes ``[start, end)`` of the blob (``end=None``: to the end)."""
        ...

    def iter_bytes(
        self, sha256: str, ext: str, *, start: int = 0, end: int | None = None, chunk_size: int = 262144
    ) -> AsyncIterator[bytes]:
        """Stream bytes ``[start, end)`` of the blob in chunks."""
        ...

    async def exists(self, sha256: str, ext: str) -> bool:
        """Whether the blob (or a derived blob of that format) is stored."""
        ...

    async def size(self, sha256: str, ext: str) -> int:
        """Return the blob's size in bytes, or raise :class:`AssetNotFound`."""
        ...

    def url(self, sha256: str, ext: str) -> str:
        """Return the blob's fsspec URL (``file:///...`` for a local store)."""
        ...

    async def local_path(self, sha256: str, ext: str) -> str | None:
        """Return the blob's local file path if the store is local and the blob exists, else ``None``."""
        ...

    async def derive(self, sha256: str, from_ext: str, to_ext: str, *, quality: int = 90) -> DerivedAsset:
        """Make (or find) the blob in format ``to_ext``."""
        ...

    async def collect(
        self, referenced: Iterable[str], *, older_than_s: float = 3600.0, dry_run: bool = False
    ) -> CollectResult:
        """Remove unreferenced blobs older than ``older_than_s``."""
        ...
