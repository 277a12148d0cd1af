"""The bridge's output folder: where images are written, and what answers a request that failed.

Layout under ``output_dir`` (the installation's ``cache_dir``), as in the stock image server's cache::

    <era>/<biome>/limner_<stamp>_<id>.jpg   images of an era and biome: that pair's fallback pool
    limner_<stamp>_<id>.jpg                  images of requests without an era and biome (fire, base)
    fallback/limner_<stamp>_<id>.jpg         fallback answers, apart, so a neutral image never joins a pool
    latest.jpg -> <the last image sent>      a relative symlink, re-pointed atomically

Every image is written atomically (:func:`serve_app.files.atomic_write`) at the requested size, in the
configured format; a request's image is the render, cropped and scaled to cover the size (aspect kept).
A fallback answer is the newest image of the same era and biome (remembered, else the newest file of the
pool; PNG, JPEG or WebP within the size limits) or, when there is none, a neutral image of the configured
colour.

:meth:`OutputFolder.prune` applies the retention policy (:class:`~serve_app.experimance.config.OutputRetention`)
per pool: only the bridge's own ``limner_*`` images are removed, never the image ``latest.<ext>`` points at,
the newest image of a pool or the image a fallback remembers.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from PIL import Image

from pipelines import encode as codec
from serve_app.experimance.config import FallbackConfig, OutputRetention
from serve_app.experimance.protocol import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS, IMAGE_FORMATS
from serve_app.files import atomic_write

__all__ = ["OutputFolder", "PruneReport"]

logger = logging.getLogger("ray.serve.limner.experimance")

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_FALLBACK_DIR = "fallback"
_PIL_NAMES = {"jpeg": "JPEG", "png": "PNG"}
_OWN_PREFIX = "limner_"


@dataclass
class PruneReport:
    """What one :meth:`OutputFolder.prune` did.

    Attributes:
        removed: The files removed.
        freed_bytes: Their total size.
        kept: Bridge images left in place.
        failed: Files that could not be removed (logged).
    """

    removed: list[Path] = field(default_factory=list)
    freed_bytes: int = 0
    kept: int = 0
    failed: int = 0


class OutputFolder:
    """The output folder of one bridge.

    The methods block (files, encoding); the bridge calls them in worker threads. The newest image of each
    era and biome is remembered across calls (single dict reads and writes, safe from several threads).

    Args:
        root: The output directory; :meth:`prepare` makes it absolute and creates it.
        image_format: Format of the images written.
        jpeg_quality: JPEG quality, 1-100.
        fallback: How failed and timed-out requests are answered.
        max_source_bytes: Largest previous image file a fallback reads; a larger one is skipped.
        max_source_pixels: Most pixels a previous image may have to be used by a fallback.
    """

    def __init__(
        self,
        root: Path,
        *,
        image_format: Literal["jpeg", "png"] = "jpeg",
        jpeg_quality: int = 92,
        fallback: FallbackConfig | None = None,
        max_source_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        max_source_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    ) -> None:
        self._root = root
        self._format: Literal["jpeg", "png"] = image_format
        self._quality = jpeg_quality
        self._fallback = fallback or FallbackConfig()
        self._max_source_bytes = max_source_bytes
        self._max_source_pixels = max_source_pixels
        self._ext = "jpg" if image_format == "jpeg" else "png"
        self._newest: dict[tuple[str | None, str | None], Path] = {}

    @property
    def root(self) -> Path:
        """The output directory (absolute once :meth:`prepare` has run)."""
        return self._root

    @property
    def ext(self) -> str:
        """The file extension of the images written: ``jpg`` or ``png``."""
        return self._ext

    def prepare(self) -> Path:
        """Makes the root absolute (``~`` expanded, symlinks resolved) and creates it.

        Returns:
            The absolute root.
        """
        self._root = self._root.expanduser().resolve()
        self._root.mkdir(parents=True, exist_ok=True)
        return self._root

    def pool_dir(self, era: str | None, biome: str | None) -> Path:
        """Where successful images of an era and biome live (their fallback pool); the root without them."""
        if era is None or biome is None:
            return self._root
        return self._root / era / biome

    def encode(self, result: bytes | Image.Image, size: tuple[int, int]) -> bytes:
        """A render's result in the configured format at ``size``.

        Encoded bytes that already have that format and size pass through unchanged.

        Args:
            result: What the render returned: image bytes of any format PIL reads, or a PIL image.
            size: The requested ``(width, height)``.

        Returns:
            The encoded image.

        Raises:
            TypeError: ``result`` is neither bytes nor a PIL image.
            OSError: ``result`` is bytes PIL cannot read.
        """
        if isinstance(result, bytes | bytearray | memoryview):
            raw = bytes(result)
            image = codec.decode(raw)
            if image.size == size and image.format == _PIL_NAMES[self._format]:
                return raw
            return self._encode_image(image, size)
        if isinstance(result, Image.Image):
            return self._encode_image(result, size)
        raise TypeError(f"render returned {type(result).__name__}, expected bytes or a PIL image")

    def write(self, request_id: str, data: bytes, *, era: str | None, biome: str | None) -> Path:
        """Writes a request's image into its pool and remembers it as the pool's newest.

        Args:
            request_id: The core's request id (part of the file name).
            data: The encoded image (see :meth:`encode`).
            era: The request's era, if any.
            biome: The request's biome, if any.

        Returns:
            The absolute path written.
        """
        path = self._write(self.pool_dir(era, biome), request_id, data)
        self._newest[(era, biome)] = path
        return path

    def write_fallback(self, request_id: str, size: tuple[int, int], *, era: str | None, biome: str | None) -> Path:
        """Writes the fallback answer for a request (see :meth:`fallback_image`) under ``fallback/``.

        Args:
            request_id: The core's request id (part of the file name).
            size: The requested ``(width, height)``.
            era: The request's era, if any.
            biome: The request's biome, if any.

        Returns:
            The absolute path written.
        """
        data, source = self.fallback_image(size, era=era, biome=biome)
        if source is not None:
            self._newest[(era, biome)] = source
        return self._write(self._root / _FALLBACK_DIR, request_id, data)

    def fallback_image(self, size: tuple[int, int], *, era: str | None, biome: str | None) -> tuple[bytes, Path | None]:
        """The encoded fallback image at ``size``, and the previous image it came from.

        Args:
            size: The requested ``(width, height)``.
            era: The request's era, if any.
            biome: The request's biome, if any.

        Returns:
            ``(image, source)``: the newest usable image of the pool (the one remembered first, then the
            newest file), or a neutral image and ``None`` when there is none or ``use_previous`` is off. A
            previous image that is not PNG, JPEG or WebP, or is over ``max_source_bytes`` or
            ``max_source_pixels``, is not usable.
        """
        if self._fallback.use_previous:
            remembered = self._newest.get((era, biome))
            candidates = [remembered] if remembered is not None and remembered.is_file() else []
            candidates.append(_newest_image(self.pool_dir(era, biome)))
            for candidate in candidates:
                if candidate is None:
                    continue
                try:
                    return self._encode_image(self._read_previous(candidate), size), candidate
                except (OSError, ValueError) as exc:
                    logger.warning("previous image %s unusable (%s)", candidate, exc)
        neutral = Image.new("RGB", size, self._fallback.color)
        return self._encode_image(neutral, size), None

    def _read_previous(self, path: Path) -> Image.Image:
        """A previous image, decoded only within the size limits and formats (raises ValueError otherwise)."""
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size > self._max_source_bytes:
                raise ValueError(f"{size} bytes, more than {self._max_source_bytes}")
            data = file.read(self._max_source_bytes + 1)
        if len(data) > self._max_source_bytes:
            raise ValueError(f"more than {self._max_source_bytes} bytes")
        try:
            image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
        except Image.DecompressionBombError as exc:
            raise ValueError(str(exc)) from None
        if image.width * image.height > self._max_source_pixels:
            raise ValueError(f"{image.width}x{image.height}, more than {self._max_source_pixels} pixels")
        image.load()
        return image

    def prune(self, policy: OutputRetention, *, now: float | None = None) -> PruneReport:
        """Removes the bridge's old images, pool by pool, as ``policy`` says.

        In each pool (the root, ``fallback/`` and every ``<era>/<biome>/``), the bridge's own images
        (``limner_*``) beyond the newest ``max_files`` or older than ``max_age_hours`` are removed, except the
        file ``latest.<ext>`` points at, the pool's newest image (of any name: the one a fallback would pick),
        the images the fallbacks remember, and anything younger than ``min_age_s``.

        Args:
            policy: The retention policy.
            now: Epoch seconds to measure ages from (default: now).

        Returns:
            What was removed and kept.
        """
        now = time.time() if now is None else now
        report = PruneReport()
        protected = set(self._newest.values())
        latest = self._latest_target()
        if latest is not None:
            protected.add(latest)
        for pool in self._pools():
            newest_any = _newest_image(pool)
            own = _own_images(pool)
            own.sort(key=lambda item: (item[0], item[1].name), reverse=True)
            for rank, (mtime, path, size) in enumerate(own):
                too_many = policy.max_files is not None and rank >= policy.max_files
                too_old = policy.max_age_hours is not None and now - mtime > policy.max_age_hours * 3600
                keep = (
                    not (too_many or too_old)
                    or path == newest_any
                    or path in protected
                    or now - mtime < policy.min_age_s
                )
                if keep:
                    report.kept += 1
                    continue
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    report.failed += 1
                    logger.warning("retention: cannot remove %s (%s)", path, exc)
                    continue
                report.removed.append(path)
                report.freed_bytes += size
        if report.removed or report.failed:
            logger.info(
                "retention: removed %d images (%d bytes), kept %d, %d failed",
                len(report.removed),
                report.freed_bytes,
                report.kept,
                report.failed,
            )
        return report

    def _latest_target(self) -> Path | None:
        link = self._root / f"latest.{self._ext}"
        try:
            target = os.readlink(link)
        except OSError:
            return None
        return Path(os.path.normpath(os.path.join(self._root, target)))

    def _pools(self) -> Iterator[Path]:
        """The root, ``fallback/`` and every ``<era>/<biome>/`` folder (real folders only, no symlinks)."""
        yield self._root
        for first in _subdirs(self._root):
            if first.name == _FALLBACK_DIR:
                yield first
                continue
            yield from _subdirs(first)

    def point_latest(self, target: Path) -> None:
        """Re-points ``latest.<ext>`` at ``target`` (relative, swapped atomically); a failure is only logged."""
        link = self._root / f"latest.{self._ext}"
        temp = self._root / f".latest-{uuid.uuid4().hex}"
        try:
            os.symlink(os.path.relpath(target, self._root), temp)
            os.replace(temp, link)
        except OSError as exc:
            logger.warning("cannot re-point %s: %s", link, exc)
            with contextlib.suppress(OSError):
                os.unlink(temp)

    def _write(self, directory: Path, request_id: str, data: bytes) -> Path:
        stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
        path = directory / f"limner_{stamp}_{_safe_name(request_id)}.{self._ext}"
        # No fsync, as the bridge has always written its images: the core reads the file at once,
        # and one a power cut spoiled fails to decode, so it is never served as a fallback.
        atomic_write(path, data, fsync=False)
        return path

    def _encode_image(self, image: Image.Image, size: tuple[int, int]) -> bytes:
        # convert("RGB") drops alpha rather than flattening it on white, as the bridge always has.
        fitted = codec.fit(image.convert("RGB"), size)
        return codec.encode(fitted, self._format, quality=self._quality)


def _safe_name(request_id: str) -> str:
    """A file-name-safe form of the id; a hash is added whenever the id had to be changed, to stay unique."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", request_id)[:80]
    if safe != request_id:
        safe += "-" + hashlib.sha256(request_id.encode("utf-8")).hexdigest()[:10]
    return safe


def _subdirs(directory: Path) -> list[Path]:
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    out = []
    for item in entries:
        try:
            if item.is_dir(follow_symlinks=False) and not item.name.startswith("."):
                out.append(Path(item.path))
        except OSError:
            continue
    return out


def _own_images(directory: Path) -> list[tuple[float, Path, int]]:
    """``(mtime, path, size)`` of the bridge's own images directly in ``directory`` (regular files only)."""
    found: list[tuple[float, Path, int]] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return found
    for item in entries:
        if not item.name.startswith(_OWN_PREFIX) or not item.name.lower().endswith(_IMAGE_SUFFIXES):
            continue
        try:
            if not item.is_file(follow_symlinks=False):
                continue
            info = item.stat(follow_symlinks=False)
        except OSError:
            continue
        found.append((info.st_mtime, Path(item.path), info.st_size))
    return found


def _newest_image(directory: Path) -> Path | None:
    """The most recently modified image file directly in ``directory`` (no symlinks, no temp files)."""
    newest: tuple[float, Path] | None = None
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return None
    for item in entries:
        if item.name.startswith(".") or not item.name.lower().endswith(_IMAGE_SUFFIXES):
            continue
        try:
            if not item.is_file(follow_symlinks=False):
                continue
            mtime = item.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if newest is None or mtime > newest[0]:
            newest = (mtime, Path(item.path))
    return newest[1] if newest else None
