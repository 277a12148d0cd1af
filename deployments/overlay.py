"""The overlay deployment: exact drawing and geometry on the CPU, after the generator (and the enhancer slot).

A thin host for :class:`serve_app.overlays.stage.OverlayStage` (measure, render, sketch, fit over the pure
pipelines/overlay/). It reserves no CPU on the default profile: drawing a 2800 x 2100 map takes milliseconds, and
on 2 cores a reserved core would be taken from the generator.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ray import serve

from pipelines.overlay.spec import Geometry, OverlaySpec
from serve_app.config import OverlayConfig
from serve_app.overlays.stage import CampaignRendered, OverlayStage, Rendered, Sketch

__all__ = ["Overlay"]


@serve.deployment(name="Overlay")
class Overlay:
    """Measures and draws overlays.

    Args:
        config: The ``overlay`` section of the app config.
    """

    def __init__(self, config: OverlayConfig) -> None:
        self._stage = OverlayStage(config.limits())

    async def measure(self, spec: OverlaySpec) -> Geometry:
        return await self._stage.measure(spec)

    async def render(
        self, background: bytes | None, spec: OverlaySpec, art: Mapping[str, bytes] | None = None
    ) -> Rendered:
        return await self._stage.render(background, spec, art)

    async def sketch(self, spec: OverlaySpec, width: int, height: int) -> Sketch:
        return await self._stage.sketch(spec, width, height)

    async def fit(self, image: bytes, width: int, height: int) -> bytes:
        return await self._stage.fit(image, width, height)

    async def campaign_measure(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        return await self._stage.campaign_measure(doc)

    async def campaign_render(self, background: bytes | None, doc: Mapping[str, Any]) -> CampaignRendered:
        return await self._stage.campaign_render(background, doc)

    async def campaign_sketch(self, doc: Mapping[str, Any], width: int, height: int) -> bytes:
        return await self._stage.campaign_sketch(doc, width, height)

    async def campaign_route(
        self, doc: Mapping[str, Any], start: tuple[float, float], goal: tuple[float, float], pace: str, mode: str
    ) -> dict[str, Any]:
        return await self._stage.campaign_route(doc, start, goal, pace, mode)
