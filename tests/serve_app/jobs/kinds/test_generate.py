"""The generate kind on its own: acceptance decides the payload once; ``run`` is compose-free, finds an image
the same request made before, and stores a new one otherwise. Real services (SQLite, an asset folder, the
in-process cache); the generator is a fake of our own streaming interface that draws a known image."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from deployments.composer import Composer
from pipelines.prompts import request_hash
from serve_app.config import AppConfig, ComposerConfig, Settings
from serve_app.jobs import JobRecord, JobSource, JobStatus, PermanentJobError
from serve_app.jobs.kinds import GenerateKind, GeneratePayload, GenerateRequest
from serve_app.jobs.stages import Stages
from serve_app.schemas import ComposedRequest, GeneratedImage, PartialRequest
from serve_app.services import Services, open_services


def _png(color: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


class FakeGenerator:
    """Streams two progress steps, then an image whose colour encodes the seed."""

    def __init__(self) -> None:
        self.calls: list[ComposedRequest] = []

    async def stream(self, composed: ComposedRequest) -> AsyncIterator[dict[str, Any]]:
        self.calls.append(composed)
        request = composed.request
        yield {"type": "progress", "step": 1, "total": 2}
        color = (request.seed % 256, 0, 0)
        png = _png(color, (request.width, request.height))
        image = GeneratedImage(png, request.seed, request.width, request.height, composed.request_hash, 1)
        yield {"type": "image", "image": image}


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    opened = await open_services(AppConfig(), Settings(data_dir=str(tmp_path)))
    try:
        yield opened
    finally:
        await opened.aclose()


@pytest.fixture
def generator() -> FakeGenerator:
    return FakeGenerator()


@pytest.fixture
def stages(services: Services, generator: FakeGenerator) -> Stages:
    composer = Composer.func_or_class(ComposerConfig(width=64, height=64, steps=3), "tiny")
    return Stages(services, composer.compose, generator.stream)


def _job(payload: dict[str, Any]) -> JobRecord:
    now = datetime.now(UTC)
    return JobRecord(
        id=uuid.uuid4(), kind="generate", payload=payload, body_hash="0" * 64, status=JobStatus.RUNNING,
        priority=0, deadline=None, attempts=1, max_attempts=3, next_attempt_at=now, lease_owner="t",
        lease_expires_at=now, progress=0.0, progress_step=None, progress_total=None, error=None, error_type=None,
        error_param=None, result=None, result_image_id=None, source=JobSource.HTTP, idempotency_key=None,
        cancel_requested=False, last_seq=0, created_at=now, started_at=now, finished_at=None, updated_at=now,
    )  # fmt: skip


async def _no_progress(step: int, total: int) -> None:
    return None


async def test_accept_decides_seed_hash_and_cacheability_once(stages: Stages) -> None:
    kind = GenerateKind()
    unseeded = await kind.accept(GenerateRequest(PartialRequest(prompt="a keep")), stages)
    seeded = await kind.accept(GenerateRequest(PartialRequest(prompt="a keep", seed=7), format="webp"), stages)
    u, s = GeneratePayload.model_validate(unseeded.payload.to_json()), seeded.payload
    assert isinstance(s, GeneratePayload)
    assert not u.cacheable and isinstance(u.request["seed"], int) and u.generation["seed"] == u.request["seed"]
    assert s.cacheable and s.generation["seed"] == 7 and s.format == "webp"
    # The identity is what the client sent: the drawn seed is not part of it.
    assert unseeded.identity == {"request": {"prompt": "a keep"}, "format": "png"}
    # The hash is the canonical hash of the composed request, computed again here from the payload.
    composed = await s.composed(stages)
    assert s.request_hash == request_hash(composed.request)


async def test_run_generates_once_then_finds_the_image_again(stages: Stages, generator: FakeGenerator) -> None:
    kind = GenerateKind()
    accepted = await kind.accept(GenerateRequest(PartialRequest(prompt="a gem", seed=300)), stages)
    job = _job(accepted.payload.to_json())
    first = await kind.run(job, stages, _no_progress)
    assert len(first.images) == 1 and first.data["seed"] == 300 and len(generator.calls) == 1
    record, data = await stages.read_image(first.images[0])
    assert record.seed == 300 and record.settings["request_hash"] == accepted.payload.request_hash
    assert Image.open(io.BytesIO(data)).getpixel((0, 0)) == (300 % 256, 0, 0)
    # A re-run attempt (its runner died after storing the image) and another job of the same seeded request
    # find that image: no second generation.
    again = await kind.run(job, stages, _no_progress)
    other = await kind.run(_job(accepted.payload.to_json()), stages, _no_progress)
    assert again.images == other.images == first.images and len(generator.calls) == 1


async def test_img2img_and_control_images_are_stored_and_referenced(stages: Stages, services: Services) -> None:
    kind = GenerateKind()
    init, depth = _png((10, 20, 30)), _png((200, 200, 200))
    request = GenerateRequest(PartialRequest(prompt="a ruin", seed=1), init_png=init, strength=0.5, control_png=depth)
    accepted = await kind.accept(request, stages)
    payload = accepted.payload
    assert isinstance(payload, GeneratePayload)
    assert payload.generation["mode"] == "img2img" and payload.generation["strength"] == 0.5
    refs = kind.referenced_assets(payload.to_json())
    assert refs == {payload.init_image, payload.control_image} and len(refs) == 2
    assert all([await services.store.exists(sha, "png") for sha in refs])


async def test_a_start_image_that_is_gone_fails_the_job_for_good(stages: Stages, services: Services) -> None:
    kind = GenerateKind()
    accepted = await kind.accept(GenerateRequest(PartialRequest(prompt="x", seed=2), init_png=_png((1, 2, 3))), stages)
    payload = accepted.payload.to_json()
    payload["init_image"] = "f" * 64  # a blob nobody stored
    with pytest.raises(PermanentJobError) as info:
        await kind.run(_job(payload), stages, _no_progress)
    assert info.value.param == "init_image"


async def test_a_payload_that_does_not_fit_is_a_permanent_error(stages: Stages) -> None:
    with pytest.raises(PermanentJobError):
        await GenerateKind().run(_job({"prompt": "written by hand"}), stages, _no_progress)
