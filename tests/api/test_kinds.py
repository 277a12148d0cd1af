"""A kind of job is one file plus one route: a small kind registered by the test runs end to end through the
same edge, job service, dispatcher and HTTP job routes as ``generate``."""

from __future__ import annotations

import io
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import BaseModel, Field

from pipelines import encode
from pipelines.errors import InputError
from serve_app.api.deps import JobsDep
from serve_app.api.protocol import JobResponse
from serve_app.api.responses import job_response
from serve_app.jobs import JobRecord, JobResult
from serve_app.jobs.dispatcher import ProgressFn
from serve_app.jobs.kinds import Accepted, KindPayload
from serve_app.jobs.stages import Stages
from tests.api.conftest import Local

JOBS = "/api/v2/images/jobs"


# -- the kind: its spec, its run, its route (what a new kind's file holds) -----------------------------


@dataclass(frozen=True)
class SwatchRequest:
    colors: tuple[str, ...]
    size: int


class SwatchPayload(KindPayload):
    colors: list[str]
    size: int


class SwatchKind:
    """Two images per job: a swatch of the first colour, and a version of it tinted by the second."""

    name: ClassVar[str] = "swatch"

    async def accept(self, request: SwatchRequest, stages: Stages) -> Accepted:
        if len(request.colors) != 2:
            raise InputError("colors", list(request.colors), "exactly two colours")
        for color in request.colors:
            if not (color.startswith("#") and len(color) == 7):
                raise InputError("colors", color, "'#rrggbb'")
        payload = SwatchPayload(colors=list(request.colors), size=request.size)
        return Accepted(payload, {"colors": list(request.colors), "size": request.size})

    async def run(self, job: JobRecord, stages: Stages, progress: ProgressFn) -> JobResult:
        payload = SwatchPayload.of(job)
        first, second = payload.colors
        base = Image.new("RGB", (payload.size, payload.size), first)
        await progress(1, 2)
        size = payload.size
        base_id = await stages.store_image(encode.encode(base, "png"), width=size, height=size, kind="swatch")
        tinted = Image.blend(base, Image.new("RGB", base.size, second), 0.5)
        tint_id = await stages.derive(base_id, encode.encode(tinted, "png"), kind="swatch", settings={"tint": second})
        await progress(2, 2)
        return JobResult(images=(base_id, tint_id), data={"colors": payload.colors, "mix": 0.5})

    def referenced_assets(self, payload: Mapping[str, Any]) -> set[str]:
        return set()


class SwatchBody(BaseModel):
    colors: list[str] = Field(..., min_length=1, max_length=4)
    size: int = Field(16, ge=1, le=256)


router = APIRouter(prefix="/api/v2/swatches")


@router.post("", status_code=202, response_model=JobResponse)
async def make_swatch(body: SwatchBody, jobs: JobsDep) -> JobResponse:
    job, _ = await jobs.submit("swatch", SwatchRequest(tuple(body.colors), body.size))
    return job_response(job)


# -- the tests ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def swatch_local(local: Local) -> Local:
    local.kinds.append(SwatchKind())
    local.routers.append(router)
    return local


@pytest.fixture
def swatch_client(swatch_local: Local, client: TestClient) -> TestClient:
    return client


def _finished(client: TestClient, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        job = client.get(f"{JOBS}/{job_id}").json()
        if job["status"] not in ("queued", "running") or time.monotonic() > deadline:
            return job  # type: ignore[no-any-return]
        time.sleep(0.05)


def test_a_kind_of_its_own_runs_end_to_end(swatch_client: TestClient) -> None:
    r = swatch_client.post("/api/v2/swatches", json={"colors": ["#ff0000", "#0000ff"], "size": 8})
    assert r.status_code == 202, r.text
    job = _finished(swatch_client, r.json()["id"])
    assert job["status"] == "succeeded" and job["kind"] == "swatch"
    images = job["result"]["images"]
    assert len(images) == 2 and job["image_id"] == images[0]
    assert job["result"]["data"] == {"colors": ["#ff0000", "#0000ff"], "mix": 0.5}
    base = Image.open(io.BytesIO(swatch_client.get(f"/api/v2/images/{images[0]}/file").content)).convert("RGB")
    tint = Image.open(io.BytesIO(swatch_client.get(f"/api/v2/images/{images[1]}/file").content)).convert("RGB")
    assert base.getpixel((3, 3)) == (255, 0, 0)
    # Half red, half blue, computed by hand: (255 * 0.5, 0, 255 * 0.5), rounded either way.
    r_, g_, b_ = tint.getpixel((3, 3))
    assert abs(r_ - 127.5) <= 1 and g_ == 0 and abs(b_ - 127.5) <= 1
    # The second image is a derived version of the first.
    versions = swatch_client.get(f"/api/v2/images/{images[0]}/versions").json()
    assert [(v["id"], v["version"]) for v in versions] == [(images[0], 1), (images[1], 2)]
    assert versions[1]["parent_id"] == images[0] and versions[1]["settings"] == {"tint": "#0000ff"}
    events = swatch_client.get(f"{JOBS}/{job['id']}/events")
    assert "event: succeeded" in events.text


def test_a_kinds_input_error_is_422_naming_the_field(swatch_client: TestClient) -> None:
    before = swatch_client.get(JOBS, params={"limit": 500}).json()["items"]
    r = swatch_client.post("/api/v2/swatches", json={"colors": ["red", "#0000ff"]})
    assert r.status_code == 422
    assert r.json()["error"]["param"] == "colors" and "'#rrggbb'" in r.json()["error"]["message"]
    assert len(swatch_client.get(JOBS, params={"limit": 500}).json()["items"]) == len(before)


def test_a_job_of_an_unknown_kind_fails_at_once_with_a_clear_error(swatch_client: TestClient, local: Local) -> None:
    portal = swatch_client.portal
    assert portal is not None
    job = portal.call(lambda: local.edge.services.jobs.submit("no-such-kind", {"x": 1}))
    local.edge.dispatcher.wake()
    done = _finished(swatch_client, str(job.id))
    assert done["status"] == "failed" and done["attempts"] == 1  # no retry: it can never succeed
    assert done["error_type"] == "unknown_kind"
    assert "no-such-kind" in done["error"] and "generate" in done["error"] and "swatch" in done["error"]
