"""Plain data that crosses deployment handles (pickled by Ray): no Starlette or pydantic objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pipelines.prompts import FigurePrompt, PartialRequest
from pipelines.request import GenerationRequest

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["ComposedRequest", "FigureCompose", "GeneratedImage", "PartialRequest"]


@dataclass(frozen=True)
class FigureCompose:
    """A portrait, creature or item for the composer: its subject prompt, the seed of this family member and
    the size the request gave (if any).

    Attributes:
        figure: The kind's subject prompt and framing (pipelines/prompts/figures.py).
        seed: The seed of this image.
        width: Explicit width, or None for the theme's or the framing's size.
        height: Explicit height, or None.
    """

    figure: FigurePrompt
    seed: int
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class ComposedRequest:
    """The composer's output: a full generation request and its identity.

    Attributes:
        request: What the generator runs.
        request_hash: Canonical hash of ``request`` (the result-cache key).
        request_id: Unique id of this attempt, used to cancel it.
        raw: An intermediate image (a hires tile, a face crop) that is blended into another and never stored:
            the generator answers its pixels (``GeneratedImage.pixels``) and spares the PNG round trip.
        backend: Where it runs: ``local`` (the generator), a paid API's name (``fal``...), or ``auto``
            (``remote.routing``).
    """

    request: GenerationRequest
    request_hash: str
    request_id: str
    raw: bool = False
    backend: str = "local"


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
        pixels: The RGB image itself, for a ``raw`` request (``png`` is then empty).
        cost_usd: What a paid API charged for it; None for the local pipeline.
        backend: The remote backend that drew it (``"fal"``, ...); None for the local pipeline.
    """

    png: bytes
    seed: int
    width: int
    height: int
    request_hash: str
    batch_size: int
    timings: dict[str, float] = field(default_factory=dict)
    pixels: Image.Image | None = field(default=None, repr=False, compare=False)
    cost_usd: float | None = None
    backend: str | None = None
