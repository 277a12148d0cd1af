"""The ``campaign_map`` kind: a world map from its data.

At acceptance the spec (canvas, scale, regions, POIs, territories, routes, party, resources) is parsed and
checked (a 422 names the field), its names go through moderation, the regions become a terrain layout sketch at a
model-friendly size with the canvas's aspect ratio, and the prompt is composed with the theme. The run generates
the art (image-to-image from the sketch), fits it exactly to the canvas, draws the campaign layers on it, and
records the map: an overlay of kind ``campaign_map`` whose id is decided at acceptance, so a retried job finds
the map its first attempt recorded. ``PUT /maps/{id}/overlay`` re-draws the layers on the same art later.

The pure parts live in pipelines/overlay/campaign*.py and pipelines/prompts/campaign.py. Routes:
serve_app/api/campaign.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from pipelines.errors import InputError
from pipelines.prompts import request_hash
from pipelines.request import GenerationRequest
from serve_app.jobs.base import JobRecord, JobResult, PermanentJobError
from serve_app.jobs.kinds.base import Accepted, KindPayload
from serve_app.jobs.kinds.generate import generation_fields
from serve_app.jobs.kinds.map import MAPS_PREFIX, art_size, compose_art, fit_background, start_from_layout
from serve_app.remote.routing import backend_hash
from serve_app.schemas import ComposedRequest

if TYPE_CHECKING:
    from serve_app.jobs.dispatcher import ProgressFn
    from serve_app.jobs.stages import Stages

__all__ = ["CampaignMapKind", "CampaignMapPayload", "CampaignMapRequest", "campaign_links", "campaign_render_hash"]


def campaign_links(map_id: str) -> dict[str, str]:
    """The links of a campaign map document: itself, its GeoJSON export and its editable overlay spec."""
    base = f"{MAPS_PREFIX}/{map_id}"
    return {"self": base, "geojson": f"{base}/export.geojson", "overlay": f"{base}/overlay"}


def campaign_render_hash(background_id: str, doc: Mapping[str, Any]) -> str:
    """The request hash of a campaign render: what was drawn, on what."""
    from pipelines.canonical import canonical_hash

    return "cm:" + canonical_hash({"background": str(background_id), "campaign": dict(doc)})


@dataclass(frozen=True)
class CampaignMapRequest:
    """A campaign map request as a door hands it in.

    Attributes:
        campaign: The map's data, as the JSON contract (pipelines/overlay/campaign.py).
        prompt: What the art shows; None: a description made from the terrain.
        negative_prompt: Added to the map's and the theme's negatives.
        theme: A theme reference (``name``, ``id``, optional ``@version``).
        variation: One of the theme's variations.
        seed: The art's seed; random when None (then the job is not answered from the cache).
        steps: Denoising steps; the composer's default when None.
        guidance: Guidance scale; the composer's default when None.
        format: Encoding the client asked for.
        door: Where it came in (for the moderation log).
        backend: Where the art is drawn: ``local``, ``auto`` or a configured paid API; None: the default.
    """

    campaign: Mapping[str, Any]
    prompt: str | None = None
    negative_prompt: str | None = None
    theme: str | None = None
    variation: str | None = None
    seed: int | None = None
    steps: int | None = None
    guidance: float | None = None
    format: str = "png"
    door: str = "http"
    backend: str | None = None


class CampaignMapPayload(KindPayload):
    """What a campaign map job runs, decided at acceptance."""

    map_id: str = Field(..., description="The map's id (its overlay id), decided at acceptance.")
    campaign: dict[str, Any] = Field(..., description="The campaign spec as accepted (JSON).")
    generation: dict[str, Any] = Field(..., description="The composed GenerationRequest, images aside.")
    init_image: str = Field(..., description="Content hash of the terrain layout sketch (the img2img start).")
    cacheable: bool = Field(..., description="Seeded by the client: an earlier identical art answers it.")
    size_px: list[int] = Field(..., description="The canvas: width, height.")
    theme_id: str | None = None
    theme: dict[str, Any] | None = None
    warnings: list[str] = Field(default_factory=list)


class CampaignMapKind:
    """One world map per job: the art, the render with the campaign layers, the measured data, the map record."""

    name: ClassVar[str] = "campaign_map"

    async def accept(self, request: CampaignMapRequest, stages: Stages) -> Accepted:
        from pipelines.overlay.campaign import parse_campaign, spec_to_json
        from pipelines.prompts import budget_warnings
        from pipelines.prompts.campaign import campaign_prompt

        if stages.overlay is None or stages.overlays is None:
            raise InputError("kind", self.name, "omitted: this service has no overlay stage")
        spec = parse_campaign(request.campaign)  # every rule checked: a 422 now, not later
        theme = await stages.resolve_theme(request.theme, request.variation, self.name)
        stages.moderate(_texts(spec, request.prompt), theme, door=request.door)
        gen_w, gen_h = art_size(stages, spec.width, spec.height)
        subject, negative = campaign_prompt(spec, request.prompt)
        cacheable = request.seed is not None
        composed = await compose_art(stages, request, subject, negative, (gen_w, gen_h), theme)
        campaign = spec_to_json(spec)
        sketch = await stages.overlay.campaign_sketch(campaign, gen_w, gen_h)
        generation, init_sha = await start_from_layout(stages, composed, sketch)
        generation.check(stages.limits)
        backend = await stages.route(request.backend, generation)
        payload = CampaignMapPayload(
            backend=backend,
            request_hash=backend_hash(request_hash(generation, init_sha, None), backend),
            format=request.format,
            map_id=str(uuid.uuid4()),
            campaign=campaign,
            generation=generation_fields(generation),
            init_image=init_sha,
            cacheable=cacheable,
            size_px=[spec.width, spec.height],
            theme_id=None if theme is None else str(theme.id),
            theme=None if theme is None else theme.record(),
            warnings=budget_warnings({"prompt": generation.prompt, "negative_prompt": generation.negative_prompt}),
        )
        identity: dict[str, Any] = {"kind": self.name, "campaign": campaign}
        identity.update(
            {
                k: v
                for k, v in {
                    "prompt": request.prompt,
                    "negative_prompt": request.negative_prompt,
                    "theme": request.theme,
                    "variation": request.variation,
                    "seed": request.seed,
                    "steps": request.steps,
                    "guidance": request.guidance,
                    "format": request.format,
                    "backend": request.backend,
                }.items()
                if v is not None
            }
        )
        return Accepted(payload, identity)

    async def run(self, job: JobRecord, stages: Stages, progress: ProgressFn) -> JobResult:
        if stages.overlays is None or stages.overlay is None:
            raise PermanentJobError("this service has no overlay store", param="kind")
        payload = CampaignMapPayload.of(job)
        fields = dict(payload.generation)
        fields["init_image"] = await stages.load_png(payload.init_image, "layout")
        request = GenerationRequest(**fields)
        request.check(stages.limits)
        assert payload.request_hash is not None
        composed = ComposedRequest(request, payload.request_hash, uuid.uuid4().hex, backend=payload.backend)
        record: dict[str, Any] = {"kind": "campaign_map_art"}
        if payload.theme is not None:
            record.update(theme_id=payload.theme_id, theme_version=payload.theme["version"])
        art_id = await stages.generate_image(composed, progress, cacheable=payload.cacheable, record=record)
        width, height = payload.size_px
        background_id = await fit_background(stages, art_id, (width, height), payload.request_hash, self.name)
        digest = campaign_render_hash(background_id, payload.campaign)
        render_id, rendered = await stages.render_campaign(background_id, payload.campaign, request_hash=digest)
        map_record = await stages.overlays.create(
            overlay_id=payload.map_id,
            kind=self.name,
            image_id=background_id,
            spec=payload.campaign,
            geometry=rendered.data,
            result_image_id=render_id,
            job_id=job.id,
        )
        map_id = str(map_record.id)
        data: dict[str, Any] = {
            "map_id": map_id,
            "links": campaign_links(map_id),
            "background_image_id": background_id,
            "render_image_id": render_id,
            "art_image_id": art_id,
            "size_px": [width, height],
            "generated_size": [request.width, request.height],
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt,
            "seed": request.seed,
            "theme": payload.theme,
            "data": rendered.data,
            "warnings": payload.warnings,
        }
        return JobResult(images=(render_id, background_id, art_id), data=data)

    def referenced_assets(self, payload: Mapping[str, Any]) -> set[str]:
        return {CampaignMapPayload.model_validate(payload).init_image}


def _texts(spec: Any, prompt: str | None) -> dict[str, str]:
    """Every free text the map shows or is made from, by field (what moderation reads)."""
    texts = {"prompt": prompt or "", "title": spec.title or ""}
    texts.update({f"regions[{i}].name": r.name for i, r in enumerate(spec.regions)})
    texts.update({f"pois[{i}].name": p.name for i, p in enumerate(spec.pois)})
    texts.update({f"territories[{i}].name": t.name for i, t in enumerate(spec.territories)})
    texts.update({f"routes[{i}].name": r.name or "" for i, r in enumerate(spec.routes)})
    texts.update({f"resources[{i}].label": r.label or "" for i, r in enumerate(spec.resources)})
    if spec.party is not None:
        texts["party.name"] = spec.party.name
    return {k: v for k, v in texts.items() if v}
