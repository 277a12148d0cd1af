"""API keys: made once, stored as a hash, looked up by that hash.

A key is ``lmn_`` followed by 43 URL-safe characters (256 random bits). Only its SHA-256 is stored: a key that
random cannot be guessed from its hash, so a fast hash is as safe as a slow one and a request costs one indexed
lookup (a password hash would cost ~100 ms a request for nothing). The key is returned once, by :meth:`create`;
``keys list`` shows its first characters (``prefix``) to tell keys apart.

A key belongs to a tenant: the tenant named at creation, or one of its own (``key-<id>``) when none is named.
"""

from __future__ import annotations

import builtins
import hashlib
import re
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from serve_app.auth.scopes import SCOPES
from serve_app.db import utcnow
from serve_app.db.models import ApiKey

__all__ = ["KEY_PREFIX", "ApiKeyRecord", "KeyNotFound", "SqlKeyStore", "hash_key", "new_key", "parse_scopes"]

KEY_PREFIX = "lmn_"
_PREFIX_LEN = 12  # "lmn_" and 8 characters: 48 bits, enough to tell a service's keys apart, useless to guess
_TENANT = re.compile(r"[A-Za-z0-9._-]{1,64}")
_LIMIT_FIELDS = frozenset(
    {
        "generate_per_min",
        "read_per_min",
        "write_per_min",
        "admin_per_min",
        "images_per_day",
        "concurrent_jobs",
        "max_priority",
    }
)


class KeyNotFound(LookupError):
    """No key with that id."""


def new_key() -> str:
    """A new random key (``lmn_`` + 256 bits, URL-safe base64)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The stored form of ``key``: its SHA-256, hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def parse_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """``scopes`` checked against :data:`~serve_app.auth.scopes.SCOPES`, deduplicated, in a stable order.

    Raises:
        ValueError: An unknown scope, or none at all.
    """
    wanted = {s.strip() for s in scopes if s.strip()}
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}")
    if not wanted:
        raise ValueError(f"a key needs at least one scope of {', '.join(SCOPES)}")
    return tuple(s for s in SCOPES if s in wanted)


@dataclass(frozen=True)
class ApiKeyRecord:
    """One key as the service sees it (never the key itself, never its hash).

    Attributes:
        id: The key's id (``keys revoke`` takes it).
        name: What its owner called it.
        prefix: Its first characters, to tell keys apart.
        tenant: Whose jobs, images and themes it sees.
        scopes: What it may do.
        limits: Its overrides of ``auth.limits`` (field → value; None: no limit).
        created_at: When it was made.
        expires_at: When it stops working (None: never).
        revoked_at: When it was revoked (None: it was not).
        last_used_at: About when it was last used (refreshed at most once a minute).
    """

    id: uuid.UUID
    name: str
    prefix: str
    tenant: str
    scopes: frozenset[str]
    limits: Mapping[str, int | None] = field(default_factory=dict)
    created_at: datetime | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    def usable(self, now: datetime) -> str | None:
        """Why the key cannot be used at ``now`` (``revoked``, ``expired``), or None when it can."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return None

    def document(self) -> dict[str, Any]:
        """The key as ``keys list`` prints it: everything but the key and its hash."""
        return {
            "id": str(self.id),
            "name": self.name,
            "prefix": self.prefix,
            "tenant": self.tenant,
            "scopes": sorted(self.scopes),
            "limits": dict(self.limits),
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.expires_at),
            "revoked_at": _iso(self.revoked_at),
            "last_used_at": _iso(self.last_used_at),
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _record(row: ApiKey) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        tenant=row.tenant,
        scopes=frozenset(row.scopes or ()),
        limits=dict(row.limits or {}),
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


class SqlKeyStore:
    """The ``api_keys`` table (migration 0009)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def create(
        self,
        name: str,
        scopes: Iterable[str],
        *,
        tenant: str | None = None,
        expires_at: datetime | None = None,
        limits: Mapping[str, int | None] | None = None,
    ) -> tuple[str, ApiKeyRecord]:
        """Makes a key. Returns the key (shown this once; only its hash is kept) and its record.

        Args:
            name: What the key is for (1 to 128 characters).
            scopes: What it may do (:func:`parse_scopes`).
            tenant: Whose rows it sees: 1 to 64 characters of ``[A-Za-z0-9._-]``; None: a tenant of its own
                (``key-`` and its id's first 12 hex digits).
            expires_at: When it stops working (aware datetime; None: never).
            limits: Overrides of ``auth.limits`` fields.

        Raises:
            ValueError: A bad name, scope, tenant, expiry or limit.
        """
        name = name.strip()
        if not 1 <= len(name) <= 128:
            raise ValueError("a key's name must be 1 to 128 characters")
        held = parse_scopes(scopes)
        key_id = uuid.uuid4()
        tenant = f"key-{key_id.hex[:12]}" if tenant is None else tenant
        if not _TENANT.fullmatch(tenant):
            raise ValueError("a tenant is 1 to 64 characters of letters, digits, '.', '_' and '-'")
        if expires_at is not None and expires_at.tzinfo is None:
            raise ValueError("expires_at must be an aware datetime")
        overrides = dict(limits or {})
        unknown = sorted(set(overrides) - _LIMIT_FIELDS)
        if unknown:
            raise ValueError(f"unknown limit(s) {', '.join(unknown)}; known: {', '.join(sorted(_LIMIT_FIELDS))}")
        counts = {k: v for k, v in overrides.items() if k != "max_priority"}
        if any(v is not None and (not isinstance(v, int) or v < 1) for v in counts.values()):
            raise ValueError("a limit is a whole number >= 1, or none")
        top = overrides.get("max_priority")
        if top is not None and (not isinstance(top, int) or not -100 <= top <= 100):
            raise ValueError("max_priority is a whole number from -100 to 100, or none")
        key = new_key()
        row = ApiKey(
            id=key_id,
            name=name,
            prefix=key[:_PREFIX_LEN],
            key_hash=hash_key(key),
            tenant=tenant,
            scopes=list(held),
            limits=overrides or None,
            created_at=utcnow(),
            expires_at=expires_at,
        )
        async with self._sessions.begin() as session:
            session.add(row)
        return key, _record(row)

    async def lookup(self, key: str) -> ApiKeyRecord | None:
        """The record of ``key`` (revoked and expired ones included: the caller says why it is refused), or None
        when no key has that hash."""
        if not key.startswith(KEY_PREFIX):
            return None
        async with self._sessions() as session:
            row = (await session.execute(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))).scalar_one_or_none()
        return None if row is None else _record(row)

    async def list(self, *, tenant: str | None = None) -> builtins.list[ApiKeyRecord]:
        """Every key (of ``tenant`` when given), oldest first."""
        query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
        if tenant is not None:
            query = query.where(ApiKey.tenant == tenant)
        async with self._sessions() as session:
            return [_record(row) for row in (await session.execute(query)).scalars()]

    async def revoke(self, key_id: uuid.UUID | str) -> ApiKeyRecord:
        """Revokes a key (a second revoke keeps the first time).

        Raises:
            KeyNotFound: No key has that id (or it is not a UUID).
        """
        try:
            ident = key_id if isinstance(key_id, uuid.UUID) else uuid.UUID(str(key_id))
        except ValueError:
            raise KeyNotFound(str(key_id)) from None
        async with self._sessions.begin() as session:
            row = await session.get(ApiKey, ident)
            if row is None:
                raise KeyNotFound(str(key_id))
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            return _record(row)

    async def touch(self, key_id: uuid.UUID, when: datetime) -> None:
        """Records that the key was used at ``when``."""
        async with self._sessions.begin() as session:
            await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=when))
