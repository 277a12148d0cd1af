"""The HTTP ingress deployment: FastAPI routes (serve_app/api) over the job dispatcher and deployment handles.

Each ingress replica opens the services (database, asset store, cache, events), runs a job dispatcher, and
builds its FastAPI app in ``__serve_build_asgi_app__`` (after the constructor), so routes stay in
serve_app/api and reach the graph only through :class:`serve_app.api.service.ImageService`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from pipelines.styles import Style
from serve_app.config import AppConfig, Settings
from serve_app.errors import from_exception
from serve_app.schemas import BridgeSubmission, ComposedRequest, PartialRequest

__all__ = ["Ingress", "is_transient"]

logger = logging.getLogger("ray.serve.limner.ingress")


def is_transient(exc: BaseException) -> bool:
    """Whether a failed generation is worth another attempt: anything but bad input."""
    from pipelines.sdxl import GenerationInputError
    from serve_app.jobs.dispatcher import PermanentJobError

    return not isinstance(exc, (GenerationInputError, PermanentJobError))


@serve.deployment(name="Ingress", ray_actor_options={"num_cpus": 0})
@serve.ingress()
class Ingress:
    """HTTP, durable jobs and the dispatcher that drives them through the composer and the generator.

    Args:
        config: The whole app config (this deployment uses ``ingress``, ``jobs`` and ``cache``).
        settings: Paths and secrets, read from the environment by the builder.
        composer: Handle to the Composer deployment.
        generator: Handle to the Generator deployment.
    """

    async def __init__(
        self,
        config: AppConfig,
        settings: Settings,
        composer: DeploymentHandle,
        generator: DeploymentHandle,
        bridge: DeploymentHandle | None = None,
    ) -> None:
        from serve_app.api.service import ImageService
        from serve_app.images import ImageRepository
        from serve_app.jobs.dispatcher import Dispatcher
        from serve_app.jobs.generate import GenerateJobs
        from serve_app.services import open_services

        self._config = config
        self._composer = composer
        self._generator = generator
        self._bridge = bridge
        self._stream_handle = generator.options(stream=True)
        self._ready_info: dict[str, Any] | None = None
        self._ready_at = 0.0
        self._services = await open_services(config, settings)
        handler = GenerateJobs(
            stream=self._stream,
            images=ImageRepository(self._services.engine),
            store=self._services.store,
            results=self._services.results,
            result_ttl_s=config.cache.result_ttl_s,
            hot_assets=self._services.hot_assets,
        )
        jobs = config.jobs
        self._dispatcher = Dispatcher(
            self._services.jobs,
            handler,
            is_transient=is_transient,
            lease_s=jobs.lease_s,
            heartbeat_s=jobs.heartbeat_s,
            poll_interval_s=jobs.poll_interval_s,
            max_concurrent=jobs.max_concurrent,
            owner=f"ingress-{uuid.uuid4().hex[:12]}",
        )
        self._dispatcher.start()
        self._service = ImageService(
            self._services,
            self._dispatcher,
            self._compose,
            self.readiness,
            self.generator_stats,
            jobs,
            bridge_stats=self.bridge_stats if bridge is not None else None,
        )
        for body in config.cache.warm:
            await self._warm(body)

    def __serve_build_asgi_app__(self) -> Any:
        from serve_app.api.app import create_api

        return create_api(self._service)

    async def _warm(self, body: dict[str, Any]) -> None:
        """Queues a configured request at low priority, once (its idempotency key is its content)."""
        from serve_app.jobs import canonical_hash

        try:
            fmt = str(body.get("format", "png"))
            partial = PartialRequest(**{k: v for k, v in body.items() if k != "format"})  # type: ignore[arg-type]
            await self._service.submit(partial, fmt, priority=-10, idempotency_key=f"warm:{canonical_hash(body)}")
        except Exception:
            logger.exception("could not queue warm-up request %s", body)

    async def _compose(self, partial: PartialRequest, style: Style | None = None) -> ComposedRequest:
        composed: ComposedRequest = await self._composer.compose.remote(partial, style)
        return composed

    async def _stream(self, composed: ComposedRequest) -> AsyncIterator[dict[str, Any]]:
        response = self._stream_handle.generate_stream.remote(composed, self._services.jobs.progress_interval_s)
        finished = False
        try:
            async for item in response:
                yield item
            finished = True
        finally:
            if not finished:
                response.cancel()  # the job was cancelled or abandoned: stop at the next denoising step

    async def readiness(self) -> dict[str, Any] | None:
        now = time.monotonic()
        if self._ready_info is not None and now - self._ready_at < self._config.ingress.ready_cache_s:
            return self._ready_info
        try:
            # A generator still in its constructor has no replica to answer: the call waits, so bound it.
            info: dict[str, Any] = await asyncio.wait_for(self._generator.ready.remote(), timeout=2.0)
        except Exception as exc:  # any failure means "not ready"
            logger.info("generator not ready: %s", type(exc).__name__)
            self._ready_info = None
            return None
        self._ready_info, self._ready_at = info, now
        return info

    # -- the ZMQ bridge renders through these (handle calls from deployments/zmq_bridge.py) ----------------

    async def bridge_submit(self, submission: BridgeSubmission) -> str:
        """Commits a bridge request as a durable job (source zmq); returns its id."""
        partial = PartialRequest(
            prompt=submission.prompt,
            negative_prompt=submission.negative_prompt,
            width=submission.width,
            height=submission.height,
            seed=submission.seed,
        )
        deadline_s = None if submission.deadline_at is None else max(0.001, submission.deadline_at - time.time())
        job, _ = await self._service.submit(
            partial,
            "png",
            priority=submission.priority,
            deadline_s=deadline_s,
            source="zmq",
            style=submission.style,
            init_image=submission.init_png,
            strength=submission.strength,
            control_image=submission.control_png,
            control_scale=submission.control_scale,
            admit=False,  # the installation paces itself; its requests are never refused for queue length
        )
        return str(job.id)

    async def bridge_result(self, job_id: str, timeout_s: float) -> bytes:
        """The job's image as PNG once it succeeds; raises if it fails, is cancelled or runs out of time."""
        _, png = await self._service.result(uuid.UUID(job_id), "png", timeout_s)
        return png

    async def bridge_cancel(self, job_ids: list[str]) -> None:
        """Cancels bridge jobs (``clear_queue``, or answered by a fallback already)."""
        for job_id in job_ids:
            try:
                await self._service.cancel(job_id)
            except Exception:  # already finished or gone: nothing to cancel
                logger.debug("cancel of bridge job %s skipped", job_id, exc_info=True)

    async def bridge_stats(self) -> dict[str, Any]:
        if self._bridge is None:
            return {}
        stats: dict[str, Any] = await self._bridge.stats.remote()
        return stats

    async def generator_stats(self) -> dict[str, Any]:
        try:
            stats: dict[str, Any] = await self._generator.stats.remote()
        except Exception as exc:
            raise from_exception(exc) from exc
        return stats
