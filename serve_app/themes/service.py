"""Themes over the metadata database: CRUD with immutable versions, the built-in packs, and resolution.

Every create or update writes a new row in ``theme_versions`` and moves ``themes.version`` on; nothing ever
rewrites a version, so a job that recorded ``(theme id, version)`` can be made again after the theme changed.
A pinned reference (``ink-and-wash@2``) resolves its parents *as of* that version's creation, so the whole
chain is the one the job saw.

Resolution itself is pure (:func:`pipelines.styles.resolve_theme`); this module finds the chain. Versions are
immutable, so their data is cached for good; a name's current version is cached for ``current_ttl_s`` (one
second by default), which is how long another replica's update takes to be seen here.

Tenants (serve_app/auth/tenant.py): a theme belongs to the tenant that made it; the built-in packs, and every theme
made unscoped, belong to the open tenant and are shared. Scoped to a tenant, its own themes and the shared ones are
visible (another tenant's are :class:`ThemeNotFound`, by name or id); a name means the tenant's own theme when it
has one (it shadows a shared theme of that name, parents included), else the shared one. Writes go to its own
themes only: a shared theme is :class:`ThemeReadOnly` to a tenant. Unscoped, every theme is visible and writable,
and a name shared by several tenants means the open tenant's theme.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from pipelines.errors import InputError
from pipelines.request import GenerationLimits
from pipelines.styles import ThemeData, ThemeError, resolve_theme, theme_chain, theme_from_dict, theme_to_dict
from serve_app.auth.tenant import OPEN_TENANT, current_tenant, owner_tenant
from serve_app.db import READ_ONLY, Job, Theme, ThemeVersion, make_session_factory, utcnow
from serve_app.themes.base import (
    ResolvedTheme,
    ThemeConflict,
    ThemeNotFound,
    ThemeReadOnly,
    ThemeRecord,
    ThemeRef,
    ThemeVersionRecord,
)

__all__ = ["ThemeService"]

logger = logging.getLogger("ray.serve.limner.themes")

ModerateFn = Callable[[Mapping[str, str], Collection[str], Collection[str]], None]
"""``(fields, allow, block)``: raises ``ModerationError`` when a field breaks the policy."""


@dataclass(frozen=True)
class _Row:
    id: uuid.UUID
    name: str
    version: int
    builtin: bool
    pack: str | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    tenant: str = OPEN_TENANT


def _visible_where() -> ColumnElement[bool] | None:
    """What the current scope may see of ``themes``: its own and the shared rows (None: everything)."""
    tenant = current_tenant()
    return None if tenant is None else Theme.tenant.in_(sorted({tenant, OPEN_TENANT}))


def _by_name(query: Select[Any], name: str) -> Select[Any]:
    """``query`` for the theme ``name`` means now, best first: live before deleted, then the scope's own before the
    shared one (unscoped: the open tenant's before any other), then the oldest."""
    preferred = owner_tenant()
    query = query.where(Theme.name == name)
    visible = _visible_where()
    if visible is not None:
        query = query.where(visible)
    return query.order_by(
        Theme.deleted_at.is_not(None), case((Theme.tenant == preferred, 0), else_=1), Theme.created_at, Theme.id
    )


def _may_write(row: _Row) -> bool:
    """Whether the current scope may change ``row``: its own themes (unscoped: any)."""
    tenant = current_tenant()
    return tenant is None or row.tenant == tenant


class ThemeService:
    """Themes: stored, versioned, resolved.

    Args:
        engine: The metadata database (migrated).
        packs: The built-in themes as ``(pack, theme)``; :meth:`sync_builtins` stores them.
        kinds: The job kinds a theme may name in ``kinds``.
        limits: The generator's bounds, which a theme's settings and sizes must respect.
        moderate: Checks a theme's own text against the deployment's content policy; None skips it.
        max_depth: Longest parent chain.
        recent_jobs_s: A theme used by a job this recently is not deleted without ``force``.
        current_ttl_s: How long a name's current version is cached.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        packs: Iterable[tuple[str, ThemeData]] = (),
        kinds: Collection[str] = (),
        limits: GenerationLimits | None = None,
        moderate: ModerateFn | None = None,
        max_depth: int = 8,
        recent_jobs_s: float = 7 * 86400,
        current_ttl_s: float = 1.0,
        on_change: Callable[[str, ThemeRecord], Awaitable[None]] | None = None,
    ) -> None:
        self._sessions = make_session_factory(engine)
        self._packs = list(packs)
        self._kinds = frozenset(kinds)
        self._limits = limits or GenerationLimits()
        self._moderate = moderate
        self.max_depth = max_depth
        self._recent_jobs_s = recent_jobs_s
        self._current_ttl_s = current_ttl_s
        self._versions: dict[tuple[uuid.UUID, int], ThemeVersionRecord] = {}
        self._current: dict[tuple[str | None, str], tuple[float, _Row]] = {}
        self._on_change = on_change  # awaited after a user theme is created, updated or deleted (the hub)

    # -- built-in packs --------------------------------------------------------------------------------

    async def sync_builtins(self) -> int:
        """Stores each built-in theme whose data differs from its stored current version (a new version).

        Safe to run on every replica at once: a lost race is a unique-constraint error, and the winner wrote
        the same data. Returns how many versions were written.
        """
        written = 0
        for pack, theme in self._packs:
            data = theme_to_dict(theme)
            for _attempt in range(3):
                try:
                    written += await self._sync_one(pack, theme.name, data)
                    break
                except IntegrityError:
                    continue
        if written:
            logger.info("built-in themes: %d new versions stored", written)
        return written

    async def _sync_one(self, pack: str, name: str, data: dict[str, Any]) -> int:
        async with self._sessions() as session, session.begin():
            # Built-in themes are shared: the open tenant's, whatever the scope this runs in.
            query = select(Theme).where(Theme.tenant == OPEN_TENANT, Theme.name == name)
            row = (await session.scalars(query)).first()
            if row is not None:
                if row.style == data and row.deleted_at is None:
                    return 0
                if not row.builtin:
                    logger.warning("a user theme is named %r like a built-in one; the built-in is not stored", name)
                    return 0
                row.version += 1
                row.style, row.deleted_at, row.pack = data, None, pack
            else:
                row = Theme(tenant=OPEN_TENANT, name=name, style=data, version=1, builtin=True, pack=pack)
                session.add(row)
                await session.flush()
            session.add(ThemeVersion(theme_id=row.id, version=row.version, data=data))
            await self._link_parent(session, row, data.get("parent"))
        self._current.clear()
        return 1

    # -- reads -----------------------------------------------------------------------------------------

    async def get(self, ref: str, *, include_deleted: bool = False) -> ThemeRecord:
        """The theme ``ref`` names (``name``, ``id``, with an optional ``@version``).

        Raises:
            ThemeNotFound: No such theme, or no such version.
        """
        parsed = ThemeRef.parse(ref)
        row = await self._row(parsed, include_deleted=include_deleted)
        version = await self._version(row.id, parsed.version or row.version, ref)
        return _record(row, version)

    async def versions(self, ref: str) -> list[ThemeVersionRecord]:
        """Every version of the theme, oldest first."""
        row = await self._row(ThemeRef.parse(ref), include_deleted=True)
        async with self._sessions() as session:
            await session.connection(execution_options=READ_ONLY)
            rows = await session.scalars(
                select(ThemeVersion).where(ThemeVersion.theme_id == row.id).order_by(ThemeVersion.version)
            )
            return [_version_record(v) for v in rows]

    async def list(
        self, *, kind: str | None = None, cursor: str | None = None, limit: int = 50, builtin: bool | None = None
    ) -> tuple[list[ThemeRecord], str | None]:
        """Live themes by name, a page at a time: the scope's own and the shared ones (a shared theme its own
        shadows is left out).

        Args:
            kind: Only themes whose resolved ``kinds`` include it.
            cursor: The last name of the previous page (as returned).
            limit: Page size.
            builtin: Only built-in (True) or only user themes (False).

        Returns:
            The page and the cursor of the next one (None on the last page).
        """
        async with self._sessions() as session:
            await session.connection(execution_options=READ_ONLY)
            own_first = case((Theme.tenant == owner_tenant(), 0), else_=1)
            query = select(Theme).where(Theme.deleted_at.is_(None)).order_by(Theme.name, own_first)
            visible = _visible_where()
            if visible is not None:
                query = query.where(visible)
            if builtin is not None:
                query = query.where(Theme.builtin.is_(builtin))
            if cursor:
                query = query.where(Theme.name > cursor)
            rows = list(await session.scalars(query))
        page: list[ThemeRecord] = []
        shadowing: str | None = None
        for row in rows:
            if current_tenant() is not None:
                if row.name == shadowing:  # the shared theme of a name this tenant has a theme of
                    continue
                shadowing = row.name
            record = ThemeRecord(
                id=row.id,
                name=row.name,
                version=row.version,
                data=theme_from_dict(row.style),
                builtin=row.builtin,
                pack=row.pack,
                created_at=row.created_at,
                updated_at=row.updated_at,
            )
            if kind is not None and not await self._supports(record, kind):
                continue
            page.append(record)
            if len(page) > limit:
                break
        if len(page) > limit:
            return page[:limit], page[limit - 1].name
        return page, None

    async def _supports(self, record: ThemeRecord, kind: str) -> bool:
        try:
            style = await self._resolve_data(record.data, None)
        except (ThemeError, ThemeNotFound):
            return False
        return style.kinds is None or kind in style.kinds

    # -- writes ----------------------------------------------------------------------------------------

    async def create(self, body: Mapping[str, Any]) -> ThemeRecord:
        """Creates a theme (version 1) after validating it.

        Raises:
            InputError: A field is invalid (it is named), the chain has a cycle or is too deep, or the theme's
                text breaks the content policy.
            ThemeConflict: The name is taken.
        """
        theme = self._parse(body)
        await self._validate(theme)
        data = theme_to_dict(theme)
        try:
            async with self._sessions() as session, session.begin():
                row = Theme(tenant=owner_tenant(), name=theme.name, style=data, version=1, builtin=False)
                session.add(row)
                await session.flush()
                session.add(ThemeVersion(theme_id=row.id, version=1, data=data))
                await self._link_parent(session, row, theme.parent)
        except IntegrityError:
            raise ThemeConflict(f"a theme named {theme.name!r} exists", param="name") from None
        return await self._changed("created", await self.get(str(row.id)))

    async def update(self, ref: str, body: Mapping[str, Any]) -> ThemeRecord:
        """Writes a new version of a user theme (the name may not change).

        Raises:
            ThemeNotFound: No such theme.
            ThemeReadOnly: It is built in, or (scoped) a shared theme.
            InputError: As for :meth:`create`.
        """
        parsed = ThemeRef.parse(ref)
        if parsed.version is not None:
            raise InputError("theme", ref, "a theme without @version (versions are immutable)")
        row = await self._row(parsed)
        if row.builtin or not _may_write(row):
            raise ThemeReadOnly(row.name, shared=not row.builtin)
        theme = self._parse({"name": row.name, **body})
        if theme.name != row.name:
            raise InputError("name", theme.name, f"{row.name!r} (a theme keeps its name)")
        await self._validate(theme)
        data = theme_to_dict(theme)
        for _attempt in range(3):
            try:
                async with self._sessions() as session, session.begin():
                    stored = await session.get(Theme, row.id, with_for_update=True)
                    if stored is None or stored.deleted_at is not None:
                        raise ThemeNotFound(ref)
                    stored.version += 1
                    stored.style = data
                    session.add(ThemeVersion(theme_id=stored.id, version=stored.version, data=data))
                    await self._link_parent(session, stored, theme.parent)
                break
            except IntegrityError:  # two updates raced for the same version number: take the next
                continue
        self._forget(row.id)
        return await self._changed("updated", await self.get(str(row.id)))

    async def delete(self, ref: str, *, force: bool = False) -> ThemeRecord:
        """Soft-deletes a user theme; its versions stay (old jobs can still be read and reproduced).

        Raises:
            ThemeReadOnly: It is built in, or (scoped) a shared theme.
            ThemeConflict: Live themes inherit from it, or (without ``force``) a job used it recently.
        """
        row = await self._row(ThemeRef.parse(ref))
        if row.builtin or not _may_write(row):
            raise ThemeReadOnly(row.name, shared=not row.builtin)
        async with self._sessions() as session, session.begin():
            children = list(
                await session.scalars(
                    select(Theme.name).where(Theme.parent_id == row.id, Theme.deleted_at.is_(None)).order_by(Theme.name)
                )
            )
            if children:
                raise ThemeConflict(
                    f"theme {row.name!r} has child themes {children}: delete or re-parent them first", param="theme"
                )
            if not force:
                since = utcnow() - timedelta(seconds=self._recent_jobs_s)
                recent = await session.scalar(
                    select(func.count())
                    .select_from(Job)
                    .where(Job.created_at >= since, Job.payload["theme_id"].as_string() == str(row.id))
                )
                if recent:
                    raise ThemeConflict(
                        f"theme {row.name!r} was used by {recent} job(s) in the last "
                        f"{self._recent_jobs_s / 86400:g} days; pass force=true to delete it anyway",
                        param="theme",
                    )
            await session.execute(update(Theme).where(Theme.id == row.id).values(deleted_at=utcnow()))
        self._forget(row.id)
        return await self._changed("deleted", await self.get(str(row.id), include_deleted=True))

    async def _changed(self, action: str, record: ThemeRecord) -> ThemeRecord:
        if self._on_change is not None:
            await self._on_change(action, record)
        return record

    # -- resolution ------------------------------------------------------------------------------------

    async def resolve(self, ref: str, *, variation: str | None = None, kind: str | None = None) -> ResolvedTheme:
        """The theme ``ref`` names, resolved (parents, then the variation) for a request of ``kind``.

        Raises:
            ThemeNotFound: No such theme (or version).
            InputError: A cycle, a chain too deep, an unknown variation, or a theme that does not support
                ``kind`` (``param`` is ``theme`` or ``variation``).
        """
        parsed = ThemeRef.parse(ref)
        row = await self._row(parsed)
        version = await self._version(row.id, parsed.version or row.version, ref)
        as_of = version.created_at if parsed.version is not None else None
        chain = await self._chain(version.data, as_of, own_version=version.version)
        style = resolve_theme([data for data, _ in chain], variation)
        if kind is not None and style.kinds is not None and kind not in style.kinds:
            raise InputError("theme", ref, f"a theme supporting {kind!r} ({row.name!r} supports {list(style.kinds)})")
        names = tuple((data.name, v) for data, v in chain)
        return ResolvedTheme(row.id, row.name, version.version, variation, style, names)

    async def _resolve_data(self, theme: ThemeData, variation: str | None) -> Any:
        chain = await self._chain(theme, None)
        return resolve_theme([data for data, _ in chain], variation)

    async def _chain(
        self, theme: ThemeData, as_of: datetime | None, own_version: int = 0
    ) -> list[tuple[ThemeData, int]]:
        """``theme`` (at ``own_version``; 0 for one not stored yet) and its ancestors, root first, each with its
        version (as of ``as_of`` when given)."""
        found: dict[str, tuple[ThemeData, int]] = {theme.name: (theme, own_version)}
        pending = theme.parent
        depth = 0
        while pending is not None and pending not in found and depth <= self.max_depth:
            depth += 1
            try:
                row = await self._row(ThemeRef(pending))
            except ThemeNotFound:
                raise ThemeError("parent", pending, "the name of a live theme") from None
            record = await self._version_as_of(row, as_of)
            found[pending] = (record.data, record.version)
            pending = record.data.parent
        ordered = theme_chain(theme.name, lambda name: found[name][0] if name in found else None, self.max_depth)
        return [(data, found[data.name][1]) for data in ordered]

    # -- helpers ---------------------------------------------------------------------------------------

    def _parse(self, body: Mapping[str, Any]) -> ThemeData:
        theme = theme_from_dict(body)  # strict: names, types, colours, schedulers
        if ThemeRef(theme.name).id is not None:
            raise InputError("name", theme.name, "a name that is not an id")
        return theme

    async def _validate(self, theme: ThemeData) -> None:
        """Everything a theme must satisfy before it is stored: a chain that resolves (every variation too),
        kinds this service runs, settings and sizes the generator honours, and text the policy allows."""
        if theme.parent == theme.name:
            raise ThemeError("parent", theme.parent, "another theme (a theme cannot be its own parent)")
        chain = await self._chain(theme, None)
        style = resolve_theme([data for data, _ in chain], None)
        for name in style.variations:
            resolve_theme([data for data, _ in chain], name)
        if theme.kinds is not None and self._kinds:
            unknown = sorted(set(theme.kinds) - self._kinds)
            if unknown:
                raise InputError("kinds", unknown, f"kinds from {sorted(self._kinds)}")
        self._check_settings(theme.settings, "settings")
        self._check_sizes(theme.sizes, "sizes")
        for name, variation in theme.variations.items():
            self._check_settings(variation.settings, f"variations.{name}.settings")
            self._check_sizes(variation.sizes, f"variations.{name}.sizes")
        if self._moderate is not None:
            fields = {"fragments": ", ".join(theme.fragments), "description": theme.description}
            for name, variation in theme.variations.items():
                fields[f"variations.{name}.fragments"] = ", ".join(variation.fragments)
            self._moderate(fields, style.moderation.allow, style.moderation.block)

    def _check_settings(self, settings: Mapping[str, object], param: str) -> None:
        """Settings inside this generator's limits (their types and names were checked by the parser)."""
        limits = self._limits
        steps = settings.get("steps")
        if steps is not None and not (isinstance(steps, int) and 1 <= steps <= limits.max_steps):
            raise InputError(f"{param}.steps", steps, f"an integer from 1 to {limits.max_steps}")
        guidance = settings.get("guidance")
        if guidance is not None and not (
            isinstance(guidance, int | float) and 0 <= float(guidance) <= limits.max_guidance
        ):
            raise InputError(f"{param}.guidance", guidance, f"a number from 0 to {limits.max_guidance}")

    def _check_sizes(self, sizes: Mapping[str, tuple[int, int]], param: str) -> None:
        limits = self._limits
        for key, (width, height) in sizes.items():
            ok = limits.min_size <= min(width, height) and max(width, height) <= limits.max_size
            if not ok or width * height > limits.max_pixels:
                raise InputError(
                    f"{param}.{key}",
                    [width, height],
                    f"sides from {limits.min_size} to {limits.max_size}, at most {limits.max_pixels} pixels",
                )

    def _forget(self, theme_id: uuid.UUID) -> None:
        """Drops this replica's cached current version of a theme (by name and by id) after a write."""
        for key in [k for k, (_, row) in self._current.items() if row.id == theme_id]:
            del self._current[key]

    async def _link_parent(self, session: Any, row: Theme, parent: str | None) -> None:
        if parent is None:
            row.parent_id = None
            return
        row.parent_id = await session.scalar(_by_name(select(Theme.id), parent).limit(1))

    async def _row(self, ref: ThemeRef, *, include_deleted: bool = False) -> _Row:
        key = (current_tenant(), ref.key)  # a name means a different theme in each scope
        cached = self._current.get(key)
        now = time.monotonic()
        if cached is not None and now - cached[0] < self._current_ttl_s and not include_deleted:
            return cached[1]
        theme_id = ref.id
        async with self._sessions() as session:
            await session.connection(execution_options=READ_ONLY)
            if theme_id:
                query = select(Theme).where(Theme.id == theme_id)
                visible = _visible_where()
                if visible is not None:
                    query = query.where(visible)
            else:
                query = _by_name(select(Theme), ref.key).limit(1)
            found = (await session.scalars(query)).first()
        if found is None or (found.deleted_at is not None and not include_deleted):
            raise ThemeNotFound(ref.key)
        row = _Row(
            found.id,
            found.name,
            found.version,
            found.builtin,
            found.pack,
            found.created_at,
            found.updated_at,
            found.deleted_at,
            found.tenant or OPEN_TENANT,
        )
        if row.deleted_at is None:
            self._current[key] = (now, row)
        return row

    async def _version(self, theme_id: uuid.UUID, version: int, ref: str) -> ThemeVersionRecord:
        cached = self._versions.get((theme_id, version))
        if cached is not None:
            return cached
        async with self._sessions() as session:
            await session.connection(execution_options=READ_ONLY)
            found = (
                await session.scalars(
                    select(ThemeVersion).where(ThemeVersion.theme_id == theme_id, ThemeVersion.version == version)
                )
            ).first()
        if found is None:
            raise ThemeNotFound(ref)
        record = _version_record(found)
        self._versions[(theme_id, version)] = record
        return record

    async def _version_as_of(self, row: _Row, as_of: datetime | None) -> ThemeVersionRecord:
        if as_of is None:
            return await self._version(row.id, row.version, row.name)
        async with self._sessions() as session:
            await session.connection(execution_options=READ_ONLY)
            number = await session.scalar(
                select(func.max(ThemeVersion.version)).where(
                    ThemeVersion.theme_id == row.id, ThemeVersion.created_at <= as_of
                )
            )
        return await self._version(row.id, int(number or 1), row.name)


def _version_record(row: ThemeVersion) -> ThemeVersionRecord:
    return ThemeVersionRecord(row.theme_id, row.version, theme_from_dict(row.data), row.created_at)


def _record(row: _Row, version: ThemeVersionRecord) -> ThemeRecord:
    return ThemeRecord(
        id=row.id,
        name=row.name,
        version=version.version,
        data=version.data,
        builtin=row.builtin,
        pack=row.pack,
        created_at=version.created_at,
        updated_at=row.updated_at,
        deleted_at=row.deleted_at,
    )
