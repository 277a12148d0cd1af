"""The overlay stage: measure a spec, render it on a background, sketch a tactical map's layout, fit art to a map.

CPU work over the pure pipelines/overlay/ and pipelines/prompts/maps.py, run off the event loop. The Overlay
deployment (deployments/overlay.py) hosts one; tests and the edge without Ray use it directly. Everything crossing
it is plain data (specs are frozen dataclasses, images PNG bytes), so a deployment handle carries it unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipelines.overlay.spec import Geometry, OverlayLimits, OverlaySpec

__all__ = ["CampaignRendered", "OverlayStage", "Rendered", "Sketch"]


@dataclass(frozen=True)
class Rendered:
    """A render: the PNG (exactly the map's size) and the geometry it drew."""

    png: bytes
    geometry: Geometry
    width: int
    height: int


@dataclass(frozen=True)
class Sketch:
    """A tactical map's conditioning images at the generation size: the colour-coded plan and the depth-like map."""

    layout_png: bytes
    depth_png: bytes


@dataclass(frozen=True)
class CampaignRendered:
    """A campaign map's render: the PNG (exactly the canvas's size) and what the spec measures (the ``data``
    document: route miles and days, areas, who holds each POI, the party's days)."""

    png: bytes
    data: dict[str, Any]
    width: int
    height: int


class OverlayStage:
    """Measures, renders, sketches and fits. Every method checks the spec first (``InputError`` names the field).

    Args:
        limits: Bounds on one overlay (``overlay`` config section).
    """

    def __init__(self, limits: OverlayLimits | None = None) -> None:
        self._limits = limits or OverlayLimits()

    async def measure(self, spec: OverlaySpec) -> Geometry:
        """The cells and costs of everything in ``spec`` (no drawing)."""
        return await asyncio.to_thread(self._measure, spec)

    async def render(
        self, background: bytes | None, spec: OverlaySpec, art: Mapping[str, bytes] | None = None
    ) -> Rendered:
        """Draws ``spec`` over ``background`` (PNG or any PIL-readable bytes; None: a plain canvas of the map's
        size). ``art`` maps a token's ``image_id`` to its image bytes."""
        return await asyncio.to_thread(self._render, background, spec, dict(art or {}))

    async def sketch(self, spec: OverlaySpec, width: int, height: int) -> Sketch:
        """The layout sketch and depth-like map of ``spec``'s terrain at ``width`` x ``height`` pixels."""
        return await asyncio.to_thread(self._sketch, spec, width, height)

    async def fit(self, image: bytes, width: int, height: int) -> bytes:
        """``image`` scaled to cover and centre-cropped to exactly ``width`` x ``height`` (PNG)."""
        return await asyncio.to_thread(self._fit, image, width, height)

    # -- campaign maps: specs cross as their JSON (plain data), parsed and checked here ---------------------------

    async def campaign_measure(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """The ``data`` document of a campaign spec (raises ``InputError`` naming the field of a bad one)."""
        return await asyncio.to_thread(self._campaign_measure, dict(doc))

    async def campaign_render(self, background: bytes | None, doc: Mapping[str, Any]) -> CampaignRendered:
        """Draws the campaign layers of ``doc`` over ``background`` (None: a parchment canvas)."""
        return await asyncio.to_thread(self._campaign_render, background, dict(doc))

    async def campaign_sketch(self, doc: Mapping[str, Any], width: int, height: int) -> bytes:
        """The terrain layout sketch (PNG) the campaign art is generated from, at ``width`` x ``height``."""
        return await asyncio.to_thread(self._campaign_sketch, dict(doc), width, height)

    async def campaign_route(
        self, doc: Mapping[str, Any], start: tuple[float, float], goal: tuple[float, float], pace: str, mode: str
    ) -> dict[str, Any]:
        """The cheapest route between two points of the map (A* over its cost grid): path, miles, days, legs."""
        return await asyncio.to_thread(self._campaign_route, dict(doc), start, goal, pace, mode)

    # -- the work, in a worker thread -------------------------------------------------------------------------

    def _measure(self, spec: OverlaySpec) -> Geometry:
        from pipelines.overlay.geometry import measure
        from pipelines.overlay.spec import check

        check(spec, self._limits)
        return measure(spec)

    def _render(self, background: bytes | None, spec: OverlaySpec, art: dict[str, bytes]) -> Rendered:
        from pipelines import encode
        from pipelines.overlay.draw import render_png
        from pipelines.overlay.geometry import measure
        from pipelines.overlay.grid import GridGeometry
        from pipelines.overlay.spec import check

        check(spec, self._limits)
        geo = GridGeometry(spec.grid)
        geometry = measure(spec, geo)
        base = None if background is None else encode.decode(background)
        images = {key: encode.decode(data) for key, data in art.items()}
        png = render_png(base, spec, geometry, geo, images)
        return Rendered(png, geometry, geo.width_px, geo.height_px)

    def _sketch(self, spec: OverlaySpec, width: int, height: int) -> Sketch:
        from pipelines import encode
        from pipelines.overlay.spec import check
        from pipelines.prompts.maps import depth_map, layout_sketch

        check(spec, self._limits)
        layout = layout_sketch(spec, width, height)
        depth = depth_map(spec, width, height)
        return Sketch(encode.encode(layout.convert("RGB"), "png"), encode.encode(depth.convert("RGB"), "png"))

    def _fit(self, image: bytes, width: int, height: int) -> bytes:
        from pipelines import encode
        from pipelines.prompts.maps import fit_exact

        return encode.encode(fit_exact(encode.decode(image).convert("RGB"), width, height), "png")

    def _campaign_measure(self, doc: dict[str, Any]) -> dict[str, Any]:
        from pipelines.overlay.campaign import parse_campaign
        from pipelines.overlay.campaign_measure import measure_campaign

        spec = parse_campaign(doc)
        return measure_campaign(spec).to_json(spec)

    def _campaign_render(self, background: bytes | None, doc: dict[str, Any]) -> CampaignRendered:
        from pipelines import encode
        from pipelines.overlay.campaign import parse_campaign
        from pipelines.overlay.campaign_draw import render_campaign_png
        from pipelines.overlay.campaign_measure import measure_campaign

        spec = parse_campaign(doc)
        geometry = measure_campaign(spec)
        base = None if background is None else encode.decode(background)
        png = render_campaign_png(base, spec, day_marks=geometry.day_marks)
        return CampaignRendered(png, geometry.to_json(spec), spec.width, spec.height)

    def _campaign_sketch(self, doc: dict[str, Any], width: int, height: int) -> bytes:
        from pipelines import encode
        from pipelines.overlay.campaign import parse_campaign
        from pipelines.prompts.campaign import campaign_sketch

        return encode.encode(campaign_sketch(parse_campaign(doc), width, height).convert("RGB"), "png")

    def _campaign_route(
        self, doc: dict[str, Any], start: tuple[float, float], goal: tuple[float, float], pace: str, mode: str
    ) -> dict[str, Any]:
        from pipelines.overlay.campaign import parse_campaign
        from pipelines.overlay.campaign_travel import plan_route

        plan = plan_route(parse_campaign(doc), start, goal, pace=pace, mode=mode)
        return plan.to_json()
