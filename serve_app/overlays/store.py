"""Overlays in the metadata database: a spec drawn on a background image, in immutable versions.

An overlay's id stays the same across edits; each ``PUT`` writes version n + 1 (its spec, the render it made and
the geometry it measured) and moves the overlay's current pointer to it. A tactical map is an overlay of kind
``tactical_map``. Optimistic concurrency: an update may name the version it edits (``If-Match``), and a stale
one is refused rather than lost.

Overlays belong to a tenant (serve_app/auth/tenant.py): one made now is ``owner_tenant()``'s; scoped to a tenant,
another tenant's overlay is :class:`OverlayNotFound`, like a missing one, and so are its versions.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from serve_app.auth.tenant import current_tenant, owner_tenant
from serve_app.db import READ_ONLY, Overlay, OverlayVersion, make_session_factory

__all__ = ["OverlayConflict", "OverlayNotFound", "OverlayRecord", "OverlayStore", "OverlayVersionRecord"]


class OverlayNotFound(LookupError):
    """No (live) overlay or map has this id, or it has no such version."""

    def __init__(self, overlay_id: uuid.UUID | str, version: int | None = None) -> None:
        super().__init__(overlay_id, version)
        self.overlay_id = str(overlay_id)
        self.version = version

    def __str__(self) -> str:
        if self.version is not None:
            return f"overlay {self.overlay_id} has no version {self.version}"
        return f"no overlay with id {self.overlay_id}"


class OverlayConflict(Exception):
    """An update named a version that is no longer the current one."""

    def __init__(self, overlay_id: str, expected: int, current: int) -> None:
        super().__init__(overlay_id, expected, current)
        self.overlay_id, self.expected, self.current = overlay_id, expected, current

    def __str__(self) -> str:
        return f"overlay {self.overlay_id} is at version {self.current}, not {self.expected}: reload and retry"


@dataclass(frozen=True)
class OverlayRecord:
    """An overlay and its current version."""

    id: uuid.UUID
    kind: str
    image_id: uuid.UUID
    version: int
    spec: dict[str, Any]
    geometry: dict[str, Any]
    result_image_id: uuid.UUID | None
    job_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class OverlayVersionRecord:
    """One immutable version."""

    overlay_id: uuid.UUID
    version: int
    spec: dict[str, Any]
    geometry: dict[str, Any]
    result_image_id: uuid.UUID | None
    created_at: datetime


class OverlayStore:
    """Overlay rows and their versions.

    Args:
        engine: The metadata database (migrated).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = make_session_factory(engine)

    async def create(
        self,
        *,
        kind: str,
        image_id: str | uuid.UUID,
        spec: Mapping[str, Any],
        geometry: Mapping[str, Any],
        result_image_id: str | uuid.UUID | None,
        overlay_id: str | uuid.UUID | None = None,
        job_id: str | uuid.UUID | None = None,
    ) -> OverlayRecord:
        """Writes version 1 of a new overlay. With ``overlay_id`` given and already stored (a job's retry), the
        stored overlay is answered unchanged."""
        oid = uuid.UUID(str(overlay_id)) if overlay_id is not None else uuid.uuid4()
        try:
            async with self._sessions() as session, session.begin():
                existing = await session.get(Overlay, oid)
                if existing is not None:
                    if not _visible(existing):  # another tenant's id: not this caller's to answer with
                        raise OverlayNotFound(oid)
                    return _record(existing)
                row = Overlay(
                    id=oid,
                    tenant=owner_tenant(),
                    kind=kind,
                    image_id=uuid.UUID(str(image_id)),
                    spec=dict(spec),
                    geometry=dict(geometry),
                    result_image_id=_uuid(result_image_id),
                    version=1,
                    job_id=_uuid(job_id),
                )
                session.add(row)
                session.add(
                    OverlayVersion(
                        overlay_id=oid,
                        version=1,
                        spec=dict(spec),
                        geometry=dict(geometry),
                        result_image_id=_uuid(result_image_id),
                    )
                )
                await session.flush()
                return _record(row)
        except IntegrityError:  # the same id, created by a racing attempt
            return await self.get(oid)

    async def get(self, overlay_id: str | uuid.UUID, *, kind: str | None = None) -> OverlayRecord:
        """The overlay (of ``kind``, when given).

        Raises:
            OverlayNotFound: None (live) with this id and kind; a malformed id is not found either.
        """
        oid = _parse(overlay_id)
        async with self._sessions() as session:
            await session.connection(execution_options=READ_ONLY)
            row = await session.get(Overlay, oid)
        if row is None or not _visible(row) or row.deleted_at is not None or (kind is not None and row.kind != kind):
            raise OverlayNotFound(overlay_id)
        return _record(row)

    async def version(self, overlay_id: str | uuid.UUID, version: int) -> OverlayVersionRecord:
        """One version of an overlay.

        Raises:
            OverlayNotFound: No such overlay or version.
        """
        oid = _parse(overlay_id)
        async with self._sessions() as session:
            await session.connection(execution_options=READ_ONLY)
            if not _visible(await session.get(Overlay, oid)):
                raise OverlayNotFound(overlay_id)
            row = await session.scalar(
                select(OverlayVersion).where(OverlayVersion.overlay_id == oid, OverlayVersion.version == version)
            )
        if row is None:
            raise OverlayNotFound(overlay_id, version)
        return _version(row)

    async def versions(self, overlay_id: str | uuid.UUID) -> list[OverlayVersionRecord]:
        """Every version, oldest first."""
        oid = _parse(overlay_id)
        await self.get(oid)
        async with self._sessions() as session:
            await session.connection(execution_options=READ_ONLY)
            rows = await session.scalars(
                select(OverlayVersion).where(OverlayVersion.overlay_id == oid).order_by(OverlayVersion.version)
            )
            return [_version(row) for row in rows]

    async def update(
        self,
        overlay_id: str | uuid.UUID,
        *,
        spec: Mapping[str, Any],
        geometry: Mapping[str, Any],
        result_image_id: str | uuid.UUID | None,
        expected_version: int | None = None,
    ) -> OverlayRecord:
        """Writes the next version and makes it current.

        Raises:
            OverlayNotFound: No such live overlay.
            OverlayConflict: ``expected_version`` is given and is not the current version (another edit won).
        """
        oid = _parse(overlay_id)
        for _attempt in range(3):
            try:
                async with self._sessions() as session, session.begin():
                    row = await session.get(Overlay, oid, with_for_update=True)
                    if row is None or not _visible(row) or row.deleted_at is not None:
                        raise OverlayNotFound(overlay_id)
                    if expected_version is not None and row.version != expected_version:
                        raise OverlayConflict(str(oid), expected_version, row.version)
                    row.version += 1
                    row.spec = dict(spec)
                    row.geometry = dict(geometry)
                    row.result_image_id = _uuid(result_image_id)
                    session.add(
                        OverlayVersion(
                            overlay_id=oid,
                            version=row.version,
                            spec=dict(spec),
                            geometry=dict(geometry),
                            result_image_id=_uuid(result_image_id),
                        )
                    )
                    await session.flush()
                    return _record(row)
            except IntegrityError:  # a concurrent update took this version number: read again
                if expected_version is not None:
                    current = await self.get(oid)
                    raise OverlayConflict(str(oid), expected_version, current.version) from None
        raise OverlayConflict(str(oid), expected_version or 0, (await self.get(oid)).version)


def _visible(row: Overlay | None) -> bool:
    """Whether ``row`` exists and the current scope may see it."""
    tenant = current_tenant()
    return row is not None and (tenant is None or row.tenant == tenant)


def _uuid(value: str | uuid.UUID | None) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(str(value))


def _parse(overlay_id: str | uuid.UUID) -> uuid.UUID:
    try:
        return uuid.UUID(str(overlay_id))
    except ValueError:
        raise OverlayNotFound(overlay_id) from None


def _record(row: Overlay) -> OverlayRecord:
    return OverlayRecord(
        id=row.id,
        kind=row.kind,
        image_id=row.image_id,
        version=row.version,
        spec=dict(row.spec or {}),
        geometry=dict(row.geometry or {}),
        result_image_id=row.result_image_id,
        job_id=row.job_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _version(row: OverlayVersion) -> OverlayVersionRecord:
    return OverlayVersionRecord(
        overlay_id=row.overlay_id,
        version=row.version,
        spec=dict(row.spec or {}),
        geometry=dict(row.geometry or {}),
        result_image_id=row.result_image_id,
        created_at=row.created_at,
    )
