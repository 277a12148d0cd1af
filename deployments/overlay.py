"""The overlay deployment: exact drawing and geometry on the CPU, after the generator (and the enhancer slot).

A thin host for :class:`serve_app.overlays.stage.OverlayStage` (measure, render, sketch, fit over the pure
pipelines/overlay/). It reserves no CPU on the default profile: drawing a 2800 x 2100 map takes milliseconds, and
on 2 cores a reserved core would be taken from the generator.
"""

from __future__ import annotations

from collections.abc import Mapping

from ray import serve

from pipelines.overlay.spec import Geometry, OverlaySpec
from serve_app.config import OverlayConfig
from serve_app.overlays.stage import OverlayStage, Rendered, Sketch

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
