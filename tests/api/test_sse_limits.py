"""The SSE stream of a job that goes on: keep-alive comments while idle, and an end after ``ingress.sse_max_s``
with a final ``timeout`` event (finding 4 of issue 8). In-process (see conftest)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from serve_app.config import IngressConfig
from tests.api.conftest import Local

JOBS = "/api/v2/images/jobs"


@pytest.fixture
def short_streams(local: Local, client: TestClient) -> Iterator[IngressConfig]:
    before = local.edge.config
    ingress = IngressConfig(sse_max_s=1.0, sse_ping_s=0.1)
    local.edge.config = before.model_copy(update={"ingress": ingress})
    yield ingress
    local.edge.config = before


def test_a_stream_on_a_job_that_goes_on_pings_then_ends_with_a_timeout_event(
    client: TestClient, local: Local, short_streams: IngressConfig
) -> None:
    local.hold(["a job that goes on"])  # running, held after its first step until released
    job = client.post(JOBS, json={"prompt": "a job that goes on", "seed": 21, "steps": 50}).json()
    lines: list[str] = []
    try:
        with client.stream("GET", f"{JOBS}/{job['id']}/events") as r:
            assert r.status_code == 200
            give_up = time.monotonic() + 30  # a guard, so that a stream that never ends fails instead of hanging
            for line in r.iter_lines():
                lines.append(line)
                if time.monotonic() > give_up:
                    break
    finally:
        local.release()
        client.delete(f"{JOBS}/{job['id']}")
    blocks = "\n".join(lines).split("\n\n")
    events = [dict(line.split(": ", 1) for line in b.splitlines() if not line.startswith(":")) for b in blocks]
    events = [e for e in events if "event" in e]
    assert events[0]["event"] == "queued" and events[-1]["event"] == "timeout"
    assert "id" not in events[-1]  # so a client resumes after the last real event
    assert json.loads(events[-1]["data"]) == {"after_s": short_streams.sse_max_s}
    assert all(e["event"] in ("queued", "started", "progress") for e in events[:-1])
    assert any(line.startswith(": ping") for line in lines)  # keep-alives while nothing happened
    # Resuming from the last real event goes on with the job, to its end (once released and cancelled).
    for _ in range(1000):
        if client.get(f"{JOBS}/{job['id']}").json()["status"] in ("cancelled", "succeeded"):
            break
        time.sleep(0.02)
    last_id = [e["id"] for e in events if "id" in e][-1]
    with client.stream("GET", f"{JOBS}/{job['id']}/events", headers={"Last-Event-ID": last_id}) as r:
        resumed = [line for line in r.iter_lines() if line.startswith("event:")]
    assert resumed[-1] in ("event: cancelled", "event: succeeded")
