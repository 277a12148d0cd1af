"""Image and asset reads: metadata, versions, soft deletion, and bytes in any format, through the hot cache.

HTTP-free: routes call it and shape the answer. Formats other than the stored PNG are derived once by the
asset store and kept.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from serve_app.errors import from_exception
from serve_app.images import ImageNotFound, ImageRecord, ImageRepository
from serve_app.services import Services
from serve_app.store import AssetNotFound, InvalidAssetKey, UnsupportedFormat

__all__ = ["Asset", "ImageService"]


def _ext(ext: str) -> str:
    return "jpeg" if ext == "jpg" else ext


@contextlib.contextmanager
def _store_errors(sha256: str, ext: str) -> Iterator[None]:
    """The store's errors as the API's (404, 422)."""
    try:
        yield
    except FileNotFoundError as exc:
        raise from_exception(AssetNotFound(sha256, ext)) from exc
    except (AssetNotFound, InvalidAssetKey, UnsupportedFormat) as exc:
        raise from_exception(exc) from exc


@dataclass(frozen=True)
class Asset:
    """Bytes of a stored asset and what an HTTP cache needs to know about them."""

    data: bytes
    sha256: str
    ext: str

    @property
    def etag(self) -> str:
        return f'"{self.sha256}.{self.ext}"'


class ImageService:
    """Reads images and assets.

    Args:
        services: The backends (database, asset store, hot-asset cache, public base URL).
    """

    def __init__(self, services: Services) -> None:
        self.services = services
        self.repository = ImageRepository(services.engine)

    async def image(self, image_id: str) -> ImageRecord:
        try:
            return await self.repository.get(image_id)
        except ImageNotFound as exc:
            raise from_exception(exc) from exc

    async def versions(self, image_id: str) -> list[ImageRecord]:
        try:
            return await self.repository.versions(image_id)
        except ImageNotFound as exc:
            raise from_exception(exc) from exc

    async def delete(self, image_id: str) -> ImageRecord:
        try:
            return await self.repository.soft_delete(image_id)
        except ImageNotFound as exc:
            raise from_exception(exc) from exc

    async def asset(self, sha256: str, ext: str) -> Asset:
        """The asset's bytes: from the hot cache, else the store (deriving other formats from the PNG)."""
        ext = _ext(ext)
        key = f"{sha256}.{ext}"
        cached = await self.services.hot_assets.get(key)
        if cached is not None:
            return Asset(cached, sha256, ext)
        store = self.services.store
        with _store_errors(sha256, ext):
            await self._derived(sha256, ext)
            data = await store.get(sha256, ext)
        await self.services.hot_assets.set(key, data)
        return Asset(data, sha256, ext)

    async def asset_size(self, sha256: str, ext: str) -> int:
        """The asset's length in bytes, without reading it (deriving the format from the PNG if need be)."""
        ext = _ext(ext)
        cached = await self.services.hot_assets.get(f"{sha256}.{ext}")
        if cached is not None:
            return len(cached)
        with _store_errors(sha256, ext):
            await self._derived(sha256, ext)
            return await self.services.store.size(sha256, ext)

    async def asset_range(self, sha256: str, ext: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (inclusive) of the asset: a slice of the hot-cache copy, else only those
        bytes from the store's range reader (a range request does not read the whole file)."""
        ext = _ext(ext)
        cached = await self.services.hot_assets.get(f"{sha256}.{ext}")
        if cached is not None:
            return cached[start : end + 1]
        with _store_errors(sha256, ext):
            return await self.services.store.read_range(sha256, ext, start, end + 1)

    async def _derived(self, sha256: str, ext: str) -> None:
        store = self.services.store
        if ext != "png" and not await store.exists(sha256, ext):
            await store.derive(sha256, "png", ext)

    async def image_bytes(self, image_id: str, ext: str | None = None) -> tuple[ImageRecord, Asset]:
        """An image's record and its bytes in ``ext`` (as stored by default)."""
        image = await self.image(image_id)
        return image, await self.asset(image.content_hash, ext or image.format)

    def asset_url(self, sha256: str, ext: str) -> str:
        """Where a client fetches the asset: the CDN when one is configured, else this service."""
        base = self.services.public_base_url
        return f"{base.rstrip('/')}/{sha256}.{ext}" if base else f"/api/v2/assets/{sha256}.{ext}"
