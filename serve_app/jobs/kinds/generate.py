"""The ``generate`` kind: one image from a prompt (text-to-image, or image-to-image / ControlNet from images
the request brought), answered from the result cache when the same seeded request was made before.

``count`` > 1 makes a family of images in the one job: seeds ``seed``, ``seed + 1``, ... of the same composed
request, queued together so the generator runs them as one batch (the OpenAI API's ``n``). With ``count`` 1 the
payload, its hash and the job are exactly what they were before families existed.

Its route is serve_app/api/generate.py (``POST /api/v2/images/generate`` and ``POST /api/v2/images/jobs``);
the Experimance bridge submits the same request type with its style and conditioning images.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from pipelines.errors import InputError
from pipelines.prompts import request_hash
from pipelines.request import GenerationRequest
from pipelines.styles import Style
from serve_app.enhance.models import parse_steps
from serve_app.enhance.recipe import accept_steps, phase, run_steps
from serve_app.jobs.base import JobRecord, JobResult
from serve_app.jobs.kinds.base import Accepted, KindPayload
from serve_app.remote.routing import backend_hash
from serve_app.schemas import ComposedRequest, PartialRequest

if TYPE_CHECKING:
    from serve_app.jobs.dispatcher import ProgressFn
    from serve_app.jobs.stages import Stages

__all__ = ["MAX_COUNT", "GenerateKind", "GeneratePayload", "GenerateRequest", "family_seed", "generation_fields"]

MAX_COUNT = 10
"""Most images of one generate job (OpenAI's ``n`` allows 1 to 10)."""


@dataclass(frozen=True)
class GenerateRequest:
    """A generate request as a door hands it in (plain data: it crosses the bridge → ingress handle).

    Attributes:
        partial: What the user asked for; omitted fields get the composer's defaults.
        format: Encoding the client wants back.
        style: A resolved style to apply, or None.
        init_png: An image-to-image start as PNG (or any PIL-readable bytes), or None.
        strength: img2img strength with ``init_png`` (0.75 when None).
        control_png: ControlNet conditioning (a depth map), or None.
        control_scale: ControlNet conditioning scale with ``control_png``.
        theme: A theme reference (``name``, ``id``, optional ``@version``), resolved at acceptance; not with
            ``style``.
        variation: One of the theme's variations.
        door: Where it came in (``http``, ``zmq``), for the moderation log.
        enhance: Steps run in order after generation (``face-fix``, ``upscale``, ``restyle``), each kept as its
            own version.
        backend: ``local``, ``auto`` or a configured paid API; None: ``remote.routing.default``.
        count: Images to make, 1 to :data:`MAX_COUNT`: a family of consecutive seeds (see :func:`family_seed`).
    """

    partial: PartialRequest
    format: str = "png"
    style: Style | None = None
    init_png: bytes | None = field(default=None, repr=False)
    strength: float | None = None
    control_png: bytes | None = field(default=None, repr=False)
    control_scale: float = 1.0
    theme: str | None = None
    variation: str | None = None
    door: str = "http"
    enhance: tuple[Any, ...] = ()
    backend: str | None = None
    count: int = 1


class GeneratePayload(KindPayload):
    """What a generate job runs, decided at acceptance."""

    request: dict[str, Any] = Field(..., description="The partial request as accepted, its seed filled in.")
    cacheable: bool = Field(..., description="Seeded by the client: a remembered image answers it.")
    style: str | None = Field(None, description="Name of the style applied at acceptance.")
    generation: dict[str, Any] = Field(..., description="The composed GenerationRequest, images aside.")
    init_image: str | None = Field(None, description="Content hash of the img2img start image.")
    control_image: str | None = Field(None, description="Content hash of the ControlNet conditioning image.")
    theme_id: str | None = Field(None, description="Id of the theme applied (see ``theme`` for its version).")
    theme: dict[str, Any] | None = Field(None, description="The theme used: id, name, version, variation, chain.")
    enhance: list[dict[str, Any]] = Field(default_factory=list, description="Steps after generation, as accepted.")
    count: int = Field(1, description="Images in the family (seeds seed, seed + 1, ...).")
    hashes: list[str] = Field(
        default_factory=list, description="With count > 1: the request hash of each image (the first is request_hash)."
    )

    async def composed(self, stages: Stages) -> ComposedRequest:
        """The generation request this payload describes, with its images loaded from the store."""
        fields = dict(self.generation)
        if self.init_image is not None:
            fields["init_image"] = await stages.load_png(self.init_image, "init_image")
        if self.control_image is not None:
            fields["control_image"] = await stages.load_png(self.control_image, "control_image")
        request = GenerationRequest(**fields)
        request.check(stages.limits)
        assert self.request_hash is not None  # always set by accept()
        return ComposedRequest(request, self.request_hash, uuid.uuid4().hex, backend=self.backend)


class GenerateKind:
    """One generated image per job."""

    name: ClassVar[str] = "generate"

    async def accept(self, request: GenerateRequest, stages: Stages) -> Accepted:
        """Composes the request once: an unseeded one gets its seed here, so a retry draws the same image, and
        is marked not cacheable (it asks for a new image, not a remembered one). Images are stored first; the
        job refers to them by hash."""
        if not 1 <= request.count <= MAX_COUNT:
            raise InputError("count", request.count, f"1 to {MAX_COUNT}")
        given = {k: v for k, v in asdict(request.partial).items() if v is not None}
        identity: dict[str, Any] = {"request": dict(given), "format": request.format}
        if request.count > 1:
            identity["count"] = request.count
        if request.theme is not None:
            identity.update(theme=request.theme, variation=request.variation)
        if request.theme is not None and request.style is not None:
            raise InputError("theme", request.theme, "omitted when a style is given")
        theme = await stages.resolve_theme(request.theme, request.variation, self.name)
        style = theme.style if theme is not None else request.style
        stages.moderate({"prompt": request.partial.prompt}, theme, door=request.door)
        cacheable = request.partial.seed is not None
        if not cacheable:
            seed_base = style.consistency.seed_base if style is not None else None
            given["seed"] = seed_base if seed_base is not None else secrets.randbelow(2**32)
        composed = await stages.compose(PartialRequest(**given), style)
        stages.moderate({"prompt": composed.request.prompt}, theme, door=request.door)  # with the theme's words
        generation, init_sha, control_sha = composed.request, None, None
        init_png, strength = request.init_png, request.strength
        reference = style.consistency if style is not None else None
        if init_png is None and reference is not None and reference.reference_image is not None:
            init_sha = reference.reference_image  # the theme's reference image starts every image
            strength = strength or reference.reference_strength
        elif init_png is not None:
            init_sha = await stages.put_png(init_png, "init_image")
        if init_sha is not None:
            start = await stages.load_png(init_sha, "init_image")
            generation = replace(generation, mode="img2img", strength=strength or 0.75, init_image=start)
        if request.control_png is not None:
            control_sha = await stages.put_png(request.control_png, "control_image")
            control = await stages.load_png(control_sha, "control_image")
            generation = replace(generation, control_image=control, control_scale=request.control_scale)
        if generation is not composed.request:
            generation.check(stages.limits)
        steps = await accept_steps(request.enhance, stages, size=(generation.width, generation.height))
        if request.enhance:
            identity["enhance"] = steps.steps
        backend = await stages.route(request.backend, generation)
        if request.backend is not None:
            identity["backend"] = request.backend
        hashes = [
            backend_hash(
                request_hash(replace(generation, seed=family_seed(generation.seed, i)), init_sha, control_sha), backend
            )
            for i in range(request.count)
        ]
        payload = GeneratePayload(
            backend=backend,
            request=given,
            cacheable=cacheable,
            format=request.format,
            style=None if style is None else style.name,
            theme_id=None if theme is None else str(theme.id),
            theme=None if theme is None else theme.record(),
            request_hash=hashes[0],
            generation=generation_fields(generation),
            init_image=init_sha,
            control_image=control_sha,
            enhance=steps.steps,
            count=request.count,
            hashes=hashes if request.count > 1 else [],
        )
        return Accepted(payload, identity)

    async def run(self, job: JobRecord, stages: Stages, progress: ProgressFn) -> JobResult:
        payload = GeneratePayload.of(job)
        composed = await payload.composed(stages)
        record = (
            {} if payload.theme is None else {"theme_id": payload.theme_id, "theme_version": payload.theme["version"]}
        )
        if payload.count > 1:
            return await self._run_family(payload, composed, stages, progress, record)
        phases = 1 + len(payload.enhance)
        image_id = await stages.generate_image(
            composed, phase(progress, 0, phases), cacheable=payload.cacheable, record=record
        )
        data: dict[str, Any] = {"request_hash": payload.request_hash, "seed": composed.request.seed}
        if payload.theme is not None:
            data["theme"] = payload.theme
        if not payload.enhance:
            return JobResult(images=(image_id,), data=data)
        done = await run_steps(image_id, parse_steps(payload.enhance), stages, progress, first_phase=1, phases=phases)
        versions = [image_id, *(d.image_id for d in done)]
        data["versions"] = versions
        data["enhance"] = [d.data for d in done]
        return JobResult(images=(versions[-1], *versions[:-1]), data=data)

    async def _run_family(
        self,
        payload: GeneratePayload,
        composed: ComposedRequest,
        stages: Stages,
        progress: ProgressFn,
        record: Mapping[str, Any],
    ) -> JobResult:
        """``count`` images queued together (one batch when they share a batch key), then each one's enhance
        steps. ``images`` holds the final image of each member in seed order, then the earlier versions."""
        base = composed.request
        family = [
            ComposedRequest(
                replace(base, seed=family_seed(base.seed, i)), digest, uuid.uuid4().hex, backend=composed.backend
            )
            for i, digest in enumerate(payload.hashes)
        ]
        steps = parse_steps(payload.enhance)
        phases = 1 + len(steps) * len(family)
        ids = await stages.generate_family(
            family, phase(progress, 0, phases), cacheable=payload.cacheable, record=record
        )
        members: list[dict[str, Any]] = []
        finals: list[str] = []
        derived: list[str] = []
        for n, (image_id, member) in enumerate(zip(ids, family, strict=True)):
            entry: dict[str, Any] = {
                "seed": member.request.seed,
                "image_id": image_id,
                "request_hash": member.request_hash,
            }
            if steps:
                done = await run_steps(image_id, steps, stages, progress, first_phase=1 + n * len(steps), phases=phases)
                entry["versions"] = [image_id, *(d.image_id for d in done)]
                entry["enhance"] = [d.data for d in done]
                entry["image_id"] = done[-1].image_id
                derived.extend(entry["versions"][:-1])
            finals.append(entry["image_id"])
            members.append(entry)
        data: dict[str, Any] = {
            "request_hash": payload.request_hash,
            "seed": base.seed,
            "seeds": [m["seed"] for m in members],
            "family": members,
        }
        if payload.theme is not None:
            data["theme"] = payload.theme
        return JobResult(images=(*finals, *derived), data=data)

    def referenced_assets(self, payload: Mapping[str, Any]) -> set[str]:
        parsed = GeneratePayload.model_validate(payload)
        return {sha for sha in (parsed.init_image, parsed.control_image) if sha is not None}


def generation_fields(request: GenerationRequest) -> dict[str, Any]:
    """The JSON form of a composed request; its images travel by content hash beside it."""
    return {f.name: getattr(request, f.name) for f in fields(request) if f.name not in ("init_image", "control_image")}


def family_seed(seed: int, index: int) -> int:
    """The seed of member ``index`` of a family whose first seed is ``seed`` (consecutive, below 2**63)."""
    return (seed + index) % 2**63
