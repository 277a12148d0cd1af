"""The steps every kind of job shares, so a kind's ``run`` reads like a recipe.

compose → generate (through a backend handle, with progress and cancellation, answered from the result cache
when it can be) → store an image → derive a version of an image → read a stored image. Ray-free: the
composer and the generator come in as callables (deployment handles in the service, plain objects in tests).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipelines import encode
from pipelines.errors import InputError
from pipelines.request import GenerationLimits
from pipelines.styles import Style
from serve_app.db import Image
from serve_app.images import ImageNotFound, ImageRecord, ImageRepository
from serve_app.jobs.base import PermanentJobError
from serve_app.schemas import ComposedRequest, GeneratedImage, PartialRequest
from serve_app.store import AssetNotFound

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from serve_app.jobs.dispatcher import ProgressFn
    from serve_app.services import Services

__all__ = ["ComposeFn", "Stages", "StreamFn"]

logger = logging.getLogger("ray.serve.limner.jobs")

ComposeFn = Callable[[PartialRequest, Style | None], Awaitable[ComposedRequest]]
"""The composer: a partial request and a style in, a full generation request and its hash out."""
StreamFn = Callable[[ComposedRequest], AsyncIterator[dict[str, Any]]]
"""The generator: streams ``{"type": "progress", "step", "total"}`` then ``{"type": "image", "image"}``.
Closing the stream early cancels the generation at its next step."""


@dataclass(frozen=True)
class Stages:
    """The shared steps, over the services and the stage handles.

    Attributes:
        services: The backends (database, asset store, caches).
        compose_fn: The composer.
        stream_fn: The generator.
        result_ttl_s: Lifetime of a result-cache entry; None keeps it.
        limits: The generator's request bounds (``generator.limits``), for a kind's own checks.
    """

    services: Services
    compose_fn: ComposeFn
    stream_fn: StreamFn
    result_ttl_s: float | None = None
    limits: GenerationLimits = field(default_factory=GenerationLimits)

    @property
    def images(self) -> ImageRepository:
        return ImageRepository(self.services.engine)

    # -- compose ---------------------------------------------------------------------------------------

    async def compose(self, partial: PartialRequest, style: Style | None = None) -> ComposedRequest:
        """The full generation request for ``partial`` (raises ``InputError`` naming a bad field)."""
        return await self.compose_fn(partial, style)

    # -- assets ----------------------------------------------------------------------------------------

    async def put_png(self, data: bytes, param: str) -> str:
        """Stores an uploaded image as PNG and returns its content hash (a job refers to images by hash).

        Raises:
            InputError: ``data`` is not an image (``param`` names the field it came in).
        """
        try:
            image = encode.decode(data)
        except (OSError, ValueError) as exc:
            raise InputError(param, f"<{len(data)} bytes>", "an image PIL can read (PNG, JPEG, WebP)") from exc
        png = data if image.format == "PNG" else encode.encode(image, "png")
        return await self.services.store.put(png, "png")

    async def load_png(self, sha256: str, param: str) -> PILImage.Image:
        """A stored PNG, decoded.

        Raises:
            PermanentJobError: It is gone (collected, or never stored): no retry brings it back.
        """
        try:
            data = await self.services.store.get(sha256, "png")
        except AssetNotFound as exc:
            raise PermanentJobError(f"{param} {sha256} is gone from the asset store", param=param) from exc
        return encode.decode(data)

    async def read_image(self, image_id: str) -> tuple[ImageRecord, bytes]:
        """An image's record and its stored bytes.

        Raises:
            PermanentJobError: No such image, or its bytes are gone.
        """
        try:
            record = await self.images.get(image_id)
            data = await self.services.store.get(record.content_hash, record.format)
        except (ImageNotFound, AssetNotFound) as exc:
            raise PermanentJobError(str(exc), error_type="not_found", param="image_id") from exc
        return record, data

    # -- generate --------------------------------------------------------------------------------------

    async def generate(self, composed: ComposedRequest, progress: ProgressFn) -> GeneratedImage:
        """Runs ``composed`` on the generator, reporting its steps; cancelling the caller cancels it."""
        result: GeneratedImage | None = None
        async for event in self.stream_fn(composed):
            if event["type"] == "progress":
                await progress(event["step"], event["total"])
            elif event["type"] == "image":
                result = event["image"]
        if result is None:
            raise RuntimeError("the generator's stream ended without an image")
        return result

    async def generate_image(self, composed: ComposedRequest, progress: ProgressFn, *, cacheable: bool) -> str:
        """Generates and stores one image, unless an identical request already made it; returns its id.

        An image this very request made before (an earlier attempt of the same job that died before finishing
        it, or, for a cacheable request, any earlier job) is the answer: the database is the durable cache.
        Cacheable requests also consult the result cache, and identical ones in flight share one generation.
        """
        earlier = await self.images.find_by_request_hash(composed.request_hash)
        if earlier is not None and await self.services.store.exists(earlier.content_hash, earlier.format):
            return str(earlier.id)
        if not cacheable:
            return await self._generate_and_record(composed, progress)
        results, ttl = self.services.results, self.result_ttl_s
        cached = await results.get(composed.request_hash)
        if isinstance(cached, str) and await self._still_there(cached):
            return cached
        value = await results.get_or_compute(
            composed.request_hash, lambda: self._generate_and_record(composed, progress), ttl_s=ttl
        )
        if not isinstance(value, str) or not await self._still_there(value):  # a stale entry: overwrite it
            value = await self._generate_and_record(composed, progress)
            await results.set(composed.request_hash, value, ttl_s=ttl)
        return value

    async def _generate_and_record(self, composed: ComposedRequest, progress: ProgressFn) -> str:
        generated = await self.generate(composed, progress)
        request = composed.request
        settings = {
            "request_hash": composed.request_hash,
            "strength": request.strength if request.mode == "img2img" else None,
            "steps": request.steps,
            "guidance": request.guidance,
            "scheduler": request.scheduler,
            "mode": request.mode,
        }
        return await self.store_image(
            generated.png,
            width=generated.width,
            height=generated.height,
            prompt=request.prompt,
            negative_prompt=request.negative_prompt,
            seed=generated.seed,
            model=request.model,
            settings=settings,
            request_hash=composed.request_hash,
        )

    async def _still_there(self, image_id: str) -> bool:
        try:
            image = await self.images.get(image_id)
        except ImageNotFound:
            return False
        return await self.services.store.exists(image.content_hash, image.format)

    # -- store -----------------------------------------------------------------------------------------

    async def store_image(
        self,
        png: bytes,
        *,
        width: int,
        height: int,
        kind: str = "image",
        prompt: str | None = None,
        negative_prompt: str | None = None,
        seed: int | None = None,
        model: str | None = None,
        settings: Mapping[str, Any] | None = None,
        request_hash: str | None = None,
        parent_id: uuid.UUID | None = None,
        version: int = 1,
    ) -> str:
        """Stores PNG bytes (blob first, then the row) and returns the image id.

        A row with the same ``request_hash`` and parent is reused, so a re-run attempt adds no duplicate.
        """
        sha = await self.services.store.put(png, "png")
        await self.services.hot_assets.set(f"{sha}.png", png)  # its waiter reads it next
        record = await self.images.get_or_create(
            Image(
                kind=kind,
                prompt=prompt,
                negative_prompt=negative_prompt,
                seed=seed,
                settings=dict(settings or {}),
                model=model,
                width=width,
                height=height,
                content_hash=sha,
                request_hash=request_hash,
                format="png",
                parent_id=parent_id,
                version=version,
            )
        )
        return str(record.id)

    async def derive(
        self,
        parent_id: str,
        png: bytes,
        *,
        kind: str,
        settings: Mapping[str, Any] | None = None,
        request_hash: str | None = None,
    ) -> str:
        """Stores ``png`` as a new version of ``parent_id`` (``parent_id`` set, ``version + 1``).

        The derived image keeps its parent's prompt, seed and model; ``settings`` says what was done.

        Raises:
            PermanentJobError: The parent image does not exist.
        """
        try:
            parent = await self.images.get(parent_id)
        except ImageNotFound as exc:
            raise PermanentJobError(str(exc), error_type="not_found", param="image_id") from exc
        width, height = encode.decode(png).size
        return await self.store_image(
            png,
            width=width,
            height=height,
            kind=kind,
            prompt=parent.prompt,
            negative_prompt=parent.negative_prompt,
            seed=parent.seed,
            model=parent.model,
            settings=settings,
            request_hash=request_hash,
            parent_id=parent.id,
            version=parent.version + 1,
        )
