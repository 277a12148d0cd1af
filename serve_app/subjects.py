"""Recurring subjects: what keeps Mira recognisable from one portrait to the next.

A ``subject_key`` (``campaign-7/mira``) ties requests to one subject. The first request with a key records
its seed base and appearance descriptors; later requests reuse them for the fields they leave out. A later
request's own values win for that request; descriptors the record lacked are added to it (nothing recorded is
ever overwritten, so a one-off outfit does not change who Mira is).

Keys are per tenant (serve_app/auth/tenant.py): the subjects table is keyed by ``(tenant, key)``, and every read and
write here is in the namespace of ``owner_tenant()`` (the current tenant; the open one when unscoped), so two
tenants' ``campaign-7/mira`` are two subjects, and a subject lists only its own tenant's images.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from serve_app.auth.tenant import owner_tenant
from serve_app.db import READ_ONLY, Image, Subject, make_session_factory
from serve_app.images import ImageRecord

__all__ = ["SubjectNotFound", "SubjectRecord", "SubjectStore"]


class SubjectNotFound(LookupError):
    """Nothing was recorded under this key."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        return f"no subject {self.key!r}"


@dataclass(frozen=True)
class SubjectRecord:
    """A subject's record."""

    key: str
    kind: str
    seed_base: int
    descriptors: dict[str, str]
    created_at: datetime
    updated_at: datetime


class SubjectStore:
    """Subjects in the metadata database.

    Args:
        engine: The metadata database (migrated).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = make_session_factory(engine)

    async def find(self, key: str) -> SubjectRecord | None:
        """The record, or None."""
        async with self._sessions() as session:
            await session.connection(execution_options=READ_ONLY)
            row = await session.get(Subject, (owner_tenant(), key))
            return None if row is None else _record(row)

    async def get(self, key: str) -> SubjectRecord:
        """The record.

        Raises:
            SubjectNotFound: Nothing is recorded under ``key``.
        """
        found = await self.find(key)
        if found is None:
            raise SubjectNotFound(key)
        return found

    async def record(self, key: str, kind: str, seed_base: int, descriptors: Mapping[str, str]) -> SubjectRecord:
        """Records a subject, or adds the descriptors an existing record lacks; returns what is recorded.

        Two first requests racing for one key: one insert wins, the other merges into it.
        """
        tenant = owner_tenant()
        for _attempt in range(3):
            try:
                async with self._sessions() as session, session.begin():
                    row = await session.get(Subject, (tenant, key), with_for_update=True)
                    if row is None:
                        row = Subject(
                            tenant=tenant, key=key, kind=kind, seed_base=seed_base, descriptors=dict(descriptors)
                        )
                        session.add(row)
                    else:
                        missing = {k: v for k, v in descriptors.items() if k not in row.descriptors}
                        if missing:
                            row.descriptors = {**row.descriptors, **missing}
                    await session.flush()
                    return _record(row)
            except IntegrityError:
                continue
        return await self.get(key)

    async def images(self, key: str, *, limit: int = 100) -> list[ImageRecord]:
        """The live images made for the subject, newest first."""
        async with self._sessions() as session:
            await session.connection(execution_options=READ_ONLY)
            rows = await session.scalars(
                select(Image)
                .where(Image.subject_key == key, Image.tenant == owner_tenant(), Image.deleted_at.is_(None))
                .order_by(Image.created_at.desc())
                .limit(limit)
            )
            return [ImageRecord.from_row(row) for row in rows]


def _record(row: Subject) -> SubjectRecord:
    return SubjectRecord(
        key=row.key,
        kind=row.kind,
        seed_base=int(row.seed_base),
        descriptors={str(k): str(v) for k, v in (row.descriptors or {}).items()},
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
