"""API keys on SQLite and PostgreSQL, and the guard's decisions over a real key table and limiter.

The guard is driven with the route templates of the real scope table; the HTTP side (the dependency, the
headers, the tenant scope reaching the stores) is tests/api/test_auth.py.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from serve_app.auth.guard import Guard
from serve_app.auth.keys import KeyNotFound, SqlKeyStore, parse_scopes
from serve_app.auth.mode import AuthRefused, is_loopback, resolve_mode
from serve_app.auth.principal import CURRENT_PRINCIPAL
from serve_app.auth.tenant import CURRENT_TENANT
from serve_app.config import AuthConfig, QuotaConfig
from serve_app.db.models import ApiKey
from serve_app.errors import Forbidden, RateLimited, Unauthorized
from serve_app.observability.metrics import RecordingMetrics, use_metrics
from serve_app.ratelimit import MemoryRateLimiter

JOBS = "/api/v2/images/jobs"
JOB = "/api/v2/images/jobs/{job_id}"


class Ticks:
    """A monotonic clock a test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_key_is_stored_only_as_its_hash(engine: AsyncEngine) -> None:
    store = SqlKeyStore(engine)
    key, record = await store.create("bot", ["images:read", "images:generate"], tenant="guild")
    assert key.startswith("lmn_") and len(key) >= 40
    async with engine.connect() as conn:
        row = (await conn.execute(select(ApiKey))).one()
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()  # the hash, computed independently
    assert key not in {str(v) for v in row}  # the key itself is in no column
    assert key.startswith(row.prefix) and len(row.prefix) < len(key) // 2
    document = record.document()
    assert key not in str(document) and row.key_hash not in str(document)
    assert document["tenant"] == "guild" and document["scopes"] == ["images:generate", "images:read"]
    found = await store.lookup(key)
    assert found is not None and found.id == record.id and found.tenant == "guild"
    assert await store.lookup(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert await store.lookup("not-a-key") is None


async def test_a_key_without_a_tenant_is_a_tenant_of_its_own(engine: AsyncEngine) -> None:
    store = SqlKeyStore(engine)
    _, first = await store.create("one", ["images:read"])
    _, second = await store.create("two", ["images:read"])
    assert first.tenant != second.tenant
    assert first.tenant == f"key-{first.id.hex[:12]}"
    assert [r.id for r in await store.list(tenant=first.tenant)] == [first.id]
    assert {r.id for r in await store.list()} == {first.id, second.id}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scopes": ["images:fly"]}, "unknown scope"),
        ({"scopes": []}, "at least one scope"),
        ({"scopes": ["admin"], "tenant": "no spaces"}, "tenant"),
        ({"scopes": ["admin"], "limits": {"images_per_week": 3}}, "unknown limit"),
        ({"scopes": ["admin"], "limits": {"images_per_day": 0}}, "whole number"),
        ({"scopes": ["admin"], "expires_at": datetime(2030, 1, 1)}, "aware"),
    ],
)
async def test_bad_keys_are_refused_before_anything_is_stored(
    engine: AsyncEngine, kwargs: dict[str, object], message: str
) -> None:
    store = SqlKeyStore(engine)
    with pytest.raises(ValueError, match=message):
        await store.create("k", **kwargs)  # type: ignore[arg-type]
    assert await store.list() == []


async def test_revoke_keeps_the_first_time_and_names_unknown_ids(engine: AsyncEngine) -> None:
    store = SqlKeyStore(engine)
    key, record = await store.create("k", ["admin"])
    first = await store.revoke(record.id)
    again = await store.revoke(str(record.id))
    assert first.revoked_at is not None and again.revoked_at == first.revoked_at
    found = await store.lookup(key)
    assert found is not None and found.usable(datetime.now(UTC)) == "revoked"
    with pytest.raises(KeyNotFound):
        await store.revoke(uuid.uuid4())
    with pytest.raises(KeyNotFound):
        await store.revoke("not-a-uuid")


def test_scopes_parse_in_a_stable_order() -> None:
    assert parse_scopes([" admin", "images:read", "admin"]) == ("images:read", "admin")


async def _guard(engine: AsyncEngine, **limits: int | None) -> tuple[Guard, SqlKeyStore, Ticks]:
    ticks = Ticks()
    config = AuthConfig(mode="keys", key_cache_s=5.0, limits=QuotaConfig(**limits))  # type: ignore[arg-type]
    store = SqlKeyStore(engine)
    return Guard(config, enabled=True, keys=store, limiter=MemoryRateLimiter(), clock=ticks), store, ticks


async def test_the_guard_refuses_missing_unknown_revoked_and_expired_keys(engine: AsyncEngine) -> None:
    guard, store, ticks = await _guard(engine)
    good, _ = await store.create("good", ["images:read"])
    revoked, record = await store.create("revoked", ["images:read"])
    await store.revoke(record.id)
    expired, _ = await store.create("old", ["images:read"], expires_at=datetime.now(UTC) - timedelta(seconds=1))
    with use_metrics(RecordingMetrics()) as rec:
        for headers, reason in [
            ({}, "missing"),
            ({"authorization": "Basic Zm9vOmJhcg=="}, "unknown"),  # foo:bar: the password "bar" is no key
            ({"x-api-key": "lmn_" + "x" * 43}, "unknown"),
            ({"authorization": f"Bearer {revoked}"}, "revoked"),
            ({"x-api-key": expired}, "expired"),
        ]:
            with pytest.raises(Unauthorized) as refused:
                await guard.check("GET", JOBS, headers)
            assert refused.value.headers["WWW-Authenticate"].startswith("Bearer")
            assert refused.value.param == "Authorization"
            assert rec.count("limner_auth_failures_total", reason=reason) >= 1, reason
        before = rec.count("limner_auth_failures_total", reason="missing")
        with pytest.raises(Unauthorized):  # Basic with an empty password offers no key
            await guard.check("GET", JOBS, {"authorization": "Basic " + base64.b64encode(b"user:").decode()})
        assert rec.count("limner_auth_failures_total", reason="missing") == before + 1
        principal, sent = await guard.check("GET", JOBS, {"authorization": f"Bearer {good}"})
        basic = "Basic " + base64.b64encode(f"anyone:{good}".encode()).decode()
        assert (await guard.check("GET", JOBS, {"authorization": basic}))[0] is not None  # the password is the key
    assert principal is not None and principal.name == "good"
    assert "RateLimit" in sent and "RateLimit-Policy" in sent
    assert ticks.now == 1000.0


async def test_scopes_are_enforced_and_admin_grants_all(engine: AsyncEngine) -> None:
    guard, store, _ = await _guard(engine)
    reader, _ = await store.create("reader", ["images:read"])
    admin, _ = await store.create("admin", ["admin"])
    with pytest.raises(Forbidden, match="images:generate"):
        await guard.check("POST", JOBS, {"x-api-key": reader})
    with pytest.raises(Forbidden, match="admin"):
        await guard.check("GET", "/api/v2/admin/costs", {"x-api-key": reader})
    assert (await guard.check("HEAD", JOB, {"x-api-key": reader}))[0] is not None  # HEAD is a GET
    for method, template in [("POST", JOBS), ("DELETE", "/api/v2/images/{image_id}"), ("GET", "/api/v2/admin/costs")]:
        assert (await guard.check(method, template, {"x-api-key": admin}))[0] is not None
    with pytest.raises(Forbidden, match="not open"):  # a route missing from the table is refused to everyone
        await guard.check("GET", "/api/v2/images/secret-new-route", {"x-api-key": admin})
    assert await guard.check("GET", "/healthz", {}) == (None, {})  # open routes need nothing


async def test_a_passing_check_scopes_the_request_to_the_keys_tenant(engine: AsyncEngine) -> None:
    guard, store, _ = await _guard(engine)
    key, record = await store.create("k", ["images:read"], tenant="party-7")

    async def inside_a_request() -> tuple[object, object]:  # a task of its own, as each request is
        await guard.check("GET", JOBS, {"x-api-key": key})
        return CURRENT_TENANT.get(), CURRENT_PRINCIPAL.get()

    import asyncio

    tenant, principal = await asyncio.create_task(inside_a_request())
    assert tenant == "party-7"
    assert getattr(principal, "key_id", None) == record.id
    assert CURRENT_TENANT.get() is None  # the test's own context is untouched


async def test_requests_per_minute_per_group(engine: AsyncEngine) -> None:
    guard, store, _ = await _guard(engine, read_per_min=3, generate_per_min=1)
    key, _ = await store.create("k", ["images:read", "images:generate"])
    remaining = []
    for _ in range(3):
        _, sent = await guard.check("GET", JOBS, {"x-api-key": key})
        remaining.append(sent["RateLimit"])
    assert remaining == ['"read";r=2;t=20', '"read";r=1;t=40', '"read";r=0;t=60']  # GCRA: one back each 20 s
    with use_metrics(RecordingMetrics()) as rec, pytest.raises(RateLimited) as refused:
        await guard.check("GET", JOB, {"x-api-key": key})  # the same group, another route
    headers = refused.value.headers
    assert headers["RateLimit-Policy"] == '"read";q=3;w=60'
    assert 1 <= int(headers["Retry-After"]) <= 20
    assert rec.count("limner_rate_limited_total", group="read") == 1
    await guard.check("POST", JOBS, {"x-api-key": key})  # another group has its own bucket
    with pytest.raises(RateLimited):
        await guard.check("POST", JOBS, {"x-api-key": key})


async def test_a_keys_own_limit_overrides_the_default(engine: AsyncEngine) -> None:
    guard, store, _ = await _guard(engine, read_per_min=100)
    key, _ = await store.create("tight", ["images:read"], limits={"read_per_min": 1})
    unlimited, _ = await store.create("free", ["images:read"], limits={"read_per_min": None})
    await guard.check("GET", JOBS, {"x-api-key": key})
    with pytest.raises(RateLimited):
        await guard.check("GET", JOBS, {"x-api-key": key})
    for _ in range(150):  # no limit at all: never refused, no headers
        assert (await guard.check("GET", JOBS, {"x-api-key": unlimited}))[1] == {}


async def test_a_revocation_takes_effect_once_the_cache_expires(engine: AsyncEngine) -> None:
    guard, store, ticks = await _guard(engine)
    key, record = await store.create("k", ["images:read"])
    await guard.check("GET", JOBS, {"x-api-key": key})
    await store.revoke(record.id)
    await guard.check("GET", JOBS, {"x-api-key": key})  # still trusted from the cache (auth.key_cache_s)
    ticks.now += 5.0
    with pytest.raises(Unauthorized, match="revoked"):
        await guard.check("GET", JOBS, {"x-api-key": key})


async def test_last_used_is_written_at_most_once_a_minute(engine: AsyncEngine) -> None:
    guard, store, ticks = await _guard(engine)
    key, record = await store.create("k", ["images:read"])
    await guard.check("GET", JOBS, {"x-api-key": key})
    await guard.aclose()  # waits for the background write
    first = (await store.list())[0].last_used_at
    assert first is not None
    ticks.now += 30
    await guard.check("GET", JOBS, {"x-api-key": key})
    await guard.aclose()
    assert (await store.list())[0].last_used_at == first
    ticks.now += 31
    await guard.check("GET", JOBS, {"x-api-key": key})
    await guard.aclose()
    later = (await store.list())[0].last_used_at
    assert later is not None and later > first
    assert (await store.list())[0].id == record.id


async def test_a_disabled_guard_checks_nothing(engine: AsyncEngine) -> None:
    guard = Guard(AuthConfig(mode="off"), enabled=False, keys=SqlKeyStore(engine), limiter=MemoryRateLimiter())
    assert await guard.check("GET", "/api/v2/admin/costs", {}) == (None, {})
    assert CURRENT_TENANT.get() is None


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("myhost.internal", False),
        (None, False),
    ],
)
def test_loopback_hosts(host: str | None, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_mode_follows_the_bind_address() -> None:
    assert resolve_mode(AuthConfig(), "127.0.0.1") is False  # make serve on a laptop
    assert resolve_mode(AuthConfig(), "0.0.0.0") is True
    assert resolve_mode(AuthConfig(), None) is True  # unknown: the safe side
    assert resolve_mode(AuthConfig(mode="keys"), "127.0.0.1") is True
    assert resolve_mode(AuthConfig(mode="off"), "::1") is False
    with pytest.raises(AuthRefused, match="allow_off_on_network"):
        resolve_mode(AuthConfig(mode="off"), "0.0.0.0")
    assert resolve_mode(AuthConfig(mode="off", allow_off_on_network=True), "0.0.0.0") is False
