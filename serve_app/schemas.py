"""Plain data that crosses deployment handles (pickled by Ray): no Starlette or pydantic objects."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.prompts import PartialRequest
from pipelines.sdxl import GenerationRequest
from pipelines.styles import Style

__all__ = ["BridgeSubmission", "ComposedRequest", "GeneratedImage", "PartialRequest"]


@dataclass(frozen=True)
class ComposedRequest:
    """The composer's output: a full generation request and its identity.

    Attributes:
        request: What the generator runs.
        request_hash: Canonical hash of ``request`` (the result-cache key).
        request_id: Unique id of this attempt, used to cancel it.
    """

    request: GenerationRequest
    request_hash: str
    request_id: str


@dataclass(frozen=True)
class GeneratedImage:
    """One generated image, PNG-encoded, with what produced it.

    Attributes:
        png: The image as PNG bytes (lossless; other formats are derived from it).
        seed: The seed it was generated with.
        width: Width in pixels.
        height: Height in pixels.
        request_hash: Canonical hash of the request.
        batch_size: How many requests shared its diffusers call.
        timings: Seconds: ``queue_s`` (waiting in the replica), ``generate_s`` (the whole call).
    """

    png: bytes
    seed: int
    width: int
    height: int
    request_hash: str
    batch_size: int
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class BridgeSubmission:
    """A bridge request on its way to becoming a durable job (crosses the bridge → ingress handle).

    Attributes:
        request_id: The installation's request id (recorded with the job).
        prompt: The prompt the core sent; ``style`` is applied by the composer.
        negative_prompt: The core's negative prompt.
        width: Width to generate, a multiple of 8.
        height: Height to generate, a multiple of 8.
        seed: The seed.
        style: The era/biome style, or None.
        init_png: Image-to-image start (depth map or reference image) as PNG, or None.
        strength: img2img strength with ``init_png``.
        control_png: ControlNet conditioning (a depth map) as PNG, or None.
        control_scale: ControlNet conditioning scale with ``control_png``.
        deadline_at: Epoch seconds by which the job must have started, or None.
        priority: Job priority.
    """

    request_id: str
    prompt: str
    negative_prompt: str
    width: int
    height: int
    seed: int
    style: Style | None = None
    init_png: bytes | None = field(default=None, repr=False)
    strength: float | None = None
    control_png: bytes | None = field(default=None, repr=False)
    control_scale: float = 1.0
    deadline_at: float | None = None
    priority: int = 50
