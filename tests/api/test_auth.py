"""API keys over HTTP on the tiny model: every route's scope (table-driven over the app's own OpenAPI routes, so a
new route without a scope fails here), 401/403/429 in the one error shape, the RateLimit headers, and tenant
quotas, with keys made through the real CLI code path's store.

The scope of each route is looked up in serve_app/auth/scopes.py; this test decides independently what a key must
get: no key → 401 (open routes aside), a key with every scope but the needed one → 403, the needed scope → neither.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serve_app.api.app import create_api
from serve_app.auth.scopes import ADMIN, ROUTE_SCOPES, SCOPES
from serve_app.config import AuthConfig, QuotaConfig, Settings
from tests.api.conftest import Keys, Local, create_api_lazily
from tests.services import DEFAULT_REDIS_URL

JOBS = "/api/v2/images/jobs"
_PARAM = re.compile(r"\{([a-z_]+)\}")
_FILL = {"ref": "no-such-style", "key": "no-such-subject", "name": "0" * 64 + ".png"}


def openapi_routes() -> list[tuple[str, str]]:
    """Every (method, path template) of the app's OpenAPI document."""
    paths = create_api(None).openapi()["paths"]
    return sorted((method.upper(), path) for path, ops in paths.items() for method in ops)


def test_the_scope_table_lists_exactly_the_apps_routes() -> None:
    routes = set(openapi_routes())
    assert routes - set(ROUTE_SCOPES) == set(), "routes with no scope: add them to serve_app/auth/scopes.py"
    assert set(ROUTE_SCOPES) - routes == set(), "scope table entries for routes that no longer exist"
    assert {s for s in ROUTE_SCOPES.values() if s is not None} <= set(SCOPES)


def test_every_route_that_needs_a_key_documents_the_guards_answers() -> None:
    paths = create_api(None).openapi()["paths"]
    for (method, path), scope in ROUTE_SCOPES.items():
        declared = set(paths[path][method.lower()]["responses"])
        if scope is None:
            assert "401" not in declared, (method, path)  # an open route never asks for a key
        else:
            assert {"401", "403", "429"} <= declared, (method, path)


def _url(template: str) -> str:
    return _PARAM.sub(lambda m: _FILL.get(m.group(1), str(uuid.uuid4())), template)


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text[:300])
    body = response.json()
    assert set(body) == {"error"} and {"type", "message", "param"} <= set(body["error"]), body
    return body["error"]  # type: ignore[no-any-return]


def test_every_route_enforces_its_scope(keyed: tuple[TestClient, Keys]) -> None:
    client, keys = keyed
    by_scope = {scope: keys.make([scope])[0] for scope in SCOPES}
    all_but = {
        scope: keys.make([s for s in SCOPES if s not in (scope, ADMIN)])[0] for scope in SCOPES if scope != ADMIN
    }
    checked = 0
    for method, template in openapi_routes():
        needed = ROUTE_SCOPES[(method, template)]
        url = _url(template)
        body: dict[str, Any] = {"json": {}} if method in ("POST", "PUT") else {}
        bare = client.request(method, url, **body)
        if needed is None:
            assert bare.status_code not in (401, 403), (method, template, bare.status_code)
            continue
        error = _error(bare, 401)
        assert error["param"] == "Authorization" and bare.headers["www-authenticate"].startswith("Bearer")
        if needed != ADMIN:
            denied = client.request(method, url, headers={"X-API-Key": all_but[needed]}, **body)
            assert needed in _error(denied, 403)["message"], (method, template)
        allowed = client.request(method, url, headers={"Authorization": f"Bearer {by_scope[needed]}"}, **body)
        assert allowed.status_code not in (401, 403), (method, template, allowed.status_code, allowed.text[:200])
        admin = client.request(method, url, headers={"X-API-Key": by_scope[ADMIN]}, **body)
        assert admin.status_code not in (401, 403), (method, template, admin.status_code)
        checked += 1
    assert checked >= 35  # every non-open route of the app


def test_revoked_and_expired_keys_are_refused(keyed: tuple[TestClient, Keys]) -> None:
    from datetime import UTC, datetime, timedelta

    client, keys = keyed
    key, record = keys.make(["images:read"])
    assert client.get(JOBS, headers={"X-API-Key": key}).status_code == 200
    keys.revoke(record.id)
    fresh = AuthConfig().key_cache_s
    assert fresh <= 5  # a revocation takes effect within the key cache's seconds
    expired, _ = keys.make(["images:read"], expires_at=datetime.now(UTC) + timedelta(seconds=0.5))
    assert client.get(JOBS, headers={"X-API-Key": expired}).status_code == 200
    time.sleep(max(fresh, 0.6) + 0.1)
    assert "revoked" in _error(client.get(JOBS, headers={"X-API-Key": key}), 401)["message"]
    assert "expired" in _error(client.get(JOBS, headers={"X-API-Key": expired}), 401)["message"]
    assert client.get("/healthz").status_code == 200  # the probes stay open


def test_a_job_is_made_and_read_with_a_key(keyed: tuple[TestClient, Keys]) -> None:
    client, keys = keyed
    key, _ = keys.make(["images:generate", "images:read"])
    made = client.post(
        f"{JOBS}?wait=60",
        json={"prompt": "a keyed lantern", "width": 64, "height": 64, "steps": 2},
        headers={"X-API-Key": key},
    )
    assert made.status_code == 200 and made.json()["status"] == "succeeded", made.text
    job = made.json()
    image_id = job["image_id"]
    assert client.get(f"/api/v2/images/{image_id}", headers={"X-API-Key": key}).status_code == 200
    assert client.get(f"{JOBS}/{job['id']}", headers={"X-API-Key": key}).json()["id"] == job["id"]


@pytest.mark.parametrize("backend", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
def test_over_the_limit_is_a_429_with_the_ratelimit_headers(local: Local, tmp_path: Path, backend: str) -> None:
    redis_url = os.environ.get("LIMNER_TEST_REDIS_URL", DEFAULT_REDIS_URL) if backend == "redis" else None
    local.settings = Settings(data_dir=str(tmp_path / "data"), redis_url=redis_url)
    local.auth = AuthConfig(mode="keys", limits=QuotaConfig(read_per_min=3))
    try:
        with TestClient(create_api_lazily(local)) as client:
            assert client.portal is not None
            key, _ = Keys(local, client.portal).make(["images:read"])
            answers = [client.get(JOBS, headers={"X-API-Key": key}) for _ in range(3)]
            assert [a.status_code for a in answers] == [200, 200, 200]
            assert [a.headers["ratelimit"].split(";")[1] for a in answers] == ["r=2", "r=1", "r=0"]
            assert answers[0].headers["ratelimit-policy"] == '"read";q=3;w=60'
            refused = client.get(f"{JOBS}/{uuid.uuid4()}", headers={"X-API-Key": key})  # same group
            assert "slow down" in _error(refused, 429)["message"]
            assert 1 <= int(refused.headers["retry-after"]) <= 20  # one request back every 20 s
            assert refused.headers["ratelimit"].startswith('"read";r=0')
            other, _ = Keys(local, client.portal).make(["images:read"])
            assert client.get(JOBS, headers={"X-API-Key": other}).status_code == 200  # per key
    finally:
        local.auth = None


def test_a_tenants_jobs_per_day_are_counted(local: Local, tmp_path: Path) -> None:
    local.settings = Settings(data_dir=str(tmp_path / "data"))
    local.auth = AuthConfig(mode="keys", limits=QuotaConfig(images_per_day=2, concurrent_jobs=None))
    try:
        with TestClient(create_api_lazily(local)) as client:
            assert client.portal is not None
            keys = Keys(local, client.portal)
            first, _ = keys.make(["images:generate"], tenant="guild")
            second, _ = keys.make(["images:generate"], tenant="guild")  # the same tenant: the same day
            body = {"prompt": "a counted coin", "width": 64, "height": 64, "steps": 2}
            assert client.post(JOBS, json=body, headers={"X-API-Key": first}).status_code == 202
            assert client.post(JOBS, json=body, headers={"X-API-Key": second}).status_code == 202
            refused = client.post(JOBS, json=body, headers={"X-API-Key": first})
            assert "for the day" in _error(refused, 429)["message"]
            assert int(refused.headers["retry-after"]) > 3600  # a rolling day: one job back every 12 h
            bad = client.post(JOBS, json={**body, "width": 3}, headers={"X-API-Key": second})
            assert bad.status_code == 422  # a bad request is refused before the quota is spent
            other, _ = keys.make(["images:generate"], tenant="other-guild")
            assert client.post(JOBS, json=body, headers={"X-API-Key": other}).status_code == 202
    finally:
        local.auth = None


def test_the_openapi_document_declares_the_key_schemes() -> None:
    schemes = create_api(None).openapi()["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"http", "apiKey"}
    assert any(s.get("name") == "X-API-Key" for s in schemes.values())


def test_a_tenants_concurrent_jobs_are_capped(local: Local, tmp_path: Path) -> None:
    local.settings = Settings(data_dir=str(tmp_path / "data"))
    local.auth = AuthConfig(mode="keys", limits=QuotaConfig(concurrent_jobs=1))
    held = f"a held banner {uuid.uuid4().hex[:6]}"
    local.hold([held])
    try:
        with TestClient(create_api_lazily(local)) as client:
            assert client.portal is not None
            key, _ = Keys(local, client.portal).make(["images:generate", "images:read"])
            headers = {"X-API-Key": key}
            running = client.post(JOBS, json={"prompt": held, "width": 64, "height": 64, "steps": 2}, headers=headers)
            assert running.status_code == 202, running.text
            body = {"prompt": "the next banner", "width": 64, "height": 64, "steps": 2}
            refused = client.post(JOBS, json=body, headers=headers)
            assert "1 jobs queued or running" in _error(refused, 429)["message"]
            assert int(refused.headers["retry-after"]) >= 1
            local.release()
            deadline = time.monotonic() + 60
            while (status := client.get(f"{JOBS}/{running.json()['id']}", headers=headers).json()["status"]) in (
                "queued",
                "running",
            ) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert status == "succeeded"
            assert client.post(JOBS, json=body, headers=headers).status_code == 202  # a slot is free again
    finally:
        local.release()
        local.auth = None


def test_a_key_never_sees_another_tenants_jobs_or_images(keyed: tuple[TestClient, Keys]) -> None:
    client, keys = keyed
    mine, _ = keys.make(["images:generate", "images:read", "images:delete"], tenant="party-a")
    theirs, _ = keys.make(["images:generate", "images:read", "images:delete"], tenant="party-b")
    a, b = {"X-API-Key": mine}, {"X-API-Key": theirs}
    body = {"prompt": "a private map of the vault", "width": 64, "height": 64, "steps": 2, "seed": 5}
    made = client.post(f"{JOBS}?wait=60", json=body, headers=a)
    assert made.status_code == 200 and made.json()["status"] == "succeeded", made.text
    job_id, image_id = made.json()["id"], made.json()["image_id"]
    for path in (
        f"{JOBS}/{job_id}",
        f"{JOBS}/{job_id}/events",
        f"/api/v2/images/{image_id}",
        f"/api/v2/images/{image_id}/file",
        f"/api/v2/images/{image_id}/versions",
    ):
        assert client.get(path, headers=a).status_code == 200, path
        _error(client.get(path, headers=b), 404)  # not 403: another tenant's ids do not exist for it
    assert job_id not in {j["id"] for j in client.get(JOBS, headers=b).json()["items"]}
    assert job_id in {j["id"] for j in client.get(JOBS, headers=a).json()["items"]}
    _error(client.delete(f"{JOBS}/{job_id}", headers=b), 404)
    _error(client.delete(f"/api/v2/images/{image_id}", headers=b), 404)
    _error(client.post(f"/api/v2/images/{image_id}/upscale", json={"scale": 2}, headers=b), 404)
    # The same seeded request from the other tenant is its own job and image, never a hit on the first's.
    again = client.post(f"{JOBS}?wait=60", json=body, headers=b)
    assert again.status_code == 200 and again.json()["image_id"] != image_id, again.text
    assert client.get(f"/api/v2/images/{image_id}", headers=a).status_code == 200  # untouched


def test_themes_are_per_tenant_and_builtins_are_shared(keyed: tuple[TestClient, Keys]) -> None:
    client, keys = keyed
    scopes = ["themes:write", "images:read"]
    a, b = {"X-API-Key": keys.make(scopes, tenant="table-a")[0]}, {"X-API-Key": keys.make(scopes, tenant="table-b")[0]}
    styles = "/api/v2/images/styles"
    made = client.post(styles, json={"name": "house-style", "fragments": ["ink wash"]}, headers=a)
    assert made.status_code == 201, made.text
    _error(client.get(f"{styles}/house-style", headers=b), 404)
    _error(client.get(f"{styles}/{made.json()['id']}", headers=b), 404)
    _error(client.put(f"{styles}/house-style", json={"fragments": ["stolen"]}, headers=b), 404)
    assert "house-style" not in {s["name"] for s in client.get(styles, headers=b).json()["items"]}
    theirs = client.post(styles, json={"name": "house-style", "fragments": ["oil paint"]}, headers=b)
    assert theirs.status_code == 201 and theirs.json()["id"] != made.json()["id"]  # the same name, its own theme
    assert client.get(f"{styles}/house-style", headers=a).json()["raw"]["fragments"] == ["ink wash"]
    assert client.get(f"{styles}/ink-and-wash", headers=b).status_code == 200  # a built-in: shared, read-only


def test_json_log_lines_of_a_keyed_request_name_its_tenant_and_never_its_key(keyed: tuple[TestClient, Keys]) -> None:
    import io
    import json

    from serve_app.observability.logs import configure_logging

    client, keys = keyed
    key, _ = keys.make(["images:read"], tenant="logged-guild")
    out = io.StringIO()
    configure_logging(json=True, stream=out)
    try:
        missing = uuid.uuid4()
        assert client.get(f"{JOBS}/{missing}", headers={"Authorization": f"Bearer {key}"}).status_code == 404
    finally:
        configure_logging(json=False)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    mine = [line for line in lines if str(missing) in line["message"]]
    assert mine and all(line["tenant"] == "logged-guild" for line in mine), lines
    assert all(line["route"] == "/api/v2/images/jobs/{job_id}" and line.get("request_id") for line in mine)
    assert key not in out.getvalue()


def test_a_keys_max_priority_caps_what_it_may_ask_for(keyed: tuple[TestClient, Keys]) -> None:
    client, keys = keyed
    low, _ = keys.make(["images:generate"], limits={"max_priority": 5})
    plain, _ = keys.make(["images:generate"])
    body = {"prompt": "a prioritised banner", "width": 64, "height": 64, "steps": 2}
    refused = client.post(JOBS, params={"priority": 6}, json=body, headers={"X-API-Key": low})
    assert "at most 5" in _error(refused, 422)["message"] and _error(refused, 422)["param"] == "priority"
    assert client.post(JOBS, params={"priority": 5}, json=body, headers={"X-API-Key": low}).status_code == 202
    assert client.post(JOBS, params={"priority": 6}, json=body, headers={"X-API-Key": plain}).status_code == 202
