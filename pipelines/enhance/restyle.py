"""Restyle settings: re-render an image into a theme by image-to-image, optionally holding its structure with the
depth ControlNet conditioned on a structure map of the image (pipelines/enhance/structure.py)."""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.errors import InputError

__all__ = ["RestyleSettings"]


@dataclass(frozen=True)
class RestyleSettings:
    """How to restyle.

    Attributes:
        theme: The theme to render into (name or id, optional ``@version``).
        variation: One of its variations.
        strength: How far image-to-image moves from the image (0 keeps it, 1 ignores it).
        keep_structure: Also condition on the image's structure map through the depth ControlNet (when the
            generator has one; without one the structure is held by the strength alone).
        control_scale: The ControlNet conditioning scale with ``keep_structure``.
    """

    theme: str
    variation: str | None = None
    strength: float = 0.6
    keep_structure: bool = False
    control_scale: float = 0.8

    def check(self) -> None:
        """Raises :class:`InputError` naming the first field out of range."""
        if not self.theme:
            raise InputError("theme", self.theme, "a theme name or id")
        if not (0 < self.strength <= 1):
            raise InputError("strength", self.strength, "more than 0, at most 1")
        if not (0 <= self.control_scale <= 2):
            raise InputError("control_scale", self.control_scale, "0 to 2")
