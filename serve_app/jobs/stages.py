"""The steps every kind of job shares, so a kind's ``run`` reads like a recipe.

compose → generate (through a backend handle, with progress and cancellation, answered from the result cache
when it can be) → store an image → derive a version of an image → read a stored image. Ray-free: the
composer and the generator come in as callables (deployment handles in the service, plain objects in tests).

Each step's seconds are recorded as its stage's (``limner_stage_seconds``: compose, generate, overlay, store;
enhance in serve_app/enhance/recipe.py). Tenants (serve_app/auth/tenant.py): images are stored as, and looked up
among, the current tenant's (serve_app/images.py), and scoped result-cache keys carry the tenant
(:func:`result_key`), so one tenant's cache hit is never another tenant's image.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipelines import encode
from pipelines.errors import InputError
from pipelines.request import GenerationLimits
from pipelines.styles import Style
from serve_app.auth.tenant import current_tenant
from serve_app.db import Image
from serve_app.images import ImageNotFound, ImageRecord, ImageRepository
from serve_app.jobs.base import PermanentJobError
from serve_app.observability.metrics import metrics, timed_stage
from serve_app.schemas import ComposedRequest, GeneratedImage, PartialRequest
from serve_app.store import AssetNotFound
from serve_app.themes.base import ResolvedTheme

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from pipelines.overlay.spec import OverlayLimits, OverlaySpec
    from serve_app.config import EnhancerConfig, MapsConfig
    from serve_app.enhance.stage import EnhancerStage
    from serve_app.jobs.dispatcher import ProgressFn
    from serve_app.moderation import Moderator
    from serve_app.overlays.stage import CampaignRendered, OverlayStage, Rendered
    from serve_app.overlays.store import OverlayStore
    from serve_app.remote.ledger import CostLedger
    from serve_app.remote.routing import Router
    from serve_app.services import Services
    from serve_app.subjects import SubjectStore
    from serve_app.themes.service import ThemeService

__all__ = ["ComposeFn", "Stages", "StreamBatchFn", "StreamFn", "result_key"]

logger = logging.getLogger("ray.serve.limner.jobs")

ComposeFn = Callable[[PartialRequest, Style | None], Awaitable[ComposedRequest]]
"""The composer: a partial request and a style in, a full generation request and its hash out."""
StreamFn = Callable[[ComposedRequest], AsyncIterator[dict[str, Any]]]
"""The generator: streams ``{"type": "progress", "step", "total"}`` then ``{"type": "image", "image"}``.
Closing the stream early cancels the generation at its next step."""
StreamBatchFn = Callable[[Sequence[ComposedRequest]], AsyncIterator[dict[str, Any]]]
RemoteBatchFn = Callable[[Sequence[ComposedRequest], str], AsyncIterator[dict[str, Any]]]
"""The remote stage: a family on the named paid API, streaming like :data:`StreamBatchFn`."""
"""The generator, for a family of requests queued together (one batch when they share a key): streams the
family's progress, then ``{"type": "image", "index", "image"}`` per request."""


def result_key(request_hash: str) -> str:
    """The result-cache key of ``request_hash`` in the current scope: the hash itself when unscoped (as before
    tenants), ``tenant:<length>:<tenant>:<hash>`` when scoped (the length keeps any tenant name unambiguous)."""
    tenant = current_tenant()
    return request_hash if tenant is None else f"tenant:{len(tenant)}:{tenant}:{request_hash}"


@dataclass(frozen=True)
class Stages:
    """The shared steps, over the services and the stage handles.

    Attributes:
        services: The backends (database, asset store, caches).
        compose_fn: The composer.
        stream_fn: The generator.
        result_ttl_s: Lifetime of a result-cache entry; None keeps it.
        limits: The generator's request bounds (``generator.limits``), for a kind's own checks.
        stream_batch_fn: The generator for a family of requests; without it a family runs one by one.
        themes: Resolves ``theme`` references; None: requests cannot name a theme.
        subjects: Records recurring subjects; None: ``subject_key`` is refused.
        moderator: The content policy; None: nothing is checked.
        overlay: The overlay stage (measure, render, sketch, fit): the Overlay deployment's handle, or an
            in-process :class:`~serve_app.overlays.stage.OverlayStage`; None: no overlays.
        overlays: Overlay and map rows.
        default_rule: The cell rule of templates that name none (``overlay.default_rule``).
        overlay_limits: Bounds on one overlay (``overlay`` section); the defaults when None.
        maps: How tactical maps generate their background (``maps`` section).
        map_base_pixels: The pixel budget a map's background is generated at.
        controlnet: The generator has a depth ControlNet.
        enhancer: The enhancer stage (upscale, face and structure pixel work): the Enhancer deployment's handle, or
            an in-process :class:`~serve_app.enhance.stage.EnhancerStage`; None: no enhancement.
        enhancer_config: The ``enhancer`` section (pixel limit, repaint size).
        native_size: The side repaints run at when ``enhancer.native_size`` is unset (the composer's width).
        router: Which backend draws a request (``remote.routing``); None: the local generator only.
        remote_batch_fn: The remote stage (the paid APIs), streaming like the generator for a family on a named
            backend; None: no paid API is configured.
        ledger: Records each paid image's cost (the budgets and the cost report).
    """

    services: Services
    compose_fn: ComposeFn
    stream_fn: StreamFn
    result_ttl_s: float | None = None
    limits: GenerationLimits = field(default_factory=GenerationLimits)
    stream_batch_fn: StreamBatchFn | None = None
    themes: ThemeService | None = None
    subjects: SubjectStore | None = None
    moderator: Moderator | None = None
    overlay: OverlayStage | None = None
    overlays: OverlayStore | None = None
    default_rule: str = "center"
    overlay_limits: OverlayLimits | None = None
    maps: MapsConfig | None = None
    map_base_pixels: int = 1024 * 1024
    controlnet: bool = False
    enhancer: EnhancerStage | None = None
    enhancer_config: EnhancerConfig | None = None
    native_size: int = 1024
    router: Router | None = None
    remote_batch_fn: RemoteBatchFn | None = None
    ledger: CostLedger | None = None
    max_upload_pixels: int = 8192 * 8192  # an uploaded image with more is a 422 (ingress.max_image_pixels)

    @property
    def images(self) -> ImageRepository:
        return ImageRepository(self.services.engine)

    # -- compose ---------------------------------------------------------------------------------------

    async def compose(self, partial: Any, style: Style | None = None) -> ComposedRequest:
        """The full generation request for ``partial`` (a :class:`PartialRequest`, or a figure's
        :class:`~serve_app.schemas.FigureCompose`); raises ``InputError`` naming a bad field."""
        with timed_stage("compose"):
            return await self.compose_fn(partial, style)

    async def resolve_theme(self, ref: str | None, variation: str | None, kind: str | None) -> ResolvedTheme | None:
        """The theme a request named, resolved for ``kind`` (None when it named none; ``kind`` None: any theme).

        Raises:
            InputError: A variation without a theme, an unknown variation, a theme not for ``kind``.
            ThemeNotFound: No such theme.
        """
        if ref is None:
            if variation is not None:
                raise InputError("variation", variation, "omitted unless a theme is given")
            return None
        if self.themes is None:
            raise InputError("theme", ref, "omitted: this service has no themes")
        return await self.themes.resolve(ref, variation=variation, kind=kind)

    def moderate(self, fields: Mapping[str, str], theme: ResolvedTheme | None, *, door: str = "http") -> None:
        """Applies the content policy (with the theme's own rules) to ``fields``; raises ``ModerationError``."""
        if self.moderator is None:
            return
        rules = theme.style.moderation if theme is not None else None
        allow = rules.allow if rules is not None else ()
        block = rules.block if rules is not None else ()
        self.moderator.check(fields, allow, block, door=door)

    # -- assets ----------------------------------------------------------------------------------------

    async def put_png(self, data: bytes, param: str) -> str:
        """Stores an uploaded image as PNG and returns its content hash (a job refers to images by hash).

        Raises:
            InputError: ``data`` is not an image (``param`` names the field it came in).
        """
        try:
            image = encode.decode(data, max_pixels=self.max_upload_pixels)
        except encode.ImageTooLarge as exc:  # a decompression bomb: refused from its header, never inflated
            raise InputError(param, str(exc), f"an image of at most {exc.max_pixels} pixels") from None
        except (OSError, ValueError) as exc:
            raise InputError(param, f"<{len(data)} bytes>", "an image PIL can read (PNG, JPEG, WebP)") from exc
        png = data if image.format == "PNG" else encode.encode(image, "png")
        return await self.services.store.put(png, "png")

    async def store_upload(self, data: bytes, param: str, *, kind: str) -> str:
        """Stores an image a client brought (any PIL-readable bytes) as an image row of ``kind``; the same bytes
        are the same row. Returns its id.

        Raises:
            InputError: ``data`` is not an image (``param`` names the field it came in).
        """
        sha = await self.put_png(data, param)
        png = await self.services.store.get(sha, "png")
        width, height = encode.decode(png).size
        return await self.store_image(png, width=width, height=height, kind=kind, request_hash=f"{kind}:{sha}")

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

    async def route(self, requested: str | None, request: Any) -> str:
        """The backend a request will run on, checked at acceptance (``backend`` of every generating body).

        Raises:
            InputError: An unknown backend, or a request the named paid API cannot honour.
            BackendBudgetError: The named paid API has spent its daily budget (402).
        """
        if self.router is None:
            if requested not in (None, "local"):
                raise InputError("backend", requested, "local (this service has no remote backends configured)")
            return "local"
        return await self.router.accept(requested, request)

    async def generate(self, composed: ComposedRequest, progress: ProgressFn) -> GeneratedImage:
        """Runs ``composed`` on its backend, reporting its steps; cancelling the caller cancels it."""
        if composed.backend != "local":
            (image,) = await self._generate_routed([composed], progress)
            return image
        result: GeneratedImage | None = None
        with timed_stage("generate"):
            async for event in self.stream_fn(composed):
                if event["type"] == "progress":
                    await progress(event["step"], event["total"])
                elif event["type"] == "image":
                    result = event["image"]
        if result is None:
            raise RuntimeError("the generator's stream ended without an image")
        return result

    async def generate_image(
        self,
        composed: ComposedRequest,
        progress: ProgressFn,
        *,
        cacheable: bool,
        record: Mapping[str, Any] | None = None,
    ) -> str:
        """Generates and stores one image, unless an identical request already made it; returns its id.

        An image this very request made before (an earlier attempt of the same job that died before finishing
        it, or, for a cacheable request, any earlier job) is the answer: the database is the durable cache.
        Cacheable requests also consult the result cache, and identical ones in flight share one generation.
        ``record`` adds image columns (``theme_id``, ``theme_version``, ``subject_key``, ``kind``).
        """
        earlier = await self._made_before(composed)
        if earlier is not None:
            return earlier
        if not cacheable:
            return await self._generate_and_record(composed, progress, record)
        results, ttl = self.services.results, self.result_ttl_s
        key = result_key(composed.request_hash)
        cached = await results.get(key)
        if isinstance(cached, str) and await self._still_there(cached):
            return cached
        value = await results.get_or_compute(
            key, lambda: self._generate_and_record(composed, progress, record), ttl_s=ttl
        )
        if not isinstance(value, str) or not await self._still_there(value):  # a stale entry: overwrite it
            value = await self._generate_and_record(composed, progress, record)
            await results.set(key, value, ttl_s=ttl)
        return value

    async def generate_family(
        self,
        family: Sequence[ComposedRequest],
        progress: ProgressFn,
        *,
        cacheable: bool,
        record: Mapping[str, Any] | None = None,
    ) -> list[str]:
        """Generates and stores a family of images (one job's variations) and returns their ids in order.

        Members an earlier attempt (or, when ``cacheable``, an earlier job) already made are reused; the rest
        are queued together, so the generator runs them as one batch when they share a batch key.

        Args:
            family: The composed requests.
            progress: Reports the family's denoising steps.
            cacheable: Seeded by the client: any earlier image of the same request answers it.
            record: Extra image columns for every stored image (``kind``, ``theme_id``, ``theme_version``,
                ``subject_key``, ``settings``).
        """
        ids: list[str | None] = []
        for composed in family:
            earlier = await self._made_before(composed)
            if earlier is not None:
                ids.append(earlier)
                continue
            cached = await self.services.results.get(result_key(composed.request_hash)) if cacheable else None
            ids.append(cached if isinstance(cached, str) and await self._still_there(cached) else None)
        missing = [i for i, found in enumerate(ids) if found is None]
        if missing:
            generated = await self.generate_many([family[i] for i in missing], progress)
            for i, image in zip(missing, generated, strict=True):
                ids[i] = await self._record_generated(family[i], image, record)
                if cacheable:
                    await self.services.results.set(result_key(family[i].request_hash), ids[i], ttl_s=self.result_ttl_s)
        return [str(i) for i in ids]

    async def generate_many(self, requests: Sequence[ComposedRequest], progress: ProgressFn) -> list[GeneratedImage]:
        """Generates ``requests`` (queued together, so those sharing a batch key run in one call) without storing
        them: repaint passes (hires tiles, face crops) whose results are blended into another image."""
        if requests and requests[0].backend != "local":  # a family shares its backend
            return await self._generate_routed(requests, progress)
        if self.stream_batch_fn is None or len(requests) == 1:
            return [await self.generate(c, progress) for c in requests]
        return await self._generate_batch(requests, progress)

    async def _generate_routed(self, family: Sequence[ComposedRequest], progress: ProgressFn) -> list[GeneratedImage]:
        """A family on a paid API, or under ``auto`` on the first backend that takes it: each one that fails is
        passed over for the next (a ``backend`` event says which ran and why). Every paid image's cost goes to
        the job, the ledger and (through the image) its row."""
        from dataclasses import replace

        from serve_app.jobs.context import current_attempt
        from serve_app.remote.routing import AUTO, LOCAL

        requested = family[0].backend
        if self.router is None or (requested != AUTO and self.remote_batch_fn is None):
            raise PermanentJobError(f"backend {requested!r} is not configured on this service", param="backend")
        attempt = current_attempt()
        candidates = await self.router.candidates(requested, family[0].request)
        failure: BaseException | None = None
        for candidate in candidates:
            if candidate.name == LOCAL:
                await self._note_backend(attempt, LOCAL, None, candidate.reason)
                return await self.generate_many([replace(c, backend=LOCAL) for c in family], progress)
            try:
                await self.router.require_budget(candidate.name)
                images = await self._remote_family(family, candidate.name, progress)
            except Exception as exc:
                cause = _remote_cause(exc)
                if cause is None or requested != AUTO:
                    raise _job_error(cause) if cause is not None else exc from exc
                logger.info("backend %s passed over: %s", candidate.name, cause.error_type)
                await self._note_backend(attempt, candidate.name, None, f"failed ({cause.error_type}): next")
                failure = cause
                continue
            costs = [i.cost_usd for i in images if i.cost_usd is not None]
            reason = candidate.reason if requested == AUTO else None
            await self._note_backend(attempt, candidate.name, sum(costs) if costs else None, reason)
            if self.ledger is not None:
                for cost in costs:
                    await self.ledger.record(
                        candidate.name,
                        cost,
                        job_id=None if attempt is None else attempt.job_id,
                        source="direct" if attempt is None else attempt.source,
                    )
            return images
        if failure is not None:
            raise _job_error(failure)
        from pipelines.remote.errors import BackendUnavailable

        raise BackendUnavailable(
            AUTO,
            "no backend can take this request now (the local generator is busy or loading, and no paid API "
            "can honour it, has budget left and a closed circuit)",
        )

    async def _remote_family(
        self, family: Sequence[ComposedRequest], backend: str, progress: ProgressFn
    ) -> list[GeneratedImage]:
        from dataclasses import replace

        assert self.remote_batch_fn is not None
        named = [replace(c, backend=backend) for c in family]
        results: dict[int, GeneratedImage] = {}
        with timed_stage("generate"):
            async for event in self.remote_batch_fn(named, backend):
                if event["type"] == "progress":
                    await progress(event["step"], event["total"])
                elif event["type"] == "image":
                    results[int(event["index"])] = event["image"]
        if len(results) != len(family):
            raise RuntimeError(f"backend {backend} returned {len(results)} of {len(family)} images")
        return [results[i] for i in range(len(family))]

    async def _note_backend(self, attempt: Any, backend: str, cost_usd: float | None, reason: str | None) -> None:
        if attempt is None:
            return
        try:
            await self.services.jobs.record_backend(attempt.job_id, backend, cost_usd=cost_usd, reason=reason)
        except Exception:  # the record is bookkeeping: never fail the image for it
            logger.exception("could not record backend %s for job %s", backend, attempt.job_id)

    async def _generate_batch(self, family: Sequence[ComposedRequest], progress: ProgressFn) -> list[GeneratedImage]:
        assert self.stream_batch_fn is not None
        results: dict[int, GeneratedImage] = {}
        with timed_stage("generate"):
            async for event in self.stream_batch_fn(family):
                if event["type"] == "progress":
                    await progress(event["step"], event["total"])
                elif event["type"] == "image":
                    results[int(event["index"])] = event["image"]
        if len(results) != len(family):
            raise RuntimeError(f"the generator returned {len(results)} of {len(family)} images")
        return [results[i] for i in range(len(family))]

    async def _record_generated(
        self, composed: ComposedRequest, generated: GeneratedImage, record: Mapping[str, Any] | None = None
    ) -> str:
        request = composed.request
        extra = dict(record or {})
        settings = {
            "request_hash": composed.request_hash,
            "strength": request.strength if request.mode == "img2img" else None,
            "steps": request.steps,
            "guidance": request.guidance,
            "scheduler": request.scheduler,
            "mode": request.mode,
            "batch_size": generated.batch_size,
            **extra.pop("settings", {}),
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
            backend=generated.backend,
            cost_usd=generated.cost_usd,
            **extra,
        )

    async def _generate_and_record(
        self, composed: ComposedRequest, progress: ProgressFn, record: Mapping[str, Any] | None = None
    ) -> str:
        return await self._record_generated(composed, await self.generate(composed, progress), record)

    async def _made_before(self, composed: ComposedRequest) -> str | None:
        """The id of a live, underived image this very request made, whose bytes are still stored."""
        earlier = await self.images.find_by_request_hash(composed.request_hash)
        if earlier is not None and await self.services.store.exists(earlier.content_hash, earlier.format):
            metrics().cache_lookup("result", "hit")  # the database is the durable result cache
            return str(earlier.id)
        return None

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
        theme_id: uuid.UUID | str | None = None,
        theme_version: int | None = None,
        subject_key: str | None = None,
        backend: str | None = None,
        cost_usd: float | None = None,
    ) -> str:
        """Stores PNG bytes (blob first, then the row) and returns the image id.

        A row with the same ``request_hash`` and parent is reused, so a re-run attempt adds no duplicate.
        """
        with timed_stage("store"):
            sha = await self.services.store.put(png, "png")
            await self.services.hot_assets.set(f"{sha}.png", png)  # its waiter reads it next
            record, created = await self.images.find_or_create(
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
                    theme_id=None if theme_id is None else uuid.UUID(str(theme_id)),
                    theme_version=theme_version,
                    subject_key=subject_key,
                    backend=backend,
                    cost_usd=cost_usd,
                )
            )
        if created:
            await self.services.hub.publish("image.created", f"image/{record.id}", image_event(record))
        return str(record.id)

    async def derive(
        self,
        parent_id: str,
        png: bytes,
        *,
        kind: str,
        settings: Mapping[str, Any] | None = None,
        request_hash: str | None = None,
        size: tuple[int, int] | None = None,
        theme: tuple[str, int] | None = None,
    ) -> str:
        """Stores ``png`` as a new version of ``parent_id`` (``parent_id`` set, ``version + 1``).

        The derived image keeps its parent's prompt, seed, model and theme; ``settings`` says what was done.
        ``size`` spares decoding ``png`` when the caller knows its width and height; ``theme`` (id, version)
        records another theme than the parent's (a restyle).

        Raises:
            PermanentJobError: The parent image does not exist.
        """
        try:
            parent = await self.images.get(parent_id)
        except ImageNotFound as exc:
            raise PermanentJobError(str(exc), error_type="not_found", param="image_id") from exc
        width, height = size if size is not None else encode.decode(png).size
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
            theme_id=parent.theme_id if theme is None else theme[0],
            theme_version=parent.theme_version if theme is None else theme[1],
            subject_key=parent.subject_key,
        )

    # -- overlay ---------------------------------------------------------------------------------------

    async def token_art(self, spec: OverlaySpec) -> dict[str, bytes]:
        """The stored bytes of every token's ``image_id`` (for drawing it round inside its disc).

        Raises:
            InputError: A token names an image that does not exist (``tokens[i].image_id``).
        """
        art: dict[str, bytes] = {}
        for i, token in enumerate(spec.tokens):
            if token.image_id is None or token.image_id in art:
                continue
            try:
                record = await self.images.get(token.image_id)
                art[token.image_id] = await self.services.store.get(record.content_hash, record.format)
            except (ImageNotFound, AssetNotFound, ValueError):
                raise InputError(f"tokens[{i}].image_id", token.image_id, "the id of a stored image") from None
        return art

    async def render_overlay(
        self, background_id: str, spec: OverlaySpec, *, kind: str, request_hash: str
    ) -> tuple[str, Rendered]:
        """Draws ``spec`` over the image ``background_id`` and stores the render as its derived version.

        ``request_hash`` identifies the render (the spec's canonical hash): the same spec on the same background
        is the same image row, so a retried job or a repeated ``PUT`` adds no duplicate.

        Raises:
            InputError: The spec breaks a rule (``param`` names the field).
            PermanentJobError: The background is gone.
        """
        if self.overlay is None:
            raise InputError("overlay", kind, "omitted: this service has no overlay stage")
        _, background = await self.read_image(background_id)
        art = await self.token_art(spec)
        with timed_stage("overlay"):
            rendered = await self.overlay.render(background, spec, art)
        render_id = await self.derive(
            background_id,
            rendered.png,
            kind=kind,
            settings={"overlay": request_hash},
            request_hash=request_hash,
            size=(rendered.width, rendered.height),
        )
        return render_id, rendered

    async def render_campaign(
        self, background_id: str, doc: dict[str, Any], *, request_hash: str
    ) -> tuple[str, CampaignRendered]:
        """Draws the campaign layers of ``doc`` over the image ``background_id`` and stores the render as its
        derived version (as :meth:`render_overlay`: the same spec on the same background is the same image row).

        Raises:
            InputError: The spec breaks a rule (``param`` names the field).
            PermanentJobError: The background is gone.
        """
        if self.overlay is None:
            raise InputError("overlay", "campaign_map", "omitted: this service has no overlay stage")
        _, background = await self.read_image(background_id)
        with timed_stage("overlay"):
            rendered = await self.overlay.campaign_render(background, doc)
        render_id = await self.derive(
            background_id,
            rendered.png,
            kind="campaign_map",
            settings={"overlay": request_hash},
            request_hash=request_hash,
            size=(rendered.width, rendered.height),
        )
        return render_id, rendered


def image_event(record: Any) -> dict[str, Any]:
    """The ``data`` of an ``image.created`` hub event: what the image is and where to fetch it."""
    prefix = f"/api/v2/images/{record.id}"
    return {
        "image_id": str(record.id),
        "kind": record.kind,
        "width": record.width,
        "height": record.height,
        "content_hash": record.content_hash,
        "parent_id": None if record.parent_id is None else str(record.parent_id),
        "version": record.version,
        "theme_id": None if record.theme_id is None else str(record.theme_id),
        "theme_version": record.theme_version,
        "subject_key": record.subject_key,
        "backend": record.backend,
        "links": {"self": prefix, "file": f"{prefix}/file"},
    }


def _remote_cause(exc: BaseException) -> Any:
    """The paid API's error inside ``exc`` (through Ray, a task error wrapping it), or None."""
    from pipelines.remote.errors import RemoteError

    for candidate in (exc, getattr(exc, "cause", None), exc.__cause__):
        if isinstance(candidate, RemoteError):
            return candidate
    return None


def _job_error(cause: Any) -> BaseException:
    """A paid API's failure as the job sees it: a permanent one (auth, budget, input) fails the job now with its
    type; a transient one (unavailable, timeout) is raised as is, for the job's next attempt."""
    if cause.permanent:
        return PermanentJobError(str(cause), error_type=cause.error_type, param=cause.param)
    return cause
