"""Image metadata: the rows that describe stored images, their versions and their soft deletion.

Images belong to a tenant (serve_app/auth/tenant.py): a row made now belongs to ``owner_tenant()``; scoped to a
tenant, only its images are found (another tenant's id is :class:`ImageNotFound`, like a missing one), and the
request-hash lookups that let a re-run find its image look among the owner's images only, so one tenant never
gets another's image for the same request. The byte store is content-addressed and shared: only rows are owned.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from serve_app.auth.tenant import current_tenant, owner_tenant
from serve_app.db import READ_ONLY, Image, make_session_factory, utcnow

__all__ = ["ImageNotFound", "ImageRecord", "ImageRepository"]


class ImageNotFound(LookupError):
    """No (live) image has this id."""

    def __init__(self, image_id: uuid.UUID | str) -> None:
        super().__init__(image_id)
        self.image_id = str(image_id)

    def __str__(self) -> str:
        return f"no image with id {self.image_id}"


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """A snapshot of an image row: plain data."""

    id: uuid.UUID
    kind: str
    prompt: str | None
    negative_prompt: str | None
    seed: int | None
    settings: dict[str, Any]
    theme_id: uuid.UUID | None
    model: str | None
    width: int
    height: int
    content_hash: str
    request_hash: str | None
    format: str
    parent_id: uuid.UUID | None
    version: int
    created_at: datetime
    deleted_at: datetime | None
    theme_version: int | None = None
    subject_key: str | None = None
    backend: str | None = None
    cost_usd: float | None = None
    tenant: str = ""

    @classmethod
    def from_row(cls, row: Image) -> ImageRecord:
        return cls(
            id=row.id,
            kind=row.kind,
            prompt=row.prompt,
            negative_prompt=row.negative_prompt,
            seed=row.seed,
            settings=dict(row.settings or {}),
            theme_id=row.theme_id,
            model=row.model,
            width=row.width,
            height=row.height,
            content_hash=row.content_hash,
            request_hash=row.request_hash,
            format=row.format,
            parent_id=row.parent_id,
            version=row.version,
            created_at=row.created_at,
            deleted_at=row.deleted_at,
            theme_version=row.theme_version,
            subject_key=row.subject_key,
            backend=row.backend,
            cost_usd=row.cost_usd,
            tenant=row.tenant or "",
        )


def _visible(row: Image | None) -> bool:
    """Whether ``row`` exists and the current scope may see it."""
    tenant = current_tenant()
    return row is not None and (tenant is None or row.tenant == tenant)


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        raise ImageNotFound(value) from None


class ImageRepository:
    """Reads and writes image rows.

    Args:
        engine: The metadata database (migrated).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = make_session_factory(engine)

    async def get_or_create(self, image: Image) -> ImageRecord:
        """Returns the live image made by the same request (same request hash, same parent), or inserts ``image``.

        A job that is run again (its runner died after storing the image but before finishing the job) finds
        the row its first attempt wrote instead of adding a duplicate, even if it drew the pixels again.
        """
        return (await self.find_or_create(image))[0]

    async def find_or_create(self, image: Image) -> tuple[ImageRecord, bool]:
        """:meth:`get_or_create`, and whether the row is new (committed by this call). The row belongs to the
        current tenant (``owner_tenant()``), and only that tenant's rows are reused."""
        image.tenant = owner_tenant()
        async with self._sessions() as session, session.begin():
            if image.request_hash is not None:
                row = await self._by_request_hash(session, image.request_hash, image.parent_id)
                if row is not None:
                    return ImageRecord.from_row(row), False
            session.add(image)
            await session.flush()
            record = ImageRecord.from_row(image)
        return record, True

    async def find_by_request_hash(self, request_hash: str) -> ImageRecord | None:
        """The live, underived image a request with this hash made for the current tenant (``owner_tenant()``)."""
        async with self._sessions() as session:
            await session.connection(execution_options=READ_ONLY)
            row = await self._by_request_hash(session, request_hash, None)
            return None if row is None else ImageRecord.from_row(row)

    @staticmethod
    async def _by_request_hash(session: Any, request_hash: str, parent_id: uuid.UUID | None) -> Image | None:
        query = select(Image).where(
            Image.request_hash == request_hash,
            Image.tenant == owner_tenant(),
            Image.deleted_at.is_(None),
            Image.parent_id.is_(None) if parent_id is None else Image.parent_id == parent_id,
        )
        row: Image | None = (await session.scalars(query.order_by(Image.created_at).limit(1))).first()
        return row

    async def get(self, image_id: uuid.UUID | str, *, include_deleted: bool = False) -> ImageRecord:
        """Returns the image; raises :class:`ImageNotFound` when absent, soft-deleted or another tenant's."""
        async with self._sessions() as session:
            await session.connection(execution_options=READ_ONLY)
            row = await session.get(Image, _uuid(image_id))
            if row is None or not _visible(row) or (row.deleted_at is not None and not include_deleted):
                raise ImageNotFound(image_id)
            return ImageRecord.from_row(row)

    async def versions(self, image_id: uuid.UUID | str) -> list[ImageRecord]:
        """The image's family: its root and every image derived from it, oldest version first (the current
        tenant's images only, when scoped)."""
        image = await self.get(image_id)
        root = image
        async with self._sessions() as session:
            await session.connection(execution_options=READ_ONLY)  # a reader: no write lock on SQLite
            while root.parent_id is not None:
                parent = await session.get(Image, root.parent_id)
                if parent is None or not _visible(parent):
                    break
                root = ImageRecord.from_row(parent)
            family = [root]
            frontier = [root.id]
            tenant = current_tenant()
            while frontier:
                children = select(Image).where(Image.parent_id.in_(frontier))
                if tenant is not None:
                    children = children.where(Image.tenant == tenant)
                rows = (await session.scalars(children)).all()
                family += [ImageRecord.from_row(r) for r in rows]
                frontier = [r.id for r in rows]
        live = [r for r in family if r.deleted_at is None]
        return sorted(live, key=lambda r: (r.version, r.created_at))

    async def soft_delete(self, image_id: uuid.UUID | str) -> ImageRecord:
        """Marks the image deleted: its metadata answers 404 at once; its row (and so its bytes, which garbage
        collection keeps while a row names them) goes when :meth:`purge_deleted` runs after the grace period."""
        async with self._sessions() as session, session.begin():
            row = await session.get(Image, _uuid(image_id))
            if row is None or not _visible(row) or row.deleted_at is not None:
                raise ImageNotFound(image_id)
            row.deleted_at = utcnow()
            await session.flush()
            return ImageRecord.from_row(row)

    async def purge_deleted(self, before: datetime, *, limit: int = 1000) -> list[str]:
        """Deletes up to ``limit`` rows of images soft-deleted before ``before``; returns their content hashes.

        Their derived images keep their own rows (``parent_id`` becomes NULL), jobs keep their ids in their
        results (``result_image_id`` becomes NULL), overlays of the image go with it. Call again while it
        returns ``limit`` hashes.
        """
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        query = (
            select(Image.id, Image.content_hash)
            .where(Image.deleted_at.is_not(None), Image.deleted_at < before)
            .limit(limit)
        )
        async with self._sessions() as session, session.begin():
            rows = (await session.execute(query)).all()
            if rows:
                await session.execute(delete(Image).where(Image.id.in_([row.id for row in rows])))
        return [row.content_hash for row in rows]

    async def referenced_hashes(self) -> set[str]:
        """Content hashes of every image row, deleted or not (the garbage collector keeps these)."""
        async with self._sessions() as session:
            await session.connection(execution_options=READ_ONLY)
            return set((await session.scalars(select(Image.content_hash))).all())
