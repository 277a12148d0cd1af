"""The HTTP ingress deployment: hosts the edge (serve_app/runtime.py) over deployment handles.

Each ingress replica opens the services, builds the :class:`~serve_app.runtime.Edge` (kinds, dispatcher, job
and image services) and serves the FastAPI app of serve_app/api, built in ``__serve_build_asgi_app__`` (after
the constructor). Other deployments (the Experimance bridge) submit jobs through the generic
:meth:`Ingress.submit_job`, so every door reaches the same job service.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from pipelines.styles import Style
from serve_app.config import AppConfig, Settings
from serve_app.schemas import ComposedRequest, FigureCompose, PartialRequest

__all__ = ["Ingress"]

logger = logging.getLogger("ray.serve.limner.ingress")


@serve.deployment(name="Ingress")
@serve.ingress()
class Ingress:
    """HTTP, durable jobs and the dispatcher that drives them through the composer and the generator.

    Args:
        config: The whole app config.
        settings: Paths and secrets, read from the environment by the builder.
        composer: Handle to the Composer deployment.
        generator: Handle to the Generator deployment.
        bridge: Handle to the ZmqBridge deployment, when it is deployed (for its stats).
        overlay: Handle to the Overlay deployment; None draws in this replica.
        enhancer: Handle to the Enhancer deployment; None does the pixel work in this replica.
        remote: Handle to the Remote deployment (the paid APIs), when ``remote`` configures a backend.
    """

    async def __init__(
        self,
        config: AppConfig,
        settings: Settings,
        composer: DeploymentHandle,
        generator: DeploymentHandle,
        bridge: DeploymentHandle | None = None,
        overlay: DeploymentHandle | None = None,
        enhancer: DeploymentHandle | None = None,
        remote: DeploymentHandle | None = None,
    ) -> None:
        from serve_app.observability.logs import configure_logging_from_env
        from serve_app.runtime import Handles, build_edge
        from serve_app.services import open_services

        configure_logging_from_env()  # LIMNER_LOG_FORMAT=json: JSON lines (docs/OBSERVABILITY.md)
        self._config = config
        self._composer = composer
        self._generator = generator
        self._bridge = bridge
        self._stream_handle = generator.options(stream=True)
        self._ready_info: dict[str, Any] | None = None
        self._ready_at = 0.0
        services = await open_services(config, settings)
        handles = Handles(
            compose=self._compose,
            stream=self._stream,
            stream_batch=self._stream_batch,
            readiness=self.readiness,
            generator_stats=self.generator_stats,
            bridge_stats=self.bridge_stats if bridge is not None else None,
            overlay=None if overlay is None else _Remote(overlay),
            enhancer=None if enhancer is None else _Remote(enhancer),
            remote=None if remote is None else _RemoteStream(remote),
        )
        from serve_app.auth.mode import proxy_host

        self._edge = build_edge(
            config,
            services,
            handles,
            owner=f"ingress-{uuid.uuid4().hex[:12]}",
            model_cache=settings.model_cache,
            http_host=await asyncio.to_thread(proxy_host),  # auth.mode auto: keys unless Serve listens on loopback
        )
        await self._edge.start()
        for body in config.cache.warm:
            await self._warm(body)

    async def __del__(self) -> None:
        """Replica shutdown: stop claiming, hand running jobs back (no attempt counted), close the services."""
        edge = getattr(self, "_edge", None)  # absent if the constructor failed
        if edge is not None:
            await edge.aclose()

    def __serve_build_asgi_app__(self) -> Any:
        from serve_app.api.app import create_api

        return create_api(self._edge)

    async def _warm(self, body: dict[str, Any]) -> None:
        """Queues a configured request at low priority, once (its idempotency key is its content)."""
        from serve_app.jobs import canonical_hash
        from serve_app.jobs.kinds.generate import GenerateRequest
        from serve_app.jobs.service import SubmitOptions

        try:
            fmt = str(body.get("format", "png"))
            partial = PartialRequest(**{k: v for k, v in body.items() if k != "format"})  # type: ignore[arg-type]
            options = SubmitOptions(priority=-10, idempotency_key=f"warm:{canonical_hash(body)}")
            await self._edge.jobs.submit("generate", GenerateRequest(partial, format=fmt), options)
        except Exception:
            logger.exception("could not queue warm-up request %s", body)

    async def _compose(self, partial: PartialRequest | FigureCompose, style: Style | None = None) -> ComposedRequest:
        composed: ComposedRequest = await self._composer.compose.remote(partial, style)
        return composed

    def _stream(self, composed: ComposedRequest) -> AsyncIterator[dict[str, Any]]:
        interval = self._edge.services.jobs.progress_interval_s
        return _streamed(self._stream_handle.generate_stream.remote(composed, interval))

    def _stream_batch(self, composeds: Sequence[ComposedRequest]) -> AsyncIterator[dict[str, Any]]:
        interval = self._edge.services.jobs.progress_interval_s
        return _streamed(self._stream_handle.generate_batch_stream.remote(list(composeds), interval))

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

    async def generator_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = await self._generator.stats.remote()
        return stats

    async def bridge_stats(self) -> dict[str, Any]:
        if self._bridge is None:
            return {}
        stats: dict[str, Any] = await self._bridge.stats.remote()
        return stats

    # -- the generic job API other deployments call through handles ------------------------------------

    def _bridge_scope(self) -> Any:
        """The tenant scope of the bridge's calls: ``auth.bridge_tenant`` while keys are required (its jobs and
        images are then its own), unscoped while auth is off."""
        from serve_app.auth.tenant import tenant_scope

        guard = self._edge.guard
        return tenant_scope(self._config.auth.bridge_tenant if guard is not None and guard.enabled else None)

    async def submit_job(self, kind: str, request: Any, options: Any) -> str:
        """Commits a job of ``kind`` (``options``: a :class:`serve_app.jobs.service.SubmitOptions`); its id."""
        with self._bridge_scope():
            job, _ = await self._edge.jobs.submit(kind, request, options)
        return str(job.id)

    async def job_image(self, job_id: str, timeout_s: float, format: str = "png") -> bytes:
        """The job's main image once it succeeds; raises if it fails, is cancelled or runs out of time."""
        with self._bridge_scope():
            result = await self._edge.jobs.result(uuid.UUID(job_id), timeout_s)
            if result.image_id is None:
                raise RuntimeError(f"job {job_id} made no image")
            _, asset = await self._edge.images.image_bytes(result.image_id, format)
        return asset.data

    async def cancel_jobs(self, job_ids: list[str]) -> None:
        """Cancels jobs (the bridge's ``clear_queue``, or requests answered by a fallback already)."""
        for job_id in job_ids:
            try:
                with self._bridge_scope():
                    await self._edge.jobs.cancel(job_id)
            except Exception:  # already finished or gone: nothing to cancel
                logger.debug("cancel of job %s skipped", job_id, exc_info=True)


class _Remote:
    """A deployment handle behind the surface of its in-process stage: ``await stage.render(...)`` calls
    ``handle.render.remote(...)`` (the Overlay and Enhancer deployments)."""

    def __init__(self, handle: DeploymentHandle) -> None:
        self._handle = handle

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._handle, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await method.remote(*args, **kwargs)

        return call


class _RemoteStream(_Remote):
    """The Remote deployment's handle behind :class:`~serve_app.remote.stage.RemoteStage`'s surface: its
    ``generate_batch_stream`` streams through the handle (closing it early cancels the call)."""

    def __init__(self, handle: DeploymentHandle) -> None:
        super().__init__(handle)
        self._stream = handle.options(stream=True)

    def generate_batch_stream(
        self, family: Sequence[ComposedRequest], backend: str, every: float = 0.0
    ) -> AsyncIterator[dict[str, Any]]:
        return _streamed(self._stream.generate_batch_stream.remote(list(family), backend, every))


async def _streamed(response: Any) -> AsyncIterator[dict[str, Any]]:
    """A streaming handle call's items; closing early cancels the call (the job was cancelled or abandoned: the
    generator stops at its next denoising step, a paid API's call is cancelled or dropped)."""
    finished = False
    try:
        async for item in response:
            yield item
        finished = True
    finally:
        if not finished:
            response.cancel()
