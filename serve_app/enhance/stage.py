"""The enhancer stage: the pixel work of upscaling, face enhancement and restyling, off the event loop.

Pure pixel operations over pipelines/enhance/ (Lanczos, the ESRGAN-family model upscaler, tile plans and feathered
blending, face detection, masks and paste-back, structure maps). Repaint passes (hires tiles, face crops, restyles)
are NOT run here: the stage plans them and blends their results, and the job's recipe runs them on the generator
(:meth:`serve_app.jobs.stages.Stages.enhance`), so there is one copy of the weights and tiles of one size batch
together. The Enhancer deployment (deployments/enhancer.py) hosts one; tests and the edge without Ray use it
directly. Images cross it as PNG bytes or PIL images (both pickle); repaints come back from the generator as
images (``ComposedRequest.raw``), since they are blended, never stored.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

    from pipelines.enhance.faces import FaceCrop, FaceFixSettings
    from pipelines.enhance.upscale import RepaintTile, UpscaleSettings
    from serve_app.config import EnhancerConfig

__all__ = ["EnhancerStage", "FacePlan", "HiresPlan"]


@dataclass(frozen=True)
class HiresPlan:
    """A hires upscale's Lanczos base at the target size and the tiles to repaint over it."""

    base: Image.Image
    tiles: tuple[RepaintTile, ...]


@dataclass(frozen=True)
class FacePlan:
    """The faces found and the padded crops to repaint (with their feathered masks)."""

    faces: tuple[tuple[tuple[int, int, int, int], float], ...]
    crops: tuple[FaceCrop, ...]
    detector: str


class EnhancerStage:
    """Upscale, face and structure pixel work.

    Args:
        config: The ``enhancer`` config section.
        cache_dir: Where the CPU profile's built-in upscaler network is saved (the model cache).
    """

    def __init__(self, config: EnhancerConfig, cache_dir: str | Path) -> None:
        self._config = config
        self._cache_dir = Path(cache_dir).expanduser()

    async def lanczos(self, png: bytes, width: int, height: int) -> bytes:
        return await asyncio.to_thread(self._lanczos, png, width, height)

    async def model_upscale(self, png: bytes, settings: UpscaleSettings) -> bytes:
        """The configured ESRGAN-family network over ``png`` (tiled), then Lanczos to the exact target size."""
        return await asyncio.to_thread(self._model_upscale, png, settings)

    async def hires_plan(self, png: bytes, settings: UpscaleSettings, native: int) -> HiresPlan:
        return await asyncio.to_thread(self._hires_plan, png, settings, native)

    async def hires_blend(self, plan: HiresPlan, repainted: Sequence[bytes | Image.Image], overlap: int) -> bytes:
        """The repainted tiles (PNG bytes or images) blended into the upscaled image, as PNG."""
        return await asyncio.to_thread(self._hires_blend, plan, list(repainted), overlap)

    async def face_plan(self, png: bytes, settings: FaceFixSettings, native: int) -> FacePlan:
        """The faces found and their padded crops, each resized for a repaint (longer side ``native``)."""
        return await asyncio.to_thread(self._face_plan, png, settings, native)

    async def paste_faces(self, png: bytes, plan: FacePlan, repainted: Sequence[bytes | Image.Image]) -> bytes:
        return await asyncio.to_thread(self._paste_faces, png, plan, list(repainted))

    async def restore_faces(self, plan: FacePlan) -> list[bytes]:
        """Each face crop of ``plan`` through the configured restorer (``enhancer.face_restorer``), as PNGs."""
        return await asyncio.to_thread(self._restore_faces, plan)

    async def structure(self, png: bytes) -> bytes:
        """A depth-like map of ``png`` for the depth ControlNet (``enhancer.structure``: edges or luminance)."""
        return await asyncio.to_thread(self._structure, png)

    async def info(self) -> dict[str, Any]:
        """What this stage runs: the upscaler model, the face detectors that import."""
        from pipelines.enhance.faces import available_detectors

        return {
            "model_path": str(self._model_path()),
            "detectors": list(available_detectors()),
            "restorer": None if self._config.face_restorer is None else self._config.face_restorer.path,
        }

    # -- the work, in a worker thread -------------------------------------------------------------------------

    def _lanczos(self, png: bytes, width: int, height: int) -> bytes:
        from pipelines import encode
        from pipelines.enhance.upscale import lanczos

        return encode.encode(lanczos(_rgb(png), width, height), "png", fast=True)

    def _model_path(self) -> Path:
        from pipelines.enhance.model import ensure_default_model

        if self._config.model_path is not None:
            return Path(self._config.model_path).expanduser()
        return ensure_default_model(self._cache_dir)

    @functools.cache  # noqa: B019 - one stage per replica; the network is loaded once
    def _upscaler(self) -> Any:
        from pipelines.enhance.model import load_upscaler

        return load_upscaler(self._model_path(), device=self._config.device)

    def _model_upscale(self, png: bytes, settings: UpscaleSettings) -> bytes:
        from pipelines import encode
        from pipelines.enhance.upscale import model_resize, target_size

        image = _rgb(png)
        width, height = target_size(image.width, image.height, settings.scale)
        out = model_resize(self._upscaler(), image, width, height, tile=settings.tile, overlap=settings.overlap)
        return encode.encode(out, "png", fast=True)

    def _hires_plan(self, png: bytes, settings: UpscaleSettings, native: int) -> HiresPlan:
        from pipelines.enhance.upscale import hires_plan

        base, tiles = hires_plan(_rgb(png), settings, native=native)
        return HiresPlan(base, tuple(tiles))

    def _hires_blend(self, plan: HiresPlan, repainted: list[bytes | Image.Image], overlap: int) -> bytes:
        from pipelines import encode
        from pipelines.enhance.upscale import hires_blend

        pairs = [(tile, _rgb(data)) for tile, data in zip(plan.tiles, repainted, strict=True)]
        return encode.encode(hires_blend(plan.base, pairs, overlap), "png", fast=True)

    def _face_plan(self, png: bytes, settings: FaceFixSettings, native: int) -> FacePlan:
        from pipelines.enhance.faces import available_detectors, detect_faces, face_plan

        image = _rgb(png)
        detector = settings.detector or _preferred(self._config.face_detector, available_detectors())
        faces = detect_faces(image, detector=detector, max_faces=settings.max_faces)
        crops = face_plan(image, faces, settings, native=native)
        return FacePlan(tuple((f.box, f.score) for f in faces), tuple(crops), detector)

    def _paste_faces(self, png: bytes, plan: FacePlan, repainted: list[bytes | Image.Image]) -> bytes:
        from pipelines import encode
        from pipelines.enhance.faces import paste_faces

        pairs = [(crop, _rgb(data)) for crop, data in zip(plan.crops, repainted, strict=True)]
        return encode.encode(paste_faces(_rgb(png), pairs), "png", fast=True)

    @functools.cache  # noqa: B019 - one stage per replica; the restorer is loaded once
    def _restorer(self) -> Any:
        from pipelines.enhance.restore import load_restorer

        config = self._config.face_restorer
        if config is None:
            raise ValueError("no enhancer.face_restorer is configured")
        return load_restorer(
            config.path, acknowledged_non_commercial=config.acknowledge_non_commercial, device=self._config.device
        )

    def _restore_faces(self, plan: FacePlan) -> list[bytes]:
        from pipelines import encode
        from pipelines.enhance.restore import restore

        restorer = self._restorer()
        return [encode.encode(restore(restorer, crop.crop), "png", fast=True) for crop in plan.crops]

    def _structure(self, png: bytes) -> bytes:
        from pipelines import encode
        from pipelines.enhance.structure import structure_map

        return encode.encode(structure_map(_rgb(png), kind=self._config.structure).convert("RGB"), "png", fast=True)


def _rgb(data: bytes | Image.Image) -> Image.Image:
    from PIL import Image

    from pipelines import encode

    image = data if isinstance(data, Image.Image) else encode.decode(data)
    return image if image.mode == "RGB" else image.convert("RGB")


def _preferred(configured: str, available: tuple[str, ...]) -> str:
    if configured != "auto":
        return configured
    return available[0] if available else "haar"
