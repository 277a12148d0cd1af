"""The enhancer deployment: the pixel work of upscaling, face enhancement and restyling, on the CPU (or a GPU for a
configured ESRGAN-family model).

A thin host for :class:`serve_app.enhance.stage.EnhancerStage`. Repaint passes (hires tiles, face crops, restyles)
do not run here: the job's recipe sends them to the Generator, so there is one copy of the weights and tiles of one
size batch together; this deployment plans them and blends what comes back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ray import serve

from serve_app.config import EnhancerConfig
from serve_app.enhance.stage import EnhancerStage, FacePlan, HiresPlan

__all__ = ["Enhancer"]


@serve.deployment(name="Enhancer")
class Enhancer:
    """Upscale, face and structure pixel work.

    Args:
        config: The ``enhancer`` section of the app config.
        cache_dir: The model cache (the CPU profile's built-in upscaler network is saved there).
    """

    def __init__(self, config: EnhancerConfig, cache_dir: str) -> None:
        self._stage = EnhancerStage(config, cache_dir)

    async def lanczos(self, png: bytes, width: int, height: int) -> bytes:
        return await self._stage.lanczos(png, width, height)

    async def model_upscale(self, png: bytes, settings: Any) -> bytes:
        return await self._stage.model_upscale(png, settings)

    async def hires_plan(self, png: bytes, settings: Any, native: int) -> HiresPlan:
        return await self._stage.hires_plan(png, settings, native)

    async def hires_blend(self, plan: HiresPlan, repainted: Sequence[bytes], overlap: int) -> bytes:
        return await self._stage.hires_blend(plan, repainted, overlap)

    async def face_plan(self, png: bytes, settings: Any, native: int) -> FacePlan:
        return await self._stage.face_plan(png, settings, native)

    async def paste_faces(self, png: bytes, plan: FacePlan, repainted: Sequence[bytes]) -> bytes:
        return await self._stage.paste_faces(png, plan, repainted)

    async def restore_faces(self, plan: FacePlan) -> list[bytes]:
        return await self._stage.restore_faces(plan)

    async def structure(self, png: bytes) -> bytes:
        return await self._stage.structure(png)

    async def info(self) -> dict[str, Any]:
        return await self._stage.info()
