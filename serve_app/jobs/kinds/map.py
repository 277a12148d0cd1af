"""The ``tactical_map`` kind: a battle map from its structure.

At acceptance the spec (grid, terrain, lights, tokens, templates, paths) is checked and measured, the terrain
becomes a colour-coded layout sketch and a depth-like map at a model-friendly size with the map's aspect ratio,
and the prompt is composed with the theme. The run generates the background (image-to-image from the sketch,
conditioned on the depth map when the generator has a ControlNet), fits it exactly to ``cols * cell_px`` x
``rows * cell_px``, draws the overlay layers on it, and records the map: an overlay of kind ``tactical_map`` whose
id is decided at acceptance, so a retried job finds the map its first attempt recorded.

The pure parts live in pipelines/overlay/ (geometry, drawing, UVTT) and pipelines/prompts/maps.py (sketch, depth,
prompt, sizes). Route: serve_app/api/maps.py.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from pipelines.errors import InputError
from pipelines.prompts import request_hash
from pipelines.request import GenerationRequest
from serve_app.enhance.models import parse_steps
from serve_app.enhance.recipe import accept_steps, phase, run_steps
from serve_app.jobs.base import JobRecord, JobResult, PermanentJobError
from serve_app.jobs.kinds.base import Accepted, KindPayload
from serve_app.jobs.kinds.generate import generation_fields
from serve_app.overlays.models import OverlayBody
from serve_app.remote.routing import backend_hash
from serve_app.schemas import ComposedRequest, PartialRequest

if TYPE_CHECKING:
    from serve_app.jobs.dispatcher import ProgressFn
    from serve_app.jobs.stages import Stages

__all__ = [
    "MAPS_PREFIX",
    "TacticalMapKind",
    "TacticalMapPayload",
    "TacticalMapRequest",
    "art_size",
    "compose_art",
    "fit_background",
    "map_links",
    "start_from_layout",
]

MAPS_PREFIX = "/api/v2/images/maps"


def map_links(map_id: str) -> dict[str, str]:
    """The links of a map document: itself, its UVTT export and its editable overlay spec."""
    base = f"{MAPS_PREFIX}/{map_id}"
    return {
        "self": base,
        "uvtt": f"{base}/export.uvtt",
        "dd2vtt": f"{base}/export.dd2vtt",
        "overlay": f"{base}/overlay",
    }


@dataclass(frozen=True)
class TacticalMapRequest:
    """A tactical map request as a door hands it in.

    Attributes:
        overlay: The map's structure and overlay (grid, terrain, lights, tokens, templates, paths...).
        prompt: What the art shows; None: a description made from the terrain.
        negative_prompt: Added to the map's and the theme's negatives.
        theme: A theme reference (``name``, ``id``, optional ``@version``).
        variation: One of the theme's variations.
        seed: The background's seed; random when None (then the job is not answered from the cache).
        steps: Denoising steps; the composer's default when None.
        guidance: Guidance scale; the composer's default when None.
        format: Encoding the client asked for.
        door: Where it came in (for the moderation log).
        enhance: Steps run in order on the generated art (``upscale``, ``face-fix``, ``restyle``), each kept as
            a version, BEFORE the art is fitted to the grid and the overlay drawn: a repaint never smears the
            grid lines, and an upscale gives a large map more detail than the model's native size holds.
        backend: Where the art is drawn: ``local``, ``auto`` or a configured paid API; None: the default.
    """

    overlay: OverlayBody
    prompt: str | None = None
    negative_prompt: str | None = None
    theme: str | None = None
    variation: str | None = None
    seed: int | None = None
    steps: int | None = None
    guidance: float | None = None
    format: str = "png"
    door: str = "http"
    enhance: tuple[Any, ...] = ()
    backend: str | None = None


class TacticalMapPayload(KindPayload):
    """What a tactical map job runs, decided at acceptance."""

    map_id: str = Field(..., description="The map's id (its overlay id), decided at acceptance.")
    overlay: dict[str, Any] = Field(..., description="The overlay spec as accepted (JSON).")
    generation: dict[str, Any] = Field(..., description="The composed GenerationRequest, images aside.")
    init_image: str = Field(..., description="Content hash of the layout sketch (the img2img start).")
    control_image: str | None = Field(None, description="Content hash of the depth-like map (ControlNet).")
    cacheable: bool = Field(..., description="Seeded by the client: an earlier identical background answers it.")
    size_px: list[int] = Field(..., description="The map's exact size: cols * cell_px, rows * cell_px.")
    theme_id: str | None = None
    theme: dict[str, Any] | None = None
    warnings: list[str] = Field(default_factory=list)
    enhance: list[dict[str, Any]] = Field(default_factory=list, description="Steps on the art, as accepted.")


class TacticalMapKind:
    """One battle map per job: background art, the overlaid render, the geometry, the map record."""

    name: ClassVar[str] = "tactical_map"

    async def accept(self, request: TacticalMapRequest, stages: Stages) -> Accepted:
        from pipelines.overlay.grid import GridGeometry
        from pipelines.prompts import budget_warnings
        from pipelines.prompts.maps import tactical_prompt

        if stages.overlay is None or stages.overlays is None:
            raise InputError("kind", self.name, "omitted: this service has no overlay stage")
        theme = await stages.resolve_theme(request.theme, request.variation, self.name)
        style = theme.style if theme is not None else None
        spec = request.overlay.to_spec(style.palette if style is not None else (), stages.default_rule)
        await stages.overlay.measure(spec)  # every rule checked, every waypoint reachable: a 422 now, not later
        stages.moderate(_texts(request), theme, door=request.door)
        geo = GridGeometry(spec.grid)
        width_px, height_px = geo.width_px, geo.height_px
        gen_w, gen_h = art_size(stages, width_px, height_px)
        subject, negative = tactical_prompt(spec, request.prompt)
        cacheable = request.seed is not None
        composed = await compose_art(stages, request, subject, negative, (gen_w, gen_h), theme)
        sketch = await stages.overlay.sketch(spec, gen_w, gen_h)
        generation, init_sha = await start_from_layout(stages, composed, sketch.layout_png)
        maps = stages.maps
        control_sha = None
        if stages.controlnet and (maps is None or maps.depth_control):
            control_sha = await stages.put_png(sketch.depth_png, "depth")
            scale = maps.control_scale if maps is not None else 0.6
            generation = replace(
                generation, control_image=await stages.load_png(control_sha, "depth"), control_scale=scale
            )
        generation.check(stages.limits)
        steps = await accept_steps(request.enhance, stages, size=(gen_w, gen_h))
        backend = await stages.route(request.backend, generation)
        overlay_json = request.overlay.to_json()
        payload = TacticalMapPayload(
            backend=backend,
            request_hash=backend_hash(request_hash(generation, init_sha, control_sha), backend),
            format=request.format,
            map_id=str(uuid.uuid4()),
            overlay=overlay_json,
            generation=generation_fields(generation),
            init_image=init_sha,
            control_image=control_sha,
            cacheable=cacheable,
            size_px=[width_px, height_px],
            theme_id=None if theme is None else str(theme.id),
            theme=None if theme is None else theme.record(),
            warnings=budget_warnings({"prompt": generation.prompt, "negative_prompt": generation.negative_prompt}),
            enhance=steps.steps,
        )
        identity = {
            "kind": self.name,
            "overlay": overlay_json,
            **{k: v for k, v in _identity_fields(request).items() if v is not None},
        }
        if request.enhance:
            identity["enhance"] = steps.steps
        if request.backend is not None:
            identity["backend"] = request.backend
        return Accepted(payload, identity)

    async def run(self, job: JobRecord, stages: Stages, progress: ProgressFn) -> JobResult:
        if stages.overlays is None:
            raise PermanentJobError("this service has no overlay store", param="kind")
        payload = TacticalMapPayload.of(job)
        fields = dict(payload.generation)
        fields["init_image"] = await stages.load_png(payload.init_image, "layout")
        if payload.control_image is not None:
            fields["control_image"] = await stages.load_png(payload.control_image, "depth")
        request = GenerationRequest(**fields)
        request.check(stages.limits)
        assert payload.request_hash is not None
        composed = ComposedRequest(request, payload.request_hash, uuid.uuid4().hex, backend=payload.backend)
        record: dict[str, Any] = {"kind": "tactical_map_art"}
        if payload.theme is not None:
            record.update(theme_id=payload.theme_id, theme_version=payload.theme["version"])
        enhance = parse_steps(payload.enhance)
        phases = 1 + len(enhance)
        art_id = await stages.generate_image(
            composed, phase(progress, 0, phases), cacheable=payload.cacheable, record=record
        )
        enhanced = await run_steps(art_id, enhance, stages, progress, first_phase=1, phases=phases)
        source_id = enhanced[-1].image_id if enhanced else art_id

        width, height = payload.size_px
        background_id = await fit_background(stages, source_id, (width, height), payload.request_hash, self.name)
        body = OverlayBody.model_validate(payload.overlay)
        palette = ()
        if payload.theme is not None and stages.themes is not None:
            palette = await _theme_palette(stages, payload)
        spec = body.to_spec(palette, stages.default_rule)
        from serve_app.overlays.service import geometry_json, render_hash

        digest = render_hash(background_id, payload.overlay)
        render_id, rendered = await stages.render_overlay(background_id, spec, kind="tactical_map", request_hash=digest)
        geometry = geometry_json(rendered.geometry, spec)
        map_record = await stages.overlays.create(
            overlay_id=payload.map_id,
            kind="tactical_map",
            image_id=background_id,
            spec=payload.overlay,
            geometry=geometry,
            result_image_id=render_id,
            job_id=job.id,
        )
        map_id = str(map_record.id)
        data: dict[str, Any] = {
            "map_id": map_id,
            "links": map_links(map_id),
            "background_image_id": background_id,
            "render_image_id": render_id,
            "art_image_id": art_id,
            "size_px": [width, height],
            "generated_size": [request.width, request.height],
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt,
            "seed": request.seed,
            "theme": payload.theme,
            "geometry": geometry,
            "warnings": payload.warnings,
        }
        if enhanced:
            data["enhance"] = [d.data for d in enhanced]
        versions = tuple(d.image_id for d in enhanced)
        return JobResult(images=(render_id, background_id, art_id, *versions), data=data)

    def referenced_assets(self, payload: Mapping[str, Any]) -> set[str]:
        parsed = TacticalMapPayload.model_validate(payload)
        return {sha for sha in (parsed.init_image, parsed.control_image) if sha is not None}


def _texts(request: TacticalMapRequest) -> dict[str, str]:
    """Every free text the map shows or is made from, by field (what moderation reads)."""
    body = request.overlay
    texts = {"prompt": request.prompt or ""}
    texts.update({f"tokens[{i}].label": t.label or "" for i, t in enumerate(body.tokens)})
    texts.update({f"templates[{i}].label": t.label or "" for i, t in enumerate(body.templates)})
    texts.update({f"paths[{i}].label": p.label or "" for i, p in enumerate(body.paths)})
    texts.update({f"markers[{i}].text": m.text or "" for i, m in enumerate(body.markers)})
    return {k: v for k, v in texts.items() if v}


def _identity_fields(request: TacticalMapRequest) -> dict[str, Any]:
    return {
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "theme": request.theme,
        "variation": request.variation,
        "seed": request.seed,
        "steps": request.steps,
        "guidance": request.guidance,
        "format": request.format,
    }


async def _theme_palette(stages: Stages, payload: TacticalMapPayload) -> tuple[str, ...]:
    assert payload.theme is not None and stages.themes is not None
    ref = f"{payload.theme_id}@{payload.theme['version']}"
    variation = payload.theme.get("variation")
    theme = await stages.themes.resolve(ref, variation=variation)
    return tuple(theme.style.palette)


def art_size(stages: Stages, width_px: int, height_px: int) -> tuple[int, int]:
    """The size a map's art is generated at: about ``stages.map_base_pixels`` with the map's aspect ratio, in
    multiples the model takes (64 at SDXL's sizes, 8 for the tiny CPU model), within the generation limits."""
    from pipelines.prompts.maps import model_size

    multiple = 64 if stages.map_base_pixels >= 512 * 512 else 8
    gen_w, gen_h = model_size(width_px, height_px, base_pixels=stages.map_base_pixels, multiple=multiple)
    return stages.limits.fit(gen_w, gen_h)


async def compose_art(
    stages: Stages, request: Any, subject: str, negative: str, size: tuple[int, int], theme: Any
) -> GenerationRequest:
    """A map's art request composed with its theme, the request's own negatives added, and the composed prompt
    moderated. ``request`` is a map kind's request (``negative_prompt``, ``seed``, ``steps``, ``guidance``,
    ``door``); without a seed the theme's seed base is used, else a random one."""
    style = theme.style if theme is not None else None
    if request.negative_prompt:
        negative = f"{negative}, {request.negative_prompt}"
    seed = request.seed
    if seed is None:
        seed_base = style.consistency.seed_base if style is not None else None
        seed = seed_base if seed_base is not None else secrets.randbelow(2**32)
    partial = PartialRequest(
        prompt=subject,
        negative_prompt=negative,
        width=size[0],
        height=size[1],
        steps=request.steps,
        guidance=request.guidance,
        seed=seed,
    )
    composed = await stages.compose(partial, style)
    stages.moderate({"prompt": composed.request.prompt}, theme, door=request.door)
    return composed.request


async def fit_background(
    stages: Stages, source_id: str, size: tuple[int, int], request_hash: str | None, kind: str
) -> str:
    """The art scaled to cover and centre-cropped to exactly the map's ``size``, stored as a derived version of it
    (kind ``{kind}_background``; a retried job finds the row its first attempt stored). Returns its id."""
    assert stages.overlay is not None
    width, height = size
    _, art = await stages.read_image(source_id)
    return await stages.derive(
        source_id,
        await stages.overlay.fit(art, width, height),
        kind=f"{kind}_background",
        settings={"fit": [width, height]},
        request_hash=f"{request_hash}:fit:{width}x{height}",
    )


async def start_from_layout(stages: Stages, request: GenerationRequest, layout_png: bytes) -> tuple[Any, str]:
    """``request`` as image-to-image from a map's layout sketch (stored; its hash is the job's reference to it) at
    ``maps.layout_strength``; returns the request and the sketch's content hash."""
    init_sha = await stages.put_png(layout_png, "layout")
    strength = stages.maps.layout_strength if stages.maps is not None else 0.9
    generation = replace(
        request, mode="img2img", strength=strength, init_image=await stages.load_png(init_sha, "layout")
    )
    return generation, init_sha
