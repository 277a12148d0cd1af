"""The HTTP bodies of campaign maps. The campaign spec's fields are typed loosely here (lists of objects): the
pure parser (pipelines/overlay/campaign.py ``parse_campaign``) checks every rule and names the field of a bad
one (``regions[2].terrain``), so there is one set of rules, shared with stored specs and GeoJSON imports."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from serve_app.api.protocol.overlays import RenderSettings
from serve_app.jobs.kinds.campaign import CampaignMapRequest

__all__ = ["CampaignMapBody", "CampaignMapResponse", "CampaignRouteBody", "CampaignSpecBody"]

_ITEMS = 2000


class CampaignMapResponse(BaseModel):
    """A campaign map at its current version (``serve_app.api.campaign.campaign_document``): what it measures is
    ``data``, where a tactical map has ``geometry``."""

    id: str
    kind: str
    version: int
    image_id: str | None = Field(..., description="The render of this version (a derived version of the background).")
    background_image_id: str
    spec: dict[str, Any]
    data: dict[str, Any] = Field(..., description="Route miles and days, region and territory areas, the party's days.")
    job_id: str | None = Field(..., description="The job that generated the map's art.")
    created_at: datetime
    updated_at: datetime
    links: dict[str, str]


class CanvasBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    width: int = Field(..., ge=64, le=8192, description="Pixels.")
    height: int = Field(..., ge=64, le=8192, description="Pixels.")


class CampaignSpecBody(BaseModel):
    """A campaign map's data: coordinates are canvas pixels, x right and y down, as ``[x, y]`` pairs
    (docs/CAMPAIGN_MAPS.md has every field)."""

    model_config = ConfigDict(extra="forbid")

    canvas: CanvasBody
    scale: dict[str, Any] = Field(
        ..., description='`{"miles_per_pixel": m}` or `{"hex": {"size_px": s, "miles_per_hex": 6}}`.'
    )
    regions: list[dict[str, Any]] = Field(
        default_factory=list, max_length=_ITEMS, description="`{name, terrain, polygon}`."
    )
    pois: list[dict[str, Any]] = Field(
        default_factory=list, max_length=_ITEMS, description="`{name, kind, x, y, importance?, icon?}`."
    )
    territories: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=_ITEMS,
        description="`{name, color, polygon | polygons | hexes, contested_with?}`.",
    )
    routes: list[dict[str, Any]] = Field(
        default_factory=list, max_length=_ITEMS, description="`{kind, from, to, via?}` or `{kind, points}`."
    )
    party: dict[str, Any] | None = Field(None, description="`{x, y, travelled?, planned?, pace?, mode?}`.")
    resources: list[dict[str, Any]] = Field(
        default_factory=list, max_length=_ITEMS, description="`{kind, x, y, quantity?}`."
    )
    title: str | None = Field(None, max_length=80)
    layers: list[str] | None = Field(None, description="The layers to draw; all by default.")
    travel: dict[str, Any] | None = Field(None, description="Overrides of the travel cost model.")

    def to_doc(self) -> dict[str, Any]:
        """The spec's JSON, as the pure parser reads it."""
        return self.model_dump(include=set(CampaignSpecBody.model_fields), exclude_none=True)


class CampaignMapBody(CampaignSpecBody):
    """A campaign map: the regions decide the art's layout; territories, routes, POIs, the party and the legend
    are drawn over it."""

    prompt: str | None = Field(None, max_length=1000, description="What the art shows; null: made from the terrain.")
    negative_prompt: str | None = Field(None, max_length=1000)
    theme: str | None = Field(None, max_length=140, description="A theme by name or id, optionally `@version`.")
    variation: str | None = Field(None, max_length=64)
    seed: int | None = Field(None, ge=0, lt=2**32, description="The art's seed; random when null.")
    render: RenderSettings | None = Field(None, description="How the art is generated.")
    backend: str | None = Field(None, max_length=32, description="`local`, `auto` or a configured paid API.")
    format: Literal["png", "webp", "jpeg"] = "png"

    def to_request(self) -> CampaignMapRequest:
        render = self.render or RenderSettings()
        return CampaignMapRequest(
            campaign=self.to_doc(),
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            theme=self.theme,
            variation=self.variation,
            seed=self.seed,
            steps=render.steps,
            guidance=render.guidance,
            format=self.format,
            backend=self.backend,
        )


class CampaignRouteBody(BaseModel):
    """A route to plan on a campaign map: between two POIs (by name) or points (``[x, y]``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    map_id: str = Field(..., max_length=64)
    from_: str | list[float] = Field(..., alias="from", description="A POI's name or an `[x, y]` point.")
    to: str | list[float] = Field(..., description="A POI's name or an `[x, y]` point.")
    pace: Literal["slow", "normal", "fast"] = "normal"
    mode: Literal["foot", "mounted", "cart", "ship"] = "foot"
