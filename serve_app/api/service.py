"""The logic behind the HTTP routes: accept jobs, wait for them, read images and assets.

Routes stay thin (parse, call, shape the answer); this class knows the services. The ingress deployment
builds it with deployment handles for the composer and the generator; tests build it with plain objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from PIL import Image as PILImage

from pipelines.prompts import request_hash
from pipelines.styles import Style
from serve_app.config import JobsConfig
from serve_app.errors import Conflict, GatewayTimeout, InvalidRequest, NotFound, Overloaded, ServiceError
from serve_app.events import Event, SubscriptionLagged
from serve_app.images import ImageNotFound, ImageRecord, ImageRepository
from serve_app.jobs import (
    TERMINAL_EVENTS,
    IdempotencyConflict,
    InvalidCursor,
    JobNotFound,
    JobPage,
    JobRecord,
    canonical_hash,
)
from serve_app.jobs.dispatcher import Dispatcher
from serve_app.jobs.generate import generate_payload, generation_fields
from serve_app.schemas import ComposedRequest, PartialRequest
from serve_app.services import Services
from serve_app.store import AssetNotFound, InvalidAssetKey, UnsupportedFormat

__all__ = ["TERMINAL", "Asset", "ImageService"]

TERMINAL = frozenset({"succeeded", "failed", "cancelled", "dead"})
"""Job statuses after which nothing changes."""


@dataclass(frozen=True)
class Asset:
    """Bytes of a stored asset and what an HTTP cache needs to know about them."""

    data: bytes
    sha256: str
    ext: str

    @property
    def etag(self) -> str:
        return f'"{self.sha256}.{self.ext}"'


class ImageService:
    """Accepts and tracks generate jobs; reads images and assets.

    Args:
        services: The backends.
        dispatcher: This replica's dispatcher (woken on submit; runs local cancels).
        compose: The composer (validates and hashes a request at acceptance).
        readiness: Returns the generator's model and device when it can serve, else None.
        generator_stats: Batching statistics of a generator replica.
        config: The ``jobs`` section.
    """

    def __init__(
        self,
        services: Services,
        dispatcher: Dispatcher,
        compose: Callable[[PartialRequest, Style | None], Awaitable[ComposedRequest]],
        readiness: Callable[[], Awaitable[dict[str, Any] | None]],
        generator_stats: Callable[[], Awaitable[dict[str, Any]]],
        config: JobsConfig,
        bridge_stats: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    ) -> None:
        self.bridge_stats = bridge_stats
        self.services = services
        self.dispatcher = dispatcher
        self._compose = compose
        self.readiness = readiness
        self.generator_stats = generator_stats
        self.config = config
        self.images = ImageRepository(services.engine)

    # -- jobs -----------------------------------------------------------------------------------------------

    async def submit(
        self,
        partial: PartialRequest,
        output_format: str = "png",
        *,
        priority: int = 0,
        idempotency_key: str | None = None,
        deadline_s: float | None = None,
        source: str = "http",
        style: Style | None = None,
        init_image: bytes | None = None,
        strength: float | None = None,
        control_image: bytes | None = None,
        control_scale: float = 1.0,
        admit: bool = True,
    ) -> tuple[JobRecord, ComposedRequest]:
        """Validates ``partial`` (422 before anything is stored), then commits a queued job.

        ``init_image`` (PNG bytes) makes it image-to-image with ``strength``, and ``control_image`` (PNG bytes)
        conditions it through the generator's ControlNet with ``control_scale``: each image is stored in the
        asset store first and the job refers to it by hash, so a retried job starts from the same pixels.

        Raises:
            InvalidRequest: A field is out of range.
            Conflict: ``idempotency_key`` was used with a different request.
            Overloaded: The queue is full.
        """
        if admit and not self.dispatcher.admit(self.config.max_queued):
            raise Overloaded(
                "The job queue is full; try again shortly.", headers={"Retry-After": str(self.config.retry_after_s)}
            )
        # A slot to claim the job in its committing transaction; not for an idempotency key, whose submit may
        # answer with an earlier job instead (only a job this submit made is ever adopted).
        slot = self.dispatcher.reserve() if idempotency_key is None else None
        try:
            job, composed = await self._submit(
                slot,
                partial,
                output_format,
                priority,
                idempotency_key,
                deadline_s,
                source,
                style,
                init_image,
                strength,
                control_image,
                control_scale,
            )
        except BaseException:
            if slot is not None:
                self.dispatcher.unreserve()
            if admit:
                self.dispatcher.release()
            raise
        if slot is not None and job.status == "running":
            self.dispatcher.adopt(job)  # claimed as it was committed: nothing was ahead of it, a slot was free
            if admit:
                self.dispatcher.release()
        else:
            if slot is not None:
                self.dispatcher.unreserve()
            self.dispatcher.wake()
        return job, composed

    async def _submit(
        self,
        slot: tuple[str, float] | None,
        partial: PartialRequest,
        output_format: str,
        priority: int,
        idempotency_key: str | None,
        deadline_s: float | None,
        source: str,
        style: Style | None = None,
        init_image: bytes | None = None,
        strength: float | None = None,
        control_image: bytes | None = None,
        control_scale: float = 1.0,
    ) -> tuple[JobRecord, ComposedRequest]:
        from serve_app.errors import from_exception

        payload = generate_payload(partial, output_format)
        try:
            composed = await self._compose(PartialRequest(**payload["request"]), style)
            request, init_sha, control_sha = composed.request, None, None
            if init_image is not None:
                init_sha = await self.services.store.put(init_image, "png")
                pixels = PILImage.open(io.BytesIO(init_image))
                request = replace(request, mode="img2img", strength=strength or 0.75, init_image=pixels)
                payload["init_image"] = init_sha
            if control_image is not None:
                control_sha = await self.services.store.put(control_image, "png")
                pixels = PILImage.open(io.BytesIO(control_image))
                request = replace(request, control_image=pixels, control_scale=control_scale)
                payload["control_image"] = control_sha
            if request is not composed.request:
                request.check()
                composed = replace(composed, request=request, request_hash=request_hash(request, init_sha, control_sha))
        except Exception as exc:
            raise from_exception(exc) from exc
        if style is not None:
            payload["style"] = style.name
        payload["request_hash"] = composed.request_hash
        # What the job will generate, fully composed: a retry runs exactly this, without the composer.
        payload["generation"] = generation_fields(composed.request)
        body = {"request": {k: v for k, v in vars(partial).items() if v is not None}, "format": output_format}
        deadline = datetime.now(UTC) + timedelta(seconds=deadline_s) if deadline_s else None
        try:
            job = await self.services.jobs.submit(
                "generate",
                payload,
                priority=priority,
                deadline=deadline,
                max_attempts=self.config.max_attempts,
                source=source,
                idempotency_key=idempotency_key,
                request_hash=canonical_hash({"kind": "generate", "body": body}),
                claim_for=slot,
            )
        except IdempotencyConflict as exc:
            raise Conflict(str(exc), param="Idempotency-Key") from exc
        return job, composed

    async def job(self, job_id: str) -> JobRecord:
        try:
            return await self.services.jobs.get(_job_uuid(job_id))
        except JobNotFound as exc:
            raise NotFound(str(exc), param="job_id") from exc

    async def jobs(self, status: list[str] | None, limit: int, cursor: str | None) -> JobPage:
        try:
            return await self.services.jobs.list(status=status or None, limit=limit, cursor=cursor)
        except InvalidCursor as exc:
            raise InvalidRequest(str(exc), param="cursor") from exc
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="status") from exc

    async def cancel(self, job_id: str) -> JobRecord:
        """Cancels a queued job at once; a running one stops at its next denoising step."""
        job = await self.job(job_id)
        record = await self.services.jobs.cancel(job.id)
        if record.status == "running":
            self.dispatcher.cancel_running(job.id)  # if it runs here; else its heartbeat notices
        return record

    async def wait(self, job_id: uuid.UUID, timeout_s: float) -> JobRecord:
        """Returns the job once it is finished, or as it is when ``timeout_s`` runs out."""
        job, _ = await self._wait(job_id, timeout_s, read_success=True)
        assert job is not None
        return job

    async def _wait(
        self, job_id: uuid.UUID, timeout_s: float, *, read_success: bool
    ) -> tuple[JobRecord | None, str | None]:
        """Waits for the job to finish: ``(job, result image id)``.

        With ``read_success=False`` a ``succeeded`` event heard live answers ``(None, image id)`` without
        reading the job again; anything else answers the job as the database has it.
        """
        deadline = time.monotonic() + timeout_s
        async with self.services.events.subscribe(str(job_id)) as sub:
            job = await self.services.jobs.get(job_id)
            while job.status not in TERMINAL:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                # A final event wakes us at once; the short timeout also covers events published elsewhere
                # (another replica without Redis): the database is the truth, read again only then.
                event = None
                with contextlib.suppress(SubscriptionLagged):
                    event = await sub.get(timeout=min(left, 0.5))
                if not read_success and event is not None and event.type == "succeeded":
                    if isinstance(image_id := event.data.get("image_id"), str):
                        return None, image_id
                if event is None or event.type in TERMINAL_EVENTS:
                    job = await self.services.jobs.get(job_id)
        return job, None if job.result_image_id is None else str(job.result_image_id)

    async def events(self, job_id: str, after_seq: int) -> AsyncIterator[Event]:
        """The job's events after ``after_seq``: its log first, then live ones, until a terminal event."""
        job = await self.job(job_id)
        sent = after_seq
        async with self.services.events.subscribe(str(job.id)) as sub:
            while True:
                for event in await self.services.jobs.events_since(job.id, after_seq=sent):
                    sent = event.seq or sent
                    yield event
                    if _is_terminal_event(event):
                        return
                try:
                    live = await sub.get(timeout=1.0)
                except SubscriptionLagged:
                    continue  # catch up from the log
                if live is not None and live.seq == sent + 1:
                    sent = live.seq
                    yield live
                    if _is_terminal_event(live):
                        return

    async def generate(self, partial: PartialRequest, output_format: str) -> tuple[JobRecord, ImageRecord, bytes]:
        """Runs ``partial`` as a high-priority job and returns its image in ``output_format``.

        Raises:
            ServiceError: Invalid input (422), overload (503), failure (500) or timeout (504).
        """
        job, _ = await self.submit(partial, output_format, priority=self.config.generate_priority)
        image, data = await self.result(job.id, output_format, self.config.generate_timeout_s)
        return job, image, data

    async def result(self, job_id: uuid.UUID, output_format: str, timeout_s: float) -> tuple[ImageRecord, bytes]:
        """Waits for a job and returns its image; cancels the job if the waiter goes away first.

        Raises:
            ServiceError: The job failed (500, or 422 for input found bad late) or did not finish in time (504).
        """
        try:
            job, image_id = await self._wait(job_id, timeout_s, read_success=False)
        except asyncio.CancelledError:
            # The client went away: nobody wants this image any more.
            with contextlib.suppress(Exception):
                await asyncio.shield(self.cancel(str(job_id)))
            raise
        if job is not None and (job.status != "succeeded" or image_id is None):
            raise _job_error(job)
        assert image_id is not None
        image = await self.images.get(image_id)
        asset = await self.asset(image.content_hash, output_format)
        return image, asset.data

    # -- images and assets ------------------------------------------------------------------------------

    async def image(self, image_id: str) -> ImageRecord:
        try:
            return await self.images.get(image_id)
        except ImageNotFound as exc:
            raise NotFound(str(exc), param="image_id") from exc

    async def versions(self, image_id: str) -> list[ImageRecord]:
        try:
            return await self.images.versions(image_id)
        except ImageNotFound as exc:
            raise NotFound(str(exc), param="image_id") from exc

    async def delete_image(self, image_id: str) -> ImageRecord:
        try:
            return await self.images.soft_delete(image_id)
        except ImageNotFound as exc:
            raise NotFound(str(exc), param="image_id") from exc

    async def asset(self, sha256: str, ext: str) -> Asset:
        """The asset's bytes: from the hot cache, else the store (deriving other formats from the PNG)."""
        ext = "jpeg" if ext == "jpg" else ext
        key = f"{sha256}.{ext}"
        cached = await self.services.hot_assets.get(key)
        if cached is not None:
            return Asset(cached, sha256, ext)
        store = self.services.store
        try:
            if ext == "png" or await store.exists(sha256, ext):
                data = await store.get(sha256, ext)
            else:
                await store.derive(sha256, "png", ext)
                data = await store.get(sha256, ext)
        except (AssetNotFound, FileNotFoundError) as exc:
            raise NotFound(f"no asset {key}", param="sha256") from exc
        except (InvalidAssetKey, UnsupportedFormat) as exc:
            raise InvalidRequest(str(exc), param="ext" if isinstance(exc, UnsupportedFormat) else "sha256") from exc
        await self.services.hot_assets.set(key, data)
        return Asset(data, sha256, ext)

    def asset_url(self, sha256: str, ext: str) -> str:
        """Where a client fetches the asset: the CDN when one is configured, else this service."""
        base = self.services.public_base_url
        return f"{base.rstrip('/')}/{sha256}.{ext}" if base else f"/api/v2/assets/{sha256}.{ext}"


def _job_uuid(job_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(job_id)
    except ValueError:
        raise NotFound(f"no job with id {job_id}", param="job_id") from None


def _is_terminal_event(event: Event) -> bool:
    return event.type in TERMINAL_EVENTS


def _job_error(job: JobRecord) -> ServiceError:
    from serve_app.errors import GenerationFailed

    if job.status not in TERMINAL:
        return GatewayTimeout(f"job {job.id} is still {job.status}; poll /api/v2/images/jobs/{job.id}", param=None)
    if job.status == "failed" and job.error and job.error.startswith("invalid request"):
        return InvalidRequest(job.error)
    return GenerationFailed(f"job {job.id} ended {job.status}: {job.error or 'no error recorded'}")
