"""HTTP models of the overlay and map routes. The spec itself is :class:`serve_app.overlays.models.OverlayBody`
(shared with the rows and the map kind); these add the tactical-map request and the answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from serve_app.enhance.models import EnhanceStep
from serve_app.jobs.kinds.map import TacticalMapRequest
from serve_app.overlays.models import OverlayBody

__all__ = [
    "GeometryResponse",
    "MapResponse",
    "OverlayResponse",
    "RenderSettings",
    "TacticalMapBody",
    "UvttImportResponse",
]


class GeometryResponse(BaseModel):
    """What a spec covers, costs and reaches. Cells are ``[col, row]``; on hex grids each cell list has an
    ``*_axial`` twin of ``[q, r]`` (and movement entries an ``axial``)."""

    tokens: list[dict[str, Any]] = Field(..., description="`{id, cells, center: {x, y}, reach?}`")
    templates: list[dict[str, Any]] = Field(..., description="`{id, cells, count, rule}`")
    paths: list[dict[str, Any]] = Field(..., description="`{id, cost_ft, cells, step_costs_ft}`")
    movement: list[dict[str, Any]] = Field(..., description="`{id, speed_ft, reachable: [{cell, cost_ft, band?}]}`")


class OverlayResponse(BaseModel):
    """An overlay (or a map's overlay) at its current version."""

    id: str
    kind: str
    version: int
    image_id: str | None = Field(..., description="The render of this version (a derived version of the background).")
    background_image_id: str
    spec: dict[str, Any]
    geometry: GeometryResponse
    created_at: datetime
    updated_at: datetime
    links: dict[str, str]


class MapResponse(OverlayResponse):
    """A tactical map at its current version: its overlay document, the map's links and the job that made it."""

    job_id: str | None = Field(..., description="The job that generated the map's art.")


class RenderSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: int | None = Field(None, ge=1, le=1000, description="Denoising steps; the composer's default when null.")
    guidance: float | None = Field(None, ge=0, le=100, description="Guidance scale; the composer's when null.")


class TacticalMapBody(OverlayBody):
    """A battle map: the grid and terrain decide the art's layout; tokens, templates and paths are drawn over it."""

    prompt: str | None = Field(None, max_length=1000, description="What the art shows; null: made from the terrain.")
    negative_prompt: str | None = Field(None, max_length=1000)
    theme: str | None = Field(None, max_length=140, description="A theme by name or id, optionally `@version`.")
    variation: str | None = Field(None, max_length=64)
    seed: int | None = Field(None, ge=0, lt=2**32, description="The background's seed; random when null.")
    render: RenderSettings | None = Field(None, description="How the background is generated.")
    enhance: list[EnhanceStep] = Field(
        default_factory=list,
        max_length=8,
        description='Steps run on the art before it is fitted to the grid and drawn over: `[{"op": "upscale"}]`.',
    )
    backend: str | None = Field(
        None,
        max_length=32,
        description="Where the art is drawn: `local`, `auto` or a configured paid API (one that takes "
        "image-to-image; a ControlNet depth pass stays local); null: `remote.routing.default`.",
    )
    format: Literal["png", "webp", "jpeg"] = "png"

    def to_request(self) -> TacticalMapRequest:
        """The kind's request: the overlay part of the body, and how to make the art."""
        overlay = OverlayBody.model_validate(self.model_dump(include=set(OverlayBody.model_fields), exclude_none=True))
        render = self.render or RenderSettings()
        return TacticalMapRequest(
            overlay=overlay,
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            theme=self.theme,
            variation=self.variation,
            seed=self.seed,
            steps=render.steps,
            guidance=render.guidance,
            format=self.format,
            enhance=tuple(self.enhance),
            backend=self.backend,
        )


class UvttImportResponse(BaseModel):
    """A UVTT file read into a map spec: POST the spec (with a prompt or theme) to ``/maps/tactical`` to restyle it."""

    spec: dict[str, Any] = Field(..., description="grid, terrain (walls, doors, windows), lights.")
    image_id: str | None = Field(None, description="The file's embedded image, stored (null when it had none).")
    links: dict[str, str] = Field(default_factory=dict)
