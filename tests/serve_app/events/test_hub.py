"""The message hub on a real Redis: a job's life, a stored image and a theme change arrive in order on a consumer
group; a consumer that was away resumes by stream id; the stream stays capped; a hub that cannot reach Redis
never fails what it reports."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from serve_app.config import AppConfig, HubConfig, Settings
from serve_app.events import Event, RedisStreamHub
from serve_app.events.hub import EVENT_SCHEMA
from serve_app.services import open_services


@pytest.fixture
async def client(redis_server_url: str) -> AsyncIterator[aioredis.Redis]:
    c = aioredis.Redis.from_url(redis_server_url)
    try:
        yield c
    finally:
        await c.aclose()


def _decode(entries: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for stream_id, fields in entries:
        event = json.loads(fields[b"event"])
        assert fields[b"type"].decode() == event["type"]
        out.append((stream_id.decode(), event))
    return out


async def _read_group(client: aioredis.Redis, stream: str, group: str, consumer: str) -> list[tuple[str, Any]]:
    got = await client.xreadgroup(group, consumer, {stream: ">"}, count=1000)
    return _decode(got[0][1]) if got else []


async def test_a_jobs_life_an_image_and_a_theme_change_arrive_in_order_on_a_consumer_group(
    client: aioredis.Redis, redis_server_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    stream = f"{redis_prefix}events"
    config = AppConfig(hub=HubConfig(stream=stream, maxlen=1000))
    settings = Settings(data_dir=str(tmp_path), redis_url=redis_server_url)
    services = await open_services(config, settings)
    await client.xgroup_create(stream, "platform", id="0", mkstream=True)
    try:
        store = services.jobs
        job = await store.submit("generate", {"prompt": "a lighthouse"}, priority=3)
        [claimed] = await store.claim("runner", lease_s=30)
        await store.progress(claimed.id, 2, 2, owner="runner")
        await store.complete(claimed.id, "runner")
        await services.hub.publish("theme.updated", "theme/x", {"name": "x", "action": "created"})
        events = await _read_group(client, stream, "platform", "c1")
    finally:
        await services.aclose()
    types = [e["type"] for _, e in events]
    assert types == ["job.accepted", "job.started", "job.progress", "job.succeeded", "theme.updated"]
    for _, e in events:
        assert e["schema"] == EVENT_SCHEMA and uuid.UUID(e["id"])
    job_events = [e for _, e in events if e["type"].startswith("job.")]
    assert {e["subject"] for e in job_events} == {f"job/{job.id}"}
    assert [e["data"]["seq"] for e in job_events] == sorted(e["data"]["seq"] for e in job_events)
    assert job_events[0]["data"]["kind"] == "generate" and job_events[0]["data"]["priority"] == 3
    ids = [i for i, _ in events]
    assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in i.split("-")))  # stream order is commit order


async def test_a_consumer_that_was_away_resumes_from_its_last_stream_id(
    client: aioredis.Redis, redis_prefix: str
) -> None:
    stream = f"{redis_prefix}events"
    hub = RedisStreamHub(client, stream=stream, maxlen=1000)
    for n in range(3):
        await hub.job_event(Event(job_id="j1", type="progress", data={"step": n, "total": 9}, seq=n + 1))
    first = _decode((await client.xread({stream: "0"}))[0][1])
    last_seen = first[-1][0]
    await hub.job_event(Event(job_id="j1", type="progress", data={"step": 3, "total": 9}, seq=4))
    await hub.job_event(Event(job_id="j1", type="cancel_requested", data={}, seq=5))  # internal: not published
    await hub.job_event(Event(job_id="j1", type="cancelled", data={"reason": "asked"}, seq=6))
    resumed = _decode((await client.xread({stream: last_seen}))[0][1])
    assert [(e["type"], e["data"]["seq"]) for _, e in resumed] == [("job.progress", 4), ("job.cancelled", 6)]


async def test_the_stream_is_capped(client: aioredis.Redis, redis_prefix: str) -> None:
    stream = f"{redis_prefix}events"
    hub = RedisStreamHub(client, stream=stream, maxlen=100)
    for n in range(1200):
        await hub.publish("job.progress", "job/x", {"n": n})
    length = await client.xlen(stream)
    assert 100 <= length < 1200  # approximate trimming keeps whole macro nodes, never the whole history
    newest = _decode(await client.xrevrange(stream, count=1))[0][1]
    assert newest["data"]["n"] == 1199


async def test_a_hub_that_cannot_reach_redis_logs_and_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    dead = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    hub = RedisStreamHub(dead, stream="limner-test:nowhere")
    try:
        await hub.publish("image.created", "image/1", {"image_id": "1"})  # does not raise
    finally:
        await dead.aclose()
    assert any("could not append image.created" in r.getMessage() for r in caplog.records)


def _job_on_the_hub(
    model_cache: Path, tmp_path: Path, redis_server_url: str, body: dict[str, Any], *, tenant: str | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Runs one job through the whole edge on the tiny model with Redis configured (with keys on and a key of
    ``tenant`` when given); returns the job and the hub events appended meanwhile (read from where the default
    stream stood before the request)."""
    import redis
    from fastapi.testclient import TestClient

    from serve_app.auth.keys import SqlKeyStore
    from serve_app.config import AuthConfig, JobsConfig
    from tests.api.conftest import Local, create_api_lazily

    sync = redis.Redis.from_url(redis_server_url)
    try:
        before = sync.xrevrange("limner:events", count=1)
        start = before[0][0].decode() if before else "0"
        local = Local(model_cache, tmp_path / "data", JobsConfig(lease_s=10, heartbeat_s=1))
        local.settings = Settings(data_dir=str(tmp_path / "data"), redis_url=redis_server_url)
        local.auth = None if tenant is None else AuthConfig(mode="keys")
        with TestClient(create_api_lazily(local)) as http:
            headers = {}
            if tenant is not None:
                assert http.portal is not None
                store = SqlKeyStore(local.edge.services.engine)
                key, _ = http.portal.call(lambda: store.create("hub", ["images:generate"], tenant=tenant))
                headers = {"X-API-Key": key}
            r = http.post("/api/v2/images/jobs?wait=120", json=body, headers=headers)
            assert r.status_code == 200, r.text
            job = r.json()
        return job, [e for _, e in _decode(sync.xrange("limner:events", min=f"({start}"))]
    finally:
        sync.close()


def test_a_generate_job_through_http_publishes_its_life_and_its_image(
    model_cache: Path, tmp_path: Path, redis_server_url: str
) -> None:
    """The job's events and ``image.created`` for the image it made reach the hub."""
    body = {"prompt": "a hub test lantern", "width": 64, "height": 64, "steps": 2, "seed": 77}
    job, events = _job_on_the_hub(model_cache, tmp_path, redis_server_url, body)
    mine = [e for e in events if e["subject"] == f"job/{job['id']}"]
    types = [e["type"] for e in mine]
    assert types[:2] == ["job.accepted", "job.started"] and types[-1] == "job.succeeded"
    assert set(types[2:-1]) == {"job.progress"}  # one per reported denoising step (throttled), in order
    steps = [e["data"]["step"] for e in mine[2:-1]]
    assert steps == sorted(steps) and mine[-1]["data"]["image_id"] == job["image_id"]
    images = [e for e in events if e["type"] == "image.created" and e["data"]["image_id"] == job["image_id"]]
    assert len(images) == 1
    data = images[0]["data"]
    assert (data["width"], data["height"], data["kind"]) == (64, 64, "image")
    assert data["links"]["file"] == f"/api/v2/images/{job['image_id']}/file"


def test_a_keyed_tenants_events_carry_its_tenant(model_cache: Path, tmp_path: Path, redis_server_url: str) -> None:
    """With keys on, every hub event of a job a key made, and its image's, names the key's tenant."""
    body = {"prompt": "a tenant's hub lantern", "width": 64, "height": 64, "steps": 2, "seed": 78}
    job, events = _job_on_the_hub(model_cache, tmp_path, redis_server_url, body, tenant="guild-hub")
    mine = [e for e in events if e["subject"] in (f"job/{job['id']}", f"image/{job['image_id']}")]
    assert {e["type"] for e in mine} >= {"job.accepted", "job.started", "job.succeeded", "image.created"}
    assert {e["tenant"] for e in mine} == {"guild-hub"}
