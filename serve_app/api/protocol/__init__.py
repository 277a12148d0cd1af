"""HTTP request and response models of the images API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from serve_app.enhance.models import EnhanceStep

__all__ = [
    "MAX_GUIDANCE",
    "MAX_SIDE",
    "MAX_STEPS",
    "GenerateImageRequest",
    "ImageResponse",
    "JobList",
    "JobResponse",
    "JobResult",
    "ReadyResponse",
]

MAX_SIDE = 16384
"""Schema bound of width and height; the generator's ``limits.max_size`` is the real one."""
MAX_STEPS = 1000
"""Schema bound of steps; the generator's ``limits.max_steps`` is the real one."""
MAX_GUIDANCE = 100.0
"""Schema bound of guidance; the generator's ``limits.max_guidance`` is the real one."""


class GenerateImageRequest(BaseModel):
    """Body of ``POST /api/v2/images/generate`` and ``POST /api/v2/images/jobs``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "prompt": "a red dragon over a ruined castle, fantasy art",
                    "width": 256,
                    "height": 256,
                    "steps": 20,
                    "seed": 42,
                    "format": "png",
                },
                {"prompt": "portrait of a dwarf blacksmith", "size": "portrait", "scheduler": "dpmpp_2m_karras"},
            ]
        },
    )

    prompt: str = Field(..., min_length=1, max_length=2000, description="What to draw.")
    negative_prompt: str | None = Field(
        None, max_length=2000, description="What to avoid; a sensible default is used when omitted."
    )
    # The bounds here only keep absurd numbers out of the service (a 4000-digit width, an infinite guidance);
    # the real limits are the generator's (``generator.limits``), checked when the request is composed.
    width: int | None = Field(None, ge=1, le=MAX_SIDE, description="Width in pixels, a multiple of 8.")
    height: int | None = Field(None, ge=1, le=MAX_SIDE, description="Height in pixels, a multiple of 8.")
    size: str | None = Field(None, max_length=64, description="A named size preset (square, portrait, landscape, ...).")
    aspect_ratio: str | None = Field(
        None,
        max_length=21,
        pattern=r"^\d{1,6}(\.\d{1,3})?:\d{1,6}(\.\d{1,3})?$",
        description="'W:H' (each part at most 6 digits and 3 decimals), fitted to the model's native area.",
    )
    steps: int | None = Field(None, ge=1, le=MAX_STEPS, description="Denoising steps.")
    guidance: float | None = Field(
        None, ge=0, le=MAX_GUIDANCE, allow_inf_nan=False, description="Classifier-free guidance scale."
    )
    seed: int | None = Field(
        None, ge=0, lt=2**63, description="Seed; the same request with the same seed gives the same image."
    )
    scheduler: str | None = Field(None, max_length=64, description="euler, euler_a, ddim, dpmpp_2m or dpmpp_2m_karras.")
    format: Literal["png", "webp", "jpeg"] = Field("png", description="Encoding of the returned image.")
    theme: str | None = Field(
        None, max_length=140, description="A theme by name or id, optionally pinned: `ink-and-wash@2`."
    )
    variation: str | None = Field(None, max_length=64, description="One of the theme's variations (`night`).")
    enhance: list[EnhanceStep] = Field(
        default_factory=list,
        max_length=8,
        description='Steps after generation, in order, each kept as a version: `[{"op": "face-fix"}, '
        '{"op": "upscale", "scale": 2}]` (`upscale`, `face-fix`, `restyle`).',
    )
    backend: str | None = Field(
        None,
        max_length=32,
        description="Where it is drawn: `local`, `auto` (remote.routing.order) or a configured paid API "
        "(`getimg`, `fal`, `openai`, `runware`); null: `remote.routing.default`.",
    )


class ReadyResponse(BaseModel):
    """Body of ``GET /readyz`` when ready."""

    status: Literal["ready"] = "ready"
    model: str = Field(..., description="The generator's model.")
    device: str = Field(..., description="Where it runs.")


class JobResult(BaseModel):
    """What a finished job made."""

    images: list[str] = Field(..., description="Ids of the images it stored; the first is `image_id`.")
    data: dict[str, Any] = Field(..., description="The kind's JSON document (geometry, costs, export links...).")


class JobResponse(BaseModel):
    """A job, as ``POST /jobs`` and ``GET /jobs/{id}`` report it."""

    id: str
    kind: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled", "dead"]
    priority: int
    progress: float = Field(..., description="0 to 1.")
    step: int | None = Field(None, description="Denoising step reached.")
    total: int | None = Field(None, description="Denoising steps in all.")
    attempts: int
    max_attempts: int
    error: str | None = Field(
        None,
        description="What went wrong: the check that failed for bad input; for an internal failure only a safe "
        "sentence (the details are logged with the job id).",
    )
    error_type: str | None = Field(None, description="Stable type of the failure (invalid_request, ...).")
    error_param: str | None = Field(None, description="The request field at fault, when there is one.")
    source: str
    backend: str | None = Field(None, description="What drew the last attempt: `local`, `getimg`, `fal`, ...")
    cost_usd: float | None = Field(None, description="The sum of the job's paid calls (null: none).")
    request_hash: str | None = Field(None, description="Canonical hash of the composed request (cache key).")
    image_id: str | None = Field(None, description="The result image once succeeded: `result.images[0]`.")
    image_deleted: bool = Field(
        False,
        description="The result image was deleted after the job made it: `image_id` stays (what the job made), "
        "the `image`, `file` and `asset` links are left out.",
    )
    result: JobResult | None = Field(None, description="Once succeeded: every image it made and its data.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    deadline: datetime | None
    links: dict[str, str] = Field(
        ..., description="self, events, and (once succeeded) image, file and asset, unless the image was deleted."
    )


class JobList(BaseModel):
    items: list[JobResponse]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; null on the last.")


class ImageResponse(BaseModel):
    """An image's metadata."""

    id: str
    kind: str
    prompt: str | None
    negative_prompt: str | None
    seed: int | None
    settings: dict[str, Any]
    theme_id: str | None
    model: str | None
    width: int
    height: int
    content_hash: str
    format: str
    parent_id: str | None
    version: int
    backend: str | None = Field(None, description="The paid API that drew it; null: the local generator.")
    cost_usd: float | None = Field(None, description="What it cost there (the API's figure, else the price table).")
    created_at: datetime
    links: dict[str, str]
