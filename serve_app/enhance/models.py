"""The enhancement operations as JSON: the bodies of the upscale, face-fix and restyle routes, the steps of a
kind's ``enhance`` recipe (``[{"op": "face-fix"}, {"op": "upscale", "scale": 2}]``) and what their jobs keep.
``to_settings()`` gives the pure settings of pipelines/enhance/, whose ``check()`` names a bad field."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

__all__ = ["EnhanceStep", "FaceFixBody", "RestyleBody", "UpscaleBody", "parse_steps", "step_json"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UpscaleBody(_Body):
    """Upscale (A1111's hires fix and upscaler settings)."""

    op: Literal["upscale"] = "upscale"
    scale: float = Field(2.0, description="1 to 4 (A1111's hr_scale).")
    method: str = Field(
        "lanczos", description="lanczos | hires (SDXL image-to-image over tiles) | model (ESRGAN-family)."
    )
    denoise: float = Field(0.3, description="hires: denoising strength of the second pass.")
    steps: int | None = Field(None, description="hires: second-pass steps; null: the image's own.")
    tile: int = Field(512, description="Tile side in pixels (hires: at most the model's native side).")
    overlap: int = Field(64, description="Tile overlap in pixels, feathered.")

    def to_settings(self) -> Any:
        from pipelines.enhance.upscale import UpscaleSettings

        return UpscaleSettings(**self.model_dump(exclude={"op"}))


class FaceFixBody(_Body):
    """Face enhancement (ADetailer's face pass)."""

    op: Literal["face-fix"] = "face-fix"
    strength: float = Field(0.35, description="Denoising strength of each face's repaint.")
    padding: float = Field(0.3, description="Added around each face box, as a fraction of its side.")
    max_faces: int = Field(4, description="At most this many faces, largest first.")
    feather: float = Field(0.15, description="Mask feather, as a fraction of the crop's side.")
    detector: str | None = Field(None, description="mediapipe | haar; null: the configured one.")
    restorer: bool = Field(
        False, description="Restore each face with the configured GFPGAN/CodeFormer-style model instead of re-painting."
    )

    def to_settings(self) -> Any:
        from pipelines.enhance.faces import FaceFixSettings

        return FaceFixSettings(**self.model_dump(exclude={"op", "restorer"}))


class RestyleBody(_Body):
    """Re-render into a theme."""

    op: Literal["restyle"] = "restyle"
    theme: str = Field(..., min_length=1, max_length=140, description="A theme by name or id, optionally `@version`.")
    variation: str | None = Field(None, max_length=64)
    strength: float = Field(0.6, description="How far image-to-image moves from the image.")
    keep_structure: bool = Field(False, description="Hold the composition with the depth ControlNet.")
    control_scale: float = Field(0.8, description="ControlNet scale with keep_structure.")

    def to_settings(self) -> Any:
        from pipelines.enhance.restyle import RestyleSettings

        return RestyleSettings(**self.model_dump(exclude={"op"}))


EnhanceStep = Annotated[UpscaleBody | FaceFixBody | RestyleBody, Field(discriminator="op")]
_STEPS = TypeAdapter(list[EnhanceStep])


def parse_steps(steps: list[dict[str, Any]]) -> list[UpscaleBody | FaceFixBody | RestyleBody]:
    """Stored steps back into their models (they were validated when the job was accepted)."""
    return _STEPS.validate_python(steps)


def step_json(step: UpscaleBody | FaceFixBody | RestyleBody) -> dict[str, Any]:
    """A step as a job keeps it."""
    return step.model_dump(mode="json")
