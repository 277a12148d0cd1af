"""The one surface every image backend offers: the local SDXL pipeline now, the paid remote APIs later.

A backend says what it can do (:class:`Capability`), refuses a request it cannot honour before any work
(``check`` raises :class:`pipelines.errors.InputError` naming the field), and generates a batch of requests
that share a :class:`pipelines.request.BatchKey`, reporting each step to ``on_step`` (returning False from
it cancels the call with :class:`pipelines.errors.Cancelled`).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from pipelines.request import GenerationRequest, GenerationResult, StepCallback

__all__ = ["Capability", "ImageBackend"]


class Capability(enum.StrEnum):
    """What a backend can be asked to do."""

    TXT2IMG = "txt2img"
    IMG2IMG = "img2img"
    CONTROLNET = "controlnet"
    INPAINT = "inpaint"
    UPSCALE = "upscale"
    FACE_FIX = "face_fix"


@runtime_checkable
class ImageBackend(Protocol):
    """A source of generated images.

    Attributes:
        name: The backend's name, recorded with every image it makes (``"sdxl:<model>"``, ``"fal"``, ...).
        capabilities: What it can do; a request needing anything else is refused by :meth:`check`.
    """

    @property
    def name(self) -> str: ...

    @property
    def capabilities(self) -> frozenset[Capability]: ...

    def check(self, request: GenerationRequest) -> None:
        """Raises :class:`pipelines.errors.InputError` if ``request`` cannot run here; does no work."""
        ...

    def generate(self, requests: Sequence[GenerationRequest], on_step: StepCallback | None = None) -> GenerationResult:
        """Generates ``requests`` (one batch key) in one call; images come back in request order."""
        ...
