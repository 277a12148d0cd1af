"""The request middleware (serve_app/api/metrics.py): route templates, never raw paths; status codes; streamed
answers measured to their start; the request id taken, made or replaced, and echoed once."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import StreamingResponse

from serve_app.api.metrics import RequestMetrics, request_id_from, route_template
from serve_app.observability.logs import current_context
from serve_app.observability.metrics import RecordingMetrics, use_metrics

REQUESTS = "limner_http_requests_total"
SECONDS = "limner_http_request_seconds"


def _app(**options: object) -> FastAPI:
    app = FastAPI()
    router = APIRouter(prefix="/api/v2/images")

    @router.get("/jobs/{job_id}")
    async def job(job_id: str) -> dict[str, object]:
        return {"job_id": job_id, "context": current_context()}

    @router.post("/jobs", status_code=201)
    async def submit(body: dict[str, int]) -> dict[str, int]:
        return body

    @router.get("/teapot")
    async def teapot() -> None:
        raise HTTPException(status_code=418, detail="short and stout")

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    @router.get("/jobs/{job_id}/events")
    async def events(job_id: str) -> StreamingResponse:
        async def stream() -> AsyncIterator[bytes]:
            yield b"event: progress\ndata: {}\n\n"
            await asyncio.sleep(0.4)
            yield b"event: done\ndata: {}\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    app.include_router(router)
    app.add_middleware(RequestMetrics, **options)
    return app


@pytest.fixture
def rec() -> Iterator[RecordingMetrics]:
    with use_metrics(RecordingMetrics()) as recording:
        yield recording


async def _client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://limner.test")


async def test_the_route_template_is_recorded_never_the_raw_path(rec: RecordingMetrics) -> None:
    async with await _client(_app()) as client:
        for job_id in ("a1", "b2", "c3"):
            assert (await client.get(f"/api/v2/images/jobs/{job_id}")).status_code == 200
        assert (await client.get("/no/such/path/4f9c")).status_code == 404
    assert rec.count(REQUESTS, route="/api/v2/images/jobs/{job_id}", method="GET", status="200") == 3
    assert rec.count(REQUESTS, route="unmatched", method="GET", status="404") == 1
    routes = {s.tags["route"] for s in rec.samples}
    assert routes == {"/api/v2/images/jobs/{job_id}", "unmatched"}  # no "a1", no "/no/such/path/4f9c"
    assert len(rec.observed(SECONDS, route="/api/v2/images/jobs/{job_id}", method="GET")) == 3


async def test_status_codes_and_methods_are_recorded(rec: RecordingMetrics) -> None:
    async with await _client(_app()) as client:
        assert (await client.post("/api/v2/images/jobs", json={"n": 1})).status_code == 201
        assert (await client.post("/api/v2/images/jobs", json={"n": "x"})).status_code == 422
        assert (await client.get("/api/v2/images/teapot")).status_code == 418
        assert (await client.get("/api/v2/images/boom")).status_code == 500
    assert rec.count(REQUESTS, route="/api/v2/images/jobs", method="POST", status="201") == 1
    assert rec.count(REQUESTS, route="/api/v2/images/jobs", method="POST", status="422") == 1
    assert rec.count(REQUESTS, route="/api/v2/images/teapot", status="418") == 1
    assert rec.count(REQUESTS, route="/api/v2/images/boom", status="500") == 1  # the unhandled error, re-raised


async def test_a_streamed_answer_is_measured_to_its_start(rec: RecordingMetrics) -> None:
    async with await _client(_app()) as client:
        response = await client.get("/api/v2/images/jobs/j1/events")
    assert response.status_code == 200 and b"event: done" in response.content
    [seconds] = rec.observed(SECONDS, route="/api/v2/images/jobs/{job_id}/events")
    assert seconds < 0.3  # the stream itself lasted 0.4 s
    assert rec.count(REQUESTS, route="/api/v2/images/jobs/{job_id}/events", status="200") == 1  # counted once


async def test_a_sane_request_id_is_echoed_and_set_for_the_logs(rec: RecordingMetrics) -> None:
    async with await _client(_app()) as client:
        response = await client.get("/api/v2/images/jobs/j1", headers={"X-Request-ID": "client-42.A_b"})
    assert response.headers.get_list("x-request-id") == ["client-42.A_b"]
    context = response.json()["context"]
    assert context["request_id"] == "client-42.A_b"
    assert context["route"] == "/api/v2/images/jobs/{job_id}"  # the template, known once routed


@pytest.mark.parametrize(
    "sent",
    [None, "", "a" * 129, "has space", "semi;colon", "x\u00e9".encode("latin-1"), "../../etc/passwd\\"],
)
async def test_a_missing_or_insane_request_id_is_replaced(rec: RecordingMetrics, sent: str | bytes | None) -> None:
    headers = {} if sent is None else {"X-Request-ID": sent}
    async with await _client(_app()) as client:
        response = await client.get("/api/v2/images/jobs/j1", headers=headers)
    [echoed] = response.headers.get_list("x-request-id")
    assert re.fullmatch(r"[0-9a-f]{32}", echoed), echoed
    assert response.json()["context"]["request_id"] == echoed


async def test_each_request_gets_its_own_id_and_the_context_is_reset_after_it(rec: RecordingMetrics) -> None:
    async with await _client(_app()) as client:
        first = (await client.get("/api/v2/images/jobs/j1")).headers["x-request-id"]
        second = (await client.get("/api/v2/images/jobs/j1")).headers["x-request-id"]
    assert first != second
    assert current_context() == {}


async def test_behind_a_proxy_that_echoes_the_id_only_a_replacement_is_added(rec: RecordingMetrics) -> None:
    async with await _client(_app(proxy_echoes=True)) as client:
        kept = await client.get("/api/v2/images/jobs/j1", headers={"X-Request-ID": "from-proxy"})
        replaced = await client.get("/api/v2/images/jobs/j1", headers={"X-Request-ID": "bad id"})
    assert "x-request-id" not in kept.headers  # Ray Serve's proxy adds it: a copy here would be a second header
    assert kept.json()["context"]["request_id"] == "from-proxy"
    assert replaced.headers["x-request-id"] == replaced.json()["context"]["request_id"] != "bad id"


async def test_an_id_the_app_set_itself_is_not_doubled(rec: RecordingMetrics) -> None:
    app = FastAPI()

    @app.get("/own")
    async def own() -> StreamingResponse:
        return StreamingResponse(iter([b"{}"]), headers={"X-Request-ID": "app-made"})

    app.add_middleware(RequestMetrics)
    async with await _client(app) as client:
        response = await client.get("/own", headers={"X-Request-ID": "abc"})
    assert response.headers.get_list("x-request-id") == ["abc"]


async def test_other_scopes_pass_through() -> None:
    seen: list[str] = []

    async def inner(scope: dict[str, object], receive: object, send: object) -> None:
        seen.append(str(scope["type"]))

    with use_metrics(RecordingMetrics()) as rec:
        await RequestMetrics(inner)({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert seen == ["lifespan"] and rec.samples == []


async def test_a_client_gone_before_the_answer_is_recorded_as_499(rec: RecordingMetrics) -> None:
    async def inner(scope: dict[str, object], receive: object, send: object) -> None:
        raise asyncio.CancelledError

    scope = {"type": "http", "method": "GET", "path": "/x", "headers": []}
    with pytest.raises(asyncio.CancelledError):
        await RequestMetrics(inner)(scope, None, None)  # type: ignore[arg-type]
    assert rec.count(REQUESTS, route="unmatched", status="499") == 1


def test_the_helpers() -> None:
    assert route_template({}) == "unmatched"
    assert route_template({}, None) is None

    class Plain:
        path = "/plain"

    assert route_template({"route": Plain()}) == "/plain"
    assert request_id_from({"headers": [(b"x-request-id", b"ok-1")]}) == ("ok-1", True)
    made, own = request_id_from({"headers": [(b"x-request-id", b"not ok")]})
    assert not own and len(made) == 32
