"""Generate jobs: compose, answer from the result cache or generate once, store the image, record it.

Ray-free: the generator comes in as a callable (a deployment handle in the service, a plain object in tests);
the request was composed when the job was accepted and is read back from its payload.
"""

from __future__ import annotations

import io
import logging
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from typing import Any

from PIL import Image as PILImage

from pipelines.sdxl import GenerationRequest
from serve_app.cache import ByteCache, ResultCache
from serve_app.db import Image
from serve_app.images import ImageNotFound, ImageRepository
from serve_app.jobs.base import JobRecord
from serve_app.jobs.dispatcher import PermanentJobError, ProgressFn
from serve_app.schemas import ComposedRequest, GeneratedImage, PartialRequest
from serve_app.store import AssetStore

__all__ = ["GenerateJobs", "generate_payload", "generation_fields"]

logger = logging.getLogger("ray.serve.limner.jobs")

Stream = Callable[[ComposedRequest], AsyncIterator[dict[str, Any]]]


def generate_payload(partial: PartialRequest, output_format: str = "png") -> dict[str, Any]:
    """The durable payload of a generate job.

    An unseeded request gets its seed here, at acceptance, so a retried or re-run job draws the same image;
    it is marked not cacheable (an unseeded request asks for a new image, not a remembered one).
    """
    fields = {k: v for k, v in asdict(partial).items() if v is not None}
    cacheable = partial.seed is not None
    if not cacheable:
        fields["seed"] = secrets.randbelow(2**32)
    return {"request": fields, "cacheable": cacheable, "format": output_format}


def generation_fields(request: GenerationRequest) -> dict[str, Any]:
    """The JSON form of a composed text-to-image request, as a job payload keeps it."""
    fields = asdict(request)
    # Images travel by content hash beside the fields (payload["init_image"]), never inside the JSON.
    fields.pop("init_image")
    fields.pop("control_image", None)
    return fields


class GenerateJobs:
    """The job handler for ``kind == "generate"``.

    Args:
        stream: Generates a composed request, streaming progress then the image (the generator).
        images: Image metadata.
        store: Asset bytes.
        results: The result cache (request hash → image id), with single-flight.
        result_ttl_s: Lifetime of a cache entry; None keeps it.
        hot_assets: The hot-asset byte cache; a new image goes in at once, since its waiter reads it next.
    """

    def __init__(
        self,
        stream: Stream,
        images: ImageRepository,
        store: AssetStore,
        results: ResultCache,
        result_ttl_s: float | None = None,
        hot_assets: ByteCache | None = None,
    ) -> None:
        self._hot = hot_assets
        self._stream = stream
        self._images = images
        self._store = store
        self._results = results
        self._ttl = result_ttl_s

    async def __call__(self, job: JobRecord, progress: ProgressFn) -> str:
        from pipelines.sdxl import GenerationInputError

        try:  # the payload holds the request as composed at acceptance
            fields = dict(job.payload["generation"])
            if "init_image" in job.payload:  # image-to-image from a stored image
                fields["init_image"] = await self._load_image(job.payload["init_image"])
            if "control_image" in job.payload:  # ControlNet conditioning from a stored image
                fields["control_image"] = await self._load_image(job.payload["control_image"])
            composed = ComposedRequest(GenerationRequest(**fields), job.payload["request_hash"], uuid.uuid4().hex)
            composed.request.check()
        except (GenerationInputError, TypeError, KeyError) as exc:
            raise PermanentJobError(f"invalid request: {exc}") from exc
        # An image this very request already made (an earlier attempt of this job that died before finishing
        # it, or, for a seeded request, any earlier job) is the answer: the database is the durable cache.
        earlier = await self._images.find_by_request_hash(composed.request_hash)
        if earlier is not None and await self._store.exists(earlier.content_hash, earlier.format):
            return str(earlier.id)
        if not job.payload.get("cacheable"):
            return await self._generate_and_record(composed, progress)
        cached = await self._results.get(composed.request_hash)
        if isinstance(cached, str) and await self._still_there(cached):
            return cached
        # Identical requests in flight share one computation; a stale entry is simply overwritten.
        value = await self._results.get_or_compute(
            composed.request_hash, lambda: self._generate_and_record(composed, progress), ttl_s=self._ttl
        )
        if not isinstance(value, str) or not await self._still_there(value):
            value = await self._generate_and_record(composed, progress)
            await self._results.set(composed.request_hash, value, ttl_s=self._ttl)
        return value

    async def _load_image(self, sha256: str) -> PILImage.Image:
        from serve_app.store import AssetNotFound

        try:
            data = await self._store.get(sha256, "png")
        except AssetNotFound as exc:
            raise PermanentJobError(f"invalid request: init image {sha256} is gone") from exc
        image = PILImage.open(io.BytesIO(data))
        image.load()
        return image

    async def _still_there(self, image_id: str) -> bool:
        try:
            image = await self._images.get(image_id)
        except ImageNotFound:
            return False
        return await self._store.exists(image.content_hash, image.format)

    async def _generate_and_record(self, composed: ComposedRequest, progress: ProgressFn) -> str:
        from pipelines.sdxl import GenerationInputError

        result: GeneratedImage | None = None
        try:
            async for event in self._stream(composed):
                if event["type"] == "progress":
                    await progress(event["step"], event["total"])
                elif event["type"] == "image":
                    result = event["image"]
        except GenerationInputError as exc:
            raise PermanentJobError(str(exc)) from exc
        if result is None:
            raise RuntimeError("the generator's stream ended without an image")
        sha = await self._store.put(result.png, "png")
        if self._hot is not None:
            await self._hot.set(f"{sha}.png", result.png)
        request = composed.request
        record = await self._images.get_or_create(
            Image(
                kind="image",
                prompt=request.prompt,
                negative_prompt=request.negative_prompt,
                seed=result.seed,
                settings={
                    "request_hash": composed.request_hash,
                    "strength": request.strength if request.mode == "img2img" else None,
                    "steps": request.steps,
                    "guidance": request.guidance,
                    "scheduler": request.scheduler,
                    "mode": request.mode,
                },
                model=request.model,
                width=result.width,
                height=result.height,
                content_hash=sha,
                request_hash=composed.request_hash,
                format="png",
            )
        )
        return str(record.id)
