"""The check every HTTP request passes: key → principal → scope → per-key rate → tenant scope.

:class:`Guard` is built once per ingress replica (:func:`serve_app.runtime.build_edge`); the app-wide FastAPI
dependency (serve_app/api/security.py) calls :meth:`Guard.check` after routing, with the matched route's
template, so the scope comes from the one table in :mod:`serve_app.auth.scopes`.

- Off (``auth.mode: off``): nothing is checked, nothing is limited, every request is unscoped.
- Keys: a route needing a scope wants ``Authorization: Bearer <key>``, ``X-API-Key: <key>`` or HTTP Basic with
  the key as the password (what A1111 clients send). No key, an
  unknown, revoked or expired one → 401; a key without the route's scope → 403; over the key's requests per
  minute for the route's group → 429 with ``Retry-After`` and the ``RateLimit`` headers. A passing request runs
  scoped to the key's tenant (:func:`serve_app.auth.tenant.tenant_scope`) with its :class:`Principal` set.

Keys are read from the database once per ``auth.key_cache_s`` per replica (a revocation takes effect within that
time), so a request normally costs a dict lookup and one rate-limiter hit. ``last_used_at`` is written in the
background at most once a minute per key.

Tenant quotas (images per day, concurrent jobs) are applied where a job is accepted: :class:`TenantQuotas`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from serve_app.auth.keys import ApiKeyRecord, SqlKeyStore, hash_key
from serve_app.auth.principal import CURRENT_PRINCIPAL, Principal, current_principal
from serve_app.auth.scopes import GROUPS, grants, route_scope
from serve_app.auth.tenant import CURRENT_TENANT
from serve_app.config import AuthConfig, QuotaConfig
from serve_app.db import utcnow
from serve_app.errors import Forbidden, RateLimited, Unauthorized
from serve_app.observability.metrics import metrics
from serve_app.ratelimit import Decision, Rate, RateLimiter, headers

__all__ = ["Guard", "TenantQuotas", "limits_of"]

logger = logging.getLogger("ray.serve.limner.auth")

_TOUCH_S = 60.0
_CACHE_MAX = 10_000
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="limner"'}


def limits_of(config: QuotaConfig, overrides: Mapping[str, int | None]) -> QuotaConfig:
    """``config`` with a key's own limits applied."""
    return config.model_copy(update=dict(overrides)) if overrides else config


@dataclass(frozen=True)
class _Cached:
    record: ApiKeyRecord | None
    fetched: float


class Guard:
    """Authenticates, authorizes and rate-limits one request (see the module docstring).

    Args:
        config: The ``auth`` section.
        enabled: Whether keys are required (the resolved mode: :func:`serve_app.auth.mode.resolve_mode`).
        keys: The key table.
        limiter: The per-key request limiter (shared through Redis when the service has it).
        clock: Monotonic seconds (tests move it).
    """

    def __init__(
        self,
        config: AuthConfig,
        *,
        enabled: bool,
        keys: SqlKeyStore,
        limiter: RateLimiter,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.enabled = enabled
        self._keys = keys
        self._limiter = limiter
        self._clock = clock
        self._cache: dict[str, _Cached] = {}
        self._touched: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def check(
        self, method: str, template: str, headers_: Mapping[str, str]
    ) -> tuple[Principal | None, dict[str, str]]:
        """Checks one request to ``method template`` with its headers.

        Returns:
            The principal (None when the route is open or auth is off) and the rate-limit headers to send.

        Raises:
            Unauthorized: No usable key.
            Forbidden: The route is in no scope table entry, or the key lacks its scope.
            RateLimited: Over the key's requests per minute for the route's group.
        """
        if not self.enabled:
            return None, {}
        try:
            needed = route_scope(method, template)
        except KeyError:
            metrics().auth_failure("unlisted")
            logger.error("route %s %s has no scope in serve_app/auth/scopes.py: refused", method, template)
            raise Forbidden("This route is not open to API keys.") from None
        if needed is None:
            return None, {}
        key = _key_from(headers_)
        if key is None:
            metrics().auth_failure("missing")
            raise Unauthorized(
                "An API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'.",
                param="Authorization",
                headers=_CHALLENGE,
            )
        record = await self._record(key)
        why = "unknown" if record is None else record.usable(utcnow())
        if record is None or why is not None:
            metrics().auth_failure(why or "unknown")
            raise Unauthorized(
                "The API key is not valid." if why == "unknown" else f"The API key is {why}.",
                param="Authorization",
                headers=_CHALLENGE,
            )
        if not grants(record.scopes, needed):
            metrics().auth_failure("forbidden")
            raise Forbidden(f"This API key lacks the scope {needed!r}.", param="Authorization")
        principal = Principal(record.id, record.name, record.tenant, record.scopes, record.limits)
        group = GROUPS[needed]
        limit = getattr(limits_of(self.config.limits, record.limits), f"{group}_per_min")
        sent: dict[str, str] = {}
        if limit is not None:
            decision = await self._limiter.hit(f"key:{record.id}:{group}", Rate(group, limit, 60.0))
            sent = headers([decision])
            if not decision.allowed:
                metrics().rate_limited(group)
                raise RateLimited(f"Too many {group} requests for this API key; slow down.", headers=sent)
        self._touch(record.id.hex)
        CURRENT_PRINCIPAL.set(principal)
        CURRENT_TENANT.set(principal.tenant)
        return principal, sent

    async def _record(self, key: str) -> ApiKeyRecord | None:
        digest = hash_key(key)
        now = self._clock()
        cached = self._cache.get(digest)
        if cached is not None and now - cached.fetched < self.config.key_cache_s:
            return cached.record
        record = await self._keys.lookup(key)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()  # a flood of made-up keys costs lookups, never memory
        self._cache[digest] = _Cached(record, now)
        return record

    def _touch(self, key_hex: str) -> None:
        now = self._clock()
        if now - self._touched.get(key_hex, -_TOUCH_S) < _TOUCH_S:
            return
        self._touched[key_hex] = now
        task = asyncio.get_running_loop().create_task(self._write_touch(uuid.UUID(key_hex)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_touch(self, key_id: uuid.UUID) -> None:
        try:
            await self._keys.touch(key_id, utcnow())
        except Exception as exc:  # a busy database must not fail requests; the next minute tries again
            logger.warning("could not record a key's last use: %s", exc)

    async def aclose(self) -> None:
        """Waits for the last-used writes in flight, then closes the limiter."""
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task
        await self._limiter.close()


def _key_from(headers_: Mapping[str, str]) -> str | None:
    """The key a request offers: ``Authorization: Bearer <key>``, HTTP Basic with the key as the password (the
    user name is ignored: A1111 clients send Basic), or ``X-API-Key``; None when it offers none."""
    auth = headers_.get("authorization")
    if auth:
        scheme, _, value = auth.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and value:
            return value
        if scheme.lower() == "basic" and value:
            try:
                _, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                password = ""
            if password.strip():
                return password.strip()
    key = headers_.get("x-api-key")
    return key.strip() if key and key.strip() else None


class TenantQuotas:
    """A tenant's quotas, applied where a job is accepted (:class:`serve_app.jobs.service.JobService`): jobs per
    rolling day (``images_per_day``: every job makes one image) and jobs queued or running at once
    (``concurrent_jobs``, counted in the database, so every replica agrees).

    Only requests with a :class:`Principal` are counted: with auth off, and for the bridge, nothing is.

    Args:
        config: The ``auth.limits`` defaults.
        engine: The metadata database.
        limiter: The rate limiter the daily quota is kept in.
    """

    def __init__(self, config: QuotaConfig, engine: AsyncEngine, limiter: RateLimiter) -> None:
        self._config = config
        self._engine = engine
        self._limiter = limiter

    async def admit(self) -> None:
        """Counts one more job against the current principal's tenant.

        Raises:
            RateLimited: The tenant has ``concurrent_jobs`` jobs queued or running, or has used its day.
        """
        principal = current_principal()
        if principal is None:
            return
        limits = limits_of(self._config, principal.limits)
        if limits.concurrent_jobs is not None:
            active = await self._active_jobs(principal.tenant)
            if active >= limits.concurrent_jobs:
                metrics().rate_limited("concurrent")
                raise RateLimited(
                    f"This tenant already has {active} jobs queued or running (at most {limits.concurrent_jobs}); "
                    "wait for one to finish.",
                    headers={"Retry-After": "5"},
                )
        if limits.images_per_day is not None:
            decision: Decision = await self._limiter.hit(
                f"tenant:{principal.tenant}:images", Rate("images", limits.images_per_day, 86400.0)
            )
            if not decision.allowed:
                metrics().rate_limited("images")
                raise RateLimited("This tenant has used its images for the day.", headers=headers([decision]))

    def max_priority(self, default: int) -> int:
        """The highest priority the current caller may ask for: ``default`` (``jobs.max_client_priority``), or
        less when its key's ``max_priority`` says so."""
        principal = current_principal()
        if principal is None:
            return default
        own = limits_of(self._config, principal.limits).max_priority
        return default if own is None else min(default, own)

    async def _active_jobs(self, tenant: str) -> int:
        from serve_app.db.models import Job, JobStatus

        query = (
            select(func.count())
            .select_from(Job)
            .where(Job.tenant == tenant, Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))
        )
        async with self._engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())
