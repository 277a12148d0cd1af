"""The edge, built once: services + stage handles in, the job and image services and the dispatcher out.

:func:`build_edge` is the one place that wires the kind registry, the shared stages, the dispatcher, the job
service and the image service. The ingress deployment builds it over Ray deployment handles; the HTTP tests
build it over plain objects (the tiny model in-process). Nothing here imports Ray.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from serve_app.auth.guard import Guard, TenantQuotas
from serve_app.auth.keys import SqlKeyStore
from serve_app.auth.mode import resolve_mode
from serve_app.config import AppConfig
from serve_app.enhance.stage import EnhancerStage
from serve_app.image_service import ImageService
from serve_app.jobs.backoff import Backoff
from serve_app.jobs.dispatcher import Dispatcher
from serve_app.jobs.kinds import JobKind, KindRegistry, default_kinds
from serve_app.jobs.retention import Janitor
from serve_app.jobs.service import JobService
from serve_app.jobs.stages import ComposeFn, Stages, StreamBatchFn, StreamFn
from serve_app.moderation import Moderator
from serve_app.overlays.service import OverlayService
from serve_app.overlays.stage import OverlayStage
from serve_app.overlays.store import OverlayStore
from serve_app.ratelimit import open_ratelimiter
from serve_app.remote.ledger import CostLedger
from serve_app.remote.routing import Router
from serve_app.services import Services
from serve_app.subjects import SubjectStore
from serve_app.themes.packs import builtin_themes
from serve_app.themes.service import ThemeService
from serve_app.webhooks.deliverer import WebhookDeliverer

__all__ = ["Edge", "Handles", "build_edge"]

Stats = Callable[[], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Handles:
    """How the edge reaches the other stages (deployment handles in the service, plain objects in tests).

    Attributes:
        compose: The composer.
        stream: The generator, streaming progress then the image.
        readiness: The generator's model and device once it can serve, else None.
        generator_stats: Batching statistics of a generator replica.
        bridge_stats: The Experimance bridge's counters; None when the bridge is not deployed.
        stream_batch: The generator for a family of requests queued together (one job's variations).
        overlay: The overlay stage (measure, render, sketch, fit; the Overlay deployment's handle); None: an
            in-process :class:`~serve_app.overlays.stage.OverlayStage`.
        enhancer: The enhancer stage (upscale, faces, structure; the Enhancer deployment's handle); None: an
            in-process :class:`~serve_app.enhance.stage.EnhancerStage`.
        remote: The remote stage (the paid APIs: ``generate_batch_stream(family, backend, every)``, ``ready``,
            ``stats``; the Remote deployment's handle); None: an in-process
            :class:`~serve_app.remote.stage.RemoteStage` when ``remote`` configures a backend.
    """

    compose: ComposeFn
    stream: StreamFn
    readiness: Callable[[], Awaitable[dict[str, Any] | None]]
    generator_stats: Stats
    bridge_stats: Stats | None = None
    stream_batch: StreamBatchFn | None = None
    overlay: Any | None = None
    enhancer: Any | None = None
    remote: Any | None = None


@dataclass
class Edge:
    """What the HTTP routes and the bridge talk to. Built by :func:`build_edge`.

    Attributes:
        config: The app config.
        services: The backends.
        handles: The other stages.
        registry: The job kinds.
        dispatcher: This replica's dispatcher.
        jobs: Accepts and follows jobs of every kind.
        images: Reads images and assets.
        janitor: Runs the retention policy on a schedule (one replica at a time).
        themes: Themes (CRUD, versions, resolution).
        subjects: Recurring subjects.
        stages: The shared steps every kind runs on.
        overlays: Overlays and maps (measure, draw, versions, UVTT).
        webhooks: Sends the webhook outbox (None: webhooks are off, no ``LIMNER_WEBHOOK_SECRET``).
        guard: Checks each HTTP request's key, scope and rate (``guard.enabled`` false: auth is off).
    """

    config: AppConfig
    services: Services
    handles: Handles
    registry: KindRegistry
    dispatcher: Dispatcher
    jobs: JobService
    images: ImageService
    janitor: Janitor
    themes: ThemeService
    subjects: SubjectStore
    stages: Stages
    overlays: OverlayService
    webhooks: WebhookDeliverer | None = None
    guard: Guard | None = None

    async def start(self) -> None:
        """Stores the built-in themes that changed, then starts the dispatcher's claim loop and the janitor's
        schedule (on the running event loop)."""
        await self.themes.sync_builtins()
        self.dispatcher.start()
        self.janitor.start()
        if self.webhooks is not None:
            self.webhooks.start()

    async def aclose(self) -> None:
        """Stops the janitor, the webhooks and the dispatcher (which hands its running jobs back), then closes the
        services. Undelivered webhooks stay in the outbox for the next replica."""
        await self.janitor.stop()
        if self.webhooks is not None:
            await self.webhooks.stop()
        await self.dispatcher.stop()
        if self.guard is not None:
            await self.guard.aclose()
        from serve_app.remote.stage import RemoteStage

        if isinstance(self.handles.remote, RemoteStage):  # in process: its HTTP clients are this replica's
            await self.handles.remote.aclose()
        await self.services.aclose()


def _webhook_secret() -> str | None:
    """``LIMNER_WEBHOOK_SECRET``, checked (a bad one stops the start with a message naming the variable)."""
    from serve_app.config import Settings
    from serve_app.webhooks.signing import secret_bytes

    value = Settings().webhook_secret
    if value is None:
        return None
    secret = value.get_secret_value()
    try:
        secret_bytes(secret)
    except ValueError as exc:
        raise ValueError(f"LIMNER_WEBHOOK_SECRET: {exc}") from None
    return secret


def _deliverer(config: AppConfig, services: Services, secret: str) -> WebhookDeliverer:
    from serve_app.api.responses import job_response
    from serve_app.webhooks.outbox import WebhookOutbox

    hooks = config.webhooks
    return WebhookDeliverer(
        WebhookOutbox(services.engine),
        services.jobs,
        lambda job: job_response(job).model_dump(mode="json"),
        secret=secret,
        allowed_hosts=tuple(hooks.allow_hosts),
        timeout_s=hooks.timeout_s,
        max_attempts=hooks.max_attempts,
        backoff=Backoff(base_s=hooks.backoff_base_s, cap_s=hooks.backoff_cap_s),
        poll_s=hooks.poll_s,
    )


def _theme_news(hub: Any) -> Any:
    """The themes' change hook: a ``theme.updated`` hub event (``action``: created, updated or deleted)."""

    async def news(action: str, record: Any) -> None:
        data = {"theme_id": str(record.id), "name": record.name, "version": record.version, "action": action}
        await hub.publish("theme.updated", f"theme/{record.id}", data)

    return news


def build_edge(
    config: AppConfig,
    services: Services,
    handles: Handles,
    *,
    kinds: Iterable[JobKind] | None = None,
    owner: str | None = None,
    poll_interval_s: float | None = None,
    model_cache: str | None = None,
    webhook_secret: str | None = None,
    http_host: str | None = "127.0.0.1",
) -> Edge:
    """Wires the edge. Await :meth:`Edge.start` on the event loop that serves it.

    Args:
        config: The app config (``jobs``, ``cache`` and ``retention`` sections are used here).
        services: Opened backends (:func:`serve_app.services.open_services`).
        handles: The other stages.
        kinds: The job kinds; :func:`serve_app.jobs.kinds.default_kinds` by default.
        owner: The dispatcher's name on leases; a random ``ingress-…`` name by default.
        poll_interval_s: Overrides ``jobs.poll_interval_s`` (tests poll faster).
        model_cache: Where the in-process enhancer keeps its built-in upscaler network (LIMNER_MODEL_CACHE's
            default when None).
        webhook_secret: Signs webhooks (``LIMNER_WEBHOOK_SECRET`` when None).
        http_host: Where clients reach this edge (the ingress passes Serve's proxy host; None: unknown, which is
            treated as beyond loopback). With ``auth.mode: auto`` it decides whether keys are required.
    """
    if model_cache is None:
        from serve_app.config import Settings

        model_cache = Settings().model_cache
    jobs = config.jobs
    registry = KindRegistry(default_kinds() if kinds is None else kinds)
    limits = config.generator.limits.generation_limits()
    moderator = Moderator(config.moderation)
    themes = ThemeService(
        services.engine,
        packs=builtin_themes(config.themes.packs),
        kinds=registry.names,
        limits=limits,
        moderate=moderator.check,
        max_depth=config.themes.max_depth,
        recent_jobs_s=config.themes.recent_jobs_days * 86400,
        on_change=_theme_news(services.hub),
    )
    subjects = SubjectStore(services.engine)
    remote = handles.remote
    if remote is None and config.remote.configured:
        from serve_app.remote.stage import RemoteStage

        remote = RemoteStage(config.remote)  # MissingKey names an unset key variable
        handles = replace(handles, remote=remote)
    ledger = CostLedger(services.engine)
    router = Router(
        config.remote,
        ledger,
        local_stats=handles.generator_stats,
        local_ready=handles.readiness,
        remote_ready=None if remote is None else remote.ready,
    )
    remote_batch_fn = None
    if remote is not None:
        interval = services.jobs.progress_interval_s

        def remote_batch_fn(family: Any, backend: str) -> Any:
            return remote.generate_batch_stream(family, backend, interval)

    stages = Stages(
        services,
        handles.compose,
        handles.stream,
        result_ttl_s=config.cache.result_ttl_s,
        limits=limits,
        stream_batch_fn=handles.stream_batch,
        themes=themes,
        subjects=subjects,
        moderator=moderator,
        overlay=handles.overlay if handles.overlay is not None else OverlayStage(config.overlay.limits()),
        overlays=OverlayStore(services.engine),
        default_rule=config.overlay.default_rule,
        overlay_limits=config.overlay.limits(),
        maps=config.maps,
        map_base_pixels=config.maps.base_pixels or config.composer.base_pixels,
        controlnet=config.generator.controlnet is not None,
        enhancer=handles.enhancer if handles.enhancer is not None else EnhancerStage(config.enhancer, model_cache),
        enhancer_config=config.enhancer,
        native_size=config.composer.width,
        router=router,
        remote_batch_fn=remote_batch_fn,
        ledger=ledger,
        max_upload_pixels=config.ingress.max_image_pixels,
    )
    dispatcher = Dispatcher(
        services.jobs,
        registry,
        stages,
        lease_s=jobs.lease_s,
        heartbeat_s=jobs.heartbeat_s,
        poll_interval_s=jobs.poll_interval_s if poll_interval_s is None else poll_interval_s,
        max_concurrent=jobs.max_concurrent,
        owner=owner or f"ingress-{uuid.uuid4().hex[:12]}",
    )
    secret = webhook_secret if webhook_secret is not None else _webhook_secret()
    limiter = open_ratelimiter(services.redis)  # shared with every replica through Redis when there is one
    guard = Guard(
        config.auth,
        enabled=resolve_mode(config.auth, http_host),
        keys=SqlKeyStore(services.engine),
        limiter=limiter,
    )
    job_service = JobService(
        services.jobs,
        services.events,
        registry,
        stages,
        dispatcher,
        jobs,
        wait_poll_s=config.ingress.waiter_poll_s,
        webhook_hosts=None if secret is None else tuple(config.webhooks.allow_hosts),
        quotas=TenantQuotas(config.auth.limits, services.engine, limiter),
    )
    webhooks = None if secret is None else _deliverer(config, services, secret)
    janitor = Janitor(services, config, registry)
    images = ImageService(services)
    overlays = OverlayService(stages, stages.overlays)
    return Edge(
        config,
        services,
        handles,
        registry,
        dispatcher,
        job_service,
        images,
        janitor,
        themes,
        subjects,
        stages,
        overlays,
        webhooks,
        guard,
    )
