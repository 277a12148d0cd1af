"""What a generation backend is asked for and what it answers: backend-neutral, no torch, no diffusers.

:class:`GenerationRequest` is one image to make; requests that share a :class:`BatchKey` can run in one call;
:class:`GenerationResult` holds a call's images in request order. The local SDXL pipeline (pipelines/sdxl.py)
and the remote APIs (pipelines/remote/) take the same request, each refusing what it cannot honour in its own
``check``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pipelines.errors import InputError

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "SCHEDULER_NAMES",
    "BatchKey",
    "GenerationLimits",
    "GenerationRequest",
    "GenerationResult",
    "Mode",
    "StepCallback",
]

Mode = Literal["txt2img", "img2img"]

SCHEDULER_NAMES: tuple[str, ...] = ("euler", "euler_a", "ddim", "dpmpp_2m", "dpmpp_2m_karras")
"""Sampler names a request may ask for; each backend maps them to its own (pipelines.sdxl.SCHEDULERS)."""

StepCallback = Callable[[int, int], bool]
"""Called after every denoising step with ``(step, total)``; returning False cancels the call."""


@dataclass(frozen=True)
class GenerationLimits:
    """Bounds every request is checked against before any compute.

    Attributes:
        min_size: Smallest width or height in pixels.
        max_size: Largest width or height in pixels.
        max_pixels: Largest width * height.
        max_steps: Most denoising steps.
        max_guidance: Largest classifier-free guidance scale.
        max_prompt_chars: Longest prompt or negative prompt, in characters.
        max_control_scale: Largest ControlNet conditioning scale.
    """

    min_size: int = 64
    max_size: int = 2048
    max_pixels: int = 2048 * 2048
    max_steps: int = 150
    max_guidance: float = 30.0
    max_prompt_chars: int = 2000
    max_control_scale: float = 2.0

    def fit(self, width: int, height: int, multiple: int = 8) -> tuple[int, int]:
        """``width`` x ``height`` shrunk (aspect kept) to within ``max_size`` and ``max_pixels``, each side rounded
        down to ``multiple`` and at least ``min_size``: a size the generator accepts for an image of that shape."""
        scale = min(1.0, self.max_size / max(width, height), (self.max_pixels / (width * height)) ** 0.5)
        return (
            max(self.min_size, int(width * scale) // multiple * multiple),
            max(self.min_size, int(height * scale) // multiple * multiple),
        )


@dataclass(frozen=True)
class BatchKey:
    """What requests must share to run in one diffusers call."""

    model: str
    width: int
    height: int
    steps: int
    scheduler: str
    guidance: float
    mode: Mode
    strength: float
    control: bool = False
    control_scale: float = 1.0


@dataclass(frozen=True)
class GenerationRequest:
    """One image to generate.

    Attributes:
        prompt: What to draw.
        negative_prompt: What to steer away from.
        width: Image width in pixels, a multiple of 8.
        height: Image height in pixels, a multiple of 8.
        steps: Denoising steps (for img2img, the schedule length before ``strength`` shortens it).
        guidance: Classifier-free guidance scale; at most 1 disables guidance.
        seed: Seed of this image's own generator.
        scheduler: One of :data:`SCHEDULER_NAMES`.
        mode: ``txt2img`` or ``img2img``.
        init_image: The starting image, required for ``img2img``; resized to ``width`` x ``height``.
        strength: How far img2img moves from ``init_image`` (0 keeps it, 1 ignores it).
        model: Name of the model, part of the batch key.
        control_image: A ControlNet conditioning image (e.g. a depth map), resized to ``width`` x ``height``
            and converted to RGB; needs a pipeline loaded with a ControlNet. None generates without one.
        control_scale: How strongly ``control_image`` steers the image (0 ignores it), from 0 to
            ``GenerationLimits.max_control_scale``.
    """

    prompt: str
    negative_prompt: str = ""
    width: int = 1024
    height: int = 1024
    steps: int = 30
    guidance: float = 5.0
    seed: int = 0
    scheduler: str = "euler"
    mode: Mode = "txt2img"
    init_image: Image.Image | None = field(default=None, compare=False, repr=False)
    strength: float = 0.75
    model: str = "default"
    control_image: Image.Image | None = field(default=None, compare=False, repr=False)
    control_scale: float = 1.0

    def batch_key(self) -> BatchKey:
        """Returns the key that requests must share to be generated together."""
        return BatchKey(
            model=self.model,
            width=self.width,
            height=self.height,
            steps=self.steps,
            scheduler=self.scheduler,
            guidance=float(self.guidance),
            mode=self.mode,
            # strength only matters for img2img; txt2img requests batch regardless of it.
            strength=float(self.strength) if self.mode == "img2img" else 1.0,
            # Controlled and uncontrolled requests run through different diffusers pipelines; the scale
            # only matters with a control image.
            control=self.control_image is not None,
            control_scale=float(self.control_scale) if self.control_image is not None else 1.0,
        )

    def check(self, limits: GenerationLimits = GenerationLimits()) -> None:
        """Raises :class:`InputError` for the first field out of range.

        Whether a ``control_image`` can be used at all depends on the pipeline: see
        :meth:`SDXLPipeline.check`.

        Args:
            limits: The bounds to check against.
        """
        for name in ("prompt", "negative_prompt"):
            text = getattr(self, name)
            if not isinstance(text, str):
                raise InputError(name, text, "a string")
            if len(text) > limits.max_prompt_chars:
                raise InputError(name, f"<{len(text)} characters>", f"at most {limits.max_prompt_chars} characters")
            if "\x00" in text:
                # PostgreSQL text cannot hold NUL: refused here, it would fail the image insert after the
                # generation, and every retry with it.
                raise InputError(name, f"<NUL at character {text.index(chr(0))}>", "text without NUL characters")
        for name in ("width", "height"):
            size = getattr(self, name)
            if not isinstance(size, int) or isinstance(size, bool):
                raise InputError(name, size, "an integer")
            if size % 8 or not limits.min_size <= size <= limits.max_size:
                raise InputError(name, size, f"a multiple of 8 from {limits.min_size} to {limits.max_size}")
        if self.width * self.height > limits.max_pixels:
            raise InputError("width", self.width, f"width * height at most {limits.max_pixels} pixels")
        if not isinstance(self.steps, int) or not 1 <= self.steps <= limits.max_steps:
            raise InputError("steps", self.steps, f"an integer from 1 to {limits.max_steps}")
        if not 0.0 <= float(self.guidance) <= limits.max_guidance:
            raise InputError("guidance", self.guidance, f"from 0 to {limits.max_guidance}")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise InputError("seed", self.seed, "an integer from 0 to 2**63 - 1")
        if self.scheduler not in SCHEDULER_NAMES:
            raise InputError("scheduler", self.scheduler, f"one of {sorted(SCHEDULER_NAMES)}")
        if self.mode not in ("txt2img", "img2img"):
            raise InputError("mode", self.mode, "txt2img or img2img")
        if self.mode == "img2img":
            if self.init_image is None:
                raise InputError("init_image", None, "an image when mode is img2img")
            if not 0.0 < float(self.strength) <= 1.0:
                raise InputError("strength", self.strength, "greater than 0 and at most 1")
            if int(self.steps * self.strength) < 1:
                raise InputError("strength", self.strength, f"at least 1/steps ({1 / self.steps:.3f}) so one step runs")
        scale, max_scale = self.control_scale, limits.max_control_scale
        if not isinstance(scale, int | float) or not 0.0 <= scale <= max_scale:
            raise InputError("control_scale", scale, f"a number from 0 to {max_scale}")


@dataclass
class GenerationResult:
    """Images of one diffusers call, in request order.

    Attributes:
        images: One RGB image per request.
        seeds: The seed each image was generated with.
        timings: Seconds spent: ``total_s``, ``denoise_s`` (first to last step) and ``steps``.
        batch_size: How many requests shared the call.
        costs_usd: What each image cost on a paid API (its own figure, else the configured price); None locally.
        backend: The remote backend that made them (``"fal"``, ...); None for the local pipeline.
    """

    images: list[Image.Image]
    seeds: list[int]
    timings: dict[str, float]
    batch_size: int
    costs_usd: list[float | None] | None = None
    backend: str | None = None
