"""The asset store on an fsspec filesystem: a local directory by default, any fsspec URL by config.

Layout under the root (``ab/cd`` are the first four hex digits of the sha256)::

    ab/cd/abcd....png           a blob, named by the sha256 of its bytes
    derived/ab/cd/abcd....webp  another format of blob abcd..., made on request
    ab/cd/.tmp-<uuid>-<name>    a write in progress (or left by a crash; collected after the grace period)
    ab/cd/.gc-<uuid>-<name>     a blob being collected (see below)

On a local filesystem the store uses the operating system directly: a write is fsynced, then renamed into
place with ``os.replace`` (:func:`serve_app.files.atomic_write`), and collection is race-free (it renames a
candidate aside, checks that nobody refreshed it in between, and only then deletes it). On other filesystems
it goes through fsspec; object stores make a PUT visible whole, and the only window left is between
collection's last age check and its delete of a blob that had been unreferenced and old for the whole grace
period.

fsspec calls are blocking, so every operation runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import posixpath
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, cast

import fsspec
from fsspec.implementations.local import LocalFileSystem

from pipelines.encode import ImageFormat, transcode
from serve_app.files import TEMP_PREFIX, atomic_write
from serve_app.store.base import (
    DERIVABLE_FORMATS,
    AssetNotFound,
    CollectResult,
    DerivedAsset,
    UnsupportedFormat,
    normalize_ext,
    validate_sha256,
)

__all__ = ["FsspecAssetStore"]

_TMP = TEMP_PREFIX
_TRASH = ".gc-"
_DERIVED = "derived"


class FsspecAssetStore:
    """Content-addressed asset store on fsspec.

    Args:
        url: Where blobs live: a local path (``/var/limner/assets``), a ``file://`` URL, or any fsspec URL
            (``memory://assets``, ``s3://bucket/assets``...).
        clock: Returns the current time in epoch seconds; used to judge blob ages.
        refresh_after_s: A put of bytes already stored makes the stored blob young again if it is older than
            this (on a local filesystem it always does, it costs one ``utime``). Keep it well below the
            collection grace period.
        **storage_options: Passed to the fsspec filesystem (credentials, endpoint...).
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        refresh_after_s: float = 600.0,
        **storage_options: Any,
    ) -> None:
        fs, root = fsspec.core.url_to_fs(url, **storage_options)
        self._fs: fsspec.AbstractFileSystem = fs
        self._local = isinstance(fs, LocalFileSystem)
        self._root: str = os.path.abspath(root) if self._local else str(root).rstrip("/")
        self._clock = clock
        self._refresh_after_s = refresh_after_s

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        """The fsspec filesystem."""
        return self._fs

    @property
    def root(self) -> str:
        """The root path on :attr:`fs`."""
        return self._root

    @property
    def is_local(self) -> bool:
        """Whether blobs are plain local files."""
        return self._local

    # -- paths ----------------------------------------------------------------------------------------------

    def path(self, sha256: str, ext: str, *, derived: bool = False) -> str:
        """Return the path of blob ``sha256.ext`` on :attr:`fs` (validating both parts)."""
        sha = validate_sha256(sha256)
        name = f"{sha}.{normalize_ext(ext)}"
        parts = [self._root, *([_DERIVED] if derived else []), sha[:2], sha[2:4], name]
        return str(os.path.join(*parts)) if self._local else posixpath.join(*parts)

    def _dirname(self, path: str) -> str:
        return os.path.dirname(path) if self._local else posixpath.dirname(path)

    def _join(self, folder: str, name: str) -> str:
        return os.path.join(folder, name) if self._local else posixpath.join(folder, name)

    def url(self, sha256: str, ext: str) -> str:
        """Return the blob's fsspec URL, e.g. ``file:///var/limner/assets/ab/cd/abcd....png``."""
        return str(self._fs.unstrip_protocol(self.path(sha256, ext)))

    # -- low level, blocking ---------------------------------------------------------------------------

    def _exists(self, path: str) -> bool:
        return os.path.isfile(path) if self._local else bool(self._fs.isfile(path))

    def _mtime(self, path: str) -> float:
        if self._local:
            return os.stat(path).st_mtime
        try:
            return float(self._fs.modified(path).timestamp())
        except NotImplementedError:
            info = self._fs.info(path)
            for key in ("mtime", "LastModified", "last_modified", "created"):
                value = info.get(key)
                if value is not None:
                    return float(value.timestamp() if hasattr(value, "timestamp") else value)
            raise

    def _write_atomic(self, path: str, data: bytes) -> None:
        if self._local:
            atomic_write(path, data)
            return
        folder = self._dirname(path)
        tmp = self._join(folder, f"{_TMP}{uuid.uuid4().hex}-{os.path.basename(path)}")
        self._fs.makedirs(folder, exist_ok=True)
        try:
            with self._fs.open(tmp, "wb") as handle:
                handle.write(data)
            self._fs.mv(tmp, path)
        except BaseException:
            self._discard(tmp)
            raise

    def _discard(self, path: str) -> None:
        try:
            if self._local:
                os.remove(path)
            else:
                self._fs.rm_file(path)
        except FileNotFoundError:
            pass

    def _refresh(self, path: str, data: bytes) -> bool:
        """Make an existing blob young again; return ``False`` if there is no blob at ``path``."""
        if self._local:
            try:
                os.utime(path)
            except FileNotFoundError:
                return False
            return True
        if not self._exists(path):
            return False
        try:
            if self._clock() - self._mtime(path) < self._refresh_after_s:
                return True
        except FileNotFoundError:
            return False
        try:
            self._fs.touch(path, truncate=False)
        except (NotImplementedError, ValueError, OSError):
            self._write_atomic(path, data)  # same bytes, new age
        return True

    def _put(self, data: bytes, ext: str) -> str:
        sha = hashlib.sha256(data).hexdigest()
        path = self.path(sha, ext)
        if not self._refresh(path, data):
            self._write_atomic(path, data)
        return sha

    def _find(self, sha256: str, ext: str) -> str:
        for derived in (False, True):
            path = self.path(sha256, ext, derived=derived)
            if self._exists(path):
                return path
        raise AssetNotFound(sha256, normalize_ext(ext))

    def _read(self, sha256: str, ext: str, start: int = 0, end: int | None = None) -> bytes:
        path = self._find(sha256, ext)
        try:
            if self._local:
                with open(path, "rb") as handle:
                    handle.seek(start)
                    return handle.read(-1 if end is None else max(end - start, 0))
            return bytes(self._fs.cat_file(path, start=start, end=end))
        except FileNotFoundError as exc:
            raise AssetNotFound(sha256, normalize_ext(ext)) from exc

    def _size(self, sha256: str, ext: str) -> int:
        path = self._find(sha256, ext)
        try:
            return os.path.getsize(path) if self._local else int(self._fs.size(path))
        except FileNotFoundError as exc:
            raise AssetNotFound(sha256, normalize_ext(ext)) from exc

    # -- public API -----------------------------------------------------------------------------------------

    async def put(self, data: bytes, ext: str) -> str:
        """Store ``data`` under its sha256 and return the digest.

        Bytes already stored are not written again (their age is refreshed, so a collection running now
        does not take them from the job that just put them).

        Args:
            data: The blob.
            ext: Its format (``png``, ``webp``, ``jpeg``...).

        Returns:
            The sha256 hex digest.

        Raises:
            InvalidAssetKey: ``ext`` is not a valid extension.
        """
        normalize_ext(ext)
        return await asyncio.to_thread(self._put, bytes(data), ext)

    async def get(self, sha256: str, ext: str) -> bytes:
        """Return the blob's bytes (a stored blob first, else a derived one).

        Raises:
            AssetNotFound: Nothing is stored under this key.
            InvalidAssetKey: The key is malformed.
        """
        return await asyncio.to_thread(self._read, sha256, ext)

    async def read_range(self, sha256: str, ext: str, start: int, end: int | None = None) -> bytes:
        """Return bytes ``[start, end)`` of the blob; ``end=None`` reads to the end.

        Raises:
            AssetNotFound: Nothing is stored under this key.
            ValueError: ``start`` is negative or ``end`` before ``start``.
        """
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"invalid byte range start={start} end={end}")
        return await asyncio.to_thread(self._read, sha256, ext, start, end)

    async def iter_bytes(
        self, sha256: str, ext: str, *, start: int = 0, end: int | None = None, chunk_size: int = 262144
    ) -> AsyncIterator[bytes]:
        """Stream bytes ``[start, end)`` of the blob in chunks of at most ``chunk_size``.

        Raises:
            AssetNotFound: Nothing is stored under this key (raised before the first chunk).
        """
        if start < 0 or (end is not None and end < start) or chunk_size < 1:
            raise ValueError(f"invalid byte range start={start} end={end} chunk_size={chunk_size}")
        path = await asyncio.to_thread(self._find, sha256, ext)
        try:
            handle = await asyncio.to_thread(self._fs.open, path, "rb")
        except FileNotFoundError as exc:
            raise AssetNotFound(sha256, normalize_ext(ext)) from exc
        try:
            await asyncio.to_thread(handle.seek, start)
            position = start
            while end is None or position < end:
                want = chunk_size if end is None else min(chunk_size, end - position)
                chunk = await asyncio.to_thread(handle.read, want)
                if not chunk:
                    break
                position += len(chunk)
                yield chunk
        finally:
            await asyncio.to_thread(handle.close)

    async def exists(self, sha256: str, ext: str) -> bool:
        """Whether a blob (or a derived blob) is stored under this key."""
        try:
            await asyncio.to_thread(self._find, sha256, ext)
        except AssetNotFound:
            return False
        return True

    async def size(self, sha256: str, ext: str) -> int:
        """Return the blob's size in bytes.

        Raises:
            AssetNotFound: Nothing is stored under this key.
        """
        return await asyncio.to_thread(self._size, sha256, ext)

    async def local_path(self, sha256: str, ext: str) -> str | None:
        """Return the blob's file path on a local store (for zero-copy file responses), else ``None``."""
        if not self._local:
            return None
        try:
            return await asyncio.to_thread(self._find, sha256, ext)
        except AssetNotFound:
            return None

    # -- derived formats ------------------------------------------------------------------------------------

    async def derive(self, sha256: str, from_ext: str, to_ext: str, *, quality: int = 90) -> DerivedAsset:
        """Return blob ``sha256`` in format ``to_ext``, converting (once) from ``sha256.from_ext``.

        The conversion is stored under ``derived/`` keyed by the source's sha256 and ``to_ext``, so the
        next call (and :meth:`get` with ``to_ext``) finds it.

        Args:
            sha256: The source blob.
            from_ext: The source's format.
            to_ext: ``png``, ``webp`` or ``jpeg`` (``jpg``).
            quality: Lossy encoder quality, 1 to 100.

        Returns:
            Where the derived blob is and whether it was already there.

        Raises:
            UnsupportedFormat: ``to_ext`` cannot be derived.
            AssetNotFound: The source blob is not stored.
        """
        target = normalize_ext(to_ext)
        if target not in DERIVABLE_FORMATS:
            raise UnsupportedFormat(target)
        if not 1 <= quality <= 100:
            raise ValueError(f"quality must be between 1 and 100, got {quality}")
        return await asyncio.to_thread(self._derive, validate_sha256(sha256), normalize_ext(from_ext), target, quality)

    def _derive(self, sha: str, source_ext: str, target: str, quality: int) -> DerivedAsset:
        for derived in (False, True):
            path = self.path(sha, target, derived=derived)
            if self._exists(path):
                try:
                    size = os.path.getsize(path) if self._local else int(self._fs.size(path))
                except FileNotFoundError:
                    continue
                return DerivedAsset(sha256=sha, ext=target, size=size, hit=True)
        source = self._read(sha, source_ext)
        data = transcode(source, cast(ImageFormat, target), quality=quality)
        self._write_atomic(self.path(sha, target, derived=True), data)
        return DerivedAsset(sha256=sha, ext=target, size=len(data), hit=False)

    # -- garbage collection ---------------------------------------------------------------------------------

    async def collect(
        self, referenced: Iterable[str], *, older_than_s: float = 3600.0, dry_run: bool = False
    ) -> CollectResult:
        """Remove blobs no one references that are older than ``older_than_s`` seconds.

        Derived blobs live and die with their source's sha256. Temporary files left by a crashed write are
        removed once older than the grace period too.

        Args:
            referenced: The sha256 digests still in use (from the images table, say).
            older_than_s: The grace period. It must exceed the time between a job's put and the commit
                that references the blob; an hour is generous.
            dry_run: Report what would be removed, remove nothing.

        Returns:
            What was removed and kept.
        """
        if older_than_s < 0:
            raise ValueError(f"older_than_s must be >= 0, got {older_than_s}")
        keep = frozenset(referenced)
        return await asyncio.to_thread(self._collect, keep, older_than_s, dry_run)

    def _walk(self) -> list[str]:
        if self._local:
            found: list[str] = []
            for folder, _dirs, files in os.walk(self._root):
                found.extend(os.path.join(folder, name) for name in files)
            return found
        try:
            return [str(p) for p in self._fs.find(self._root)]
        except FileNotFoundError:
            return []

    def _collect(self, keep: frozenset[str], grace: float, dry_run: bool) -> CollectResult:
        result = CollectResult()
        for path in self._walk():
            name = os.path.basename(path)
            try:
                if name.startswith(_TMP):
                    if self._clock() - self._mtime(path) >= grace:
                        self._remove(path, result, dry_run)
                    continue
                if name.startswith(_TRASH):
                    self._settle_trash(path, name, keep, grace, result, dry_run)
                    continue
                sha = name.split(".", 1)[0]
                if len(sha) != 64 or not all(c in "0123456789abcdef" for c in sha):
                    continue  # not ours
                if sha in keep:
                    result.kept_referenced += 1
                    continue
                if self._clock() - self._mtime(path) < grace:
                    result.kept_recent += 1
                    continue
                if dry_run:
                    self._remove(path, result, dry_run=True)
                elif self._local:
                    self._collect_local(path, grace, result)
                else:
                    self._collect_remote(path, grace, result)
            except FileNotFoundError:
                continue  # removed or renamed under us: nothing to do
        return result

    def _remove(self, path: str, result: CollectResult, dry_run: bool) -> None:
        size = os.path.getsize(path) if self._local else int(self._fs.size(path))
        if not dry_run:
            self._discard(path)
        result.removed.append(path)
        result.bytes_freed += size

    def _collect_local(self, path: str, grace: float, result: CollectResult) -> None:
        before = os.stat(path)
        if self._clock() - before.st_mtime < grace:
            result.kept_recent += 1
            return
        trash = os.path.join(os.path.dirname(path), f"{_TRASH}{uuid.uuid4().hex}-{os.path.basename(path)}")
        os.rename(path, trash)  # from here on a put of these bytes writes a fresh copy
        after = os.stat(trash)
        if after.st_mtime_ns != before.st_mtime_ns:
            # A put refreshed the blob between our look and the rename: it is wanted again.
            os.replace(trash, path)
            result.kept_recent += 1
            return
        os.remove(trash)
        result.removed.append(path)
        result.bytes_freed += after.st_size

    def _collect_remote(self, path: str, grace: float, result: CollectResult) -> None:
        if self._clock() - self._mtime(path) < grace:
            result.kept_recent += 1
            return
        self._remove(path, result, dry_run=False)

    def _settle_trash(
        self, path: str, name: str, keep: frozenset[str], grace: float, result: CollectResult, dry_run: bool
    ) -> None:
        # A collection that stopped between its rename and its delete: finish or undo it.
        original = name[len(_TRASH) :].split("-", 1)[-1]
        final = self._join(os.path.dirname(path), original)
        wanted = original.split(".", 1)[0] in keep or self._clock() - self._mtime(path) < grace
        if dry_run:
            if not wanted:
                self._remove(path, result, dry_run=True)
            return
        if wanted and not self._exists(final):
            if self._local:
                os.replace(path, final)
            else:
                self._fs.mv(path, final)
            return
        self._remove(path, result, dry_run=False)
