"""Styles: how a theme changes a prompt.

A :class:`Style` is the resolved, flat form of a theme (inheritance and variations are resolved by the
theme service before a style reaches the composer). Applying a style is pure string work.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Style", "apply_style"]


@dataclass(frozen=True)
class Style:
    """A resolved style.

    Attributes:
        name: Identifier, recorded with the image.
        prompt_template: Template with a ``{prompt}`` placeholder, e.g. ``"{prompt}, oil painting"``.
        negative_prompt: Appended to the request's negative prompt.
        settings: Generation defaults the style prefers (``steps``, ``guidance``, ``scheduler``); a
            request's explicit values win.
    """

    name: str
    prompt_template: str = "{prompt}"
    negative_prompt: str = ""
    settings: dict[str, object] = field(default_factory=dict)


def apply_style(style: Style, prompt: str, negative_prompt: str) -> tuple[str, str]:
    """Returns ``(prompt, negative_prompt)`` with the style applied.

    Args:
        style: The style.
        prompt: The user's prompt.
        negative_prompt: The user's (or default) negative prompt.

    Raises:
        ValueError: The template has no ``{prompt}`` placeholder.
    """
    if "{prompt}" not in style.prompt_template:
        raise ValueError(f"style {style.name!r}: prompt_template must contain '{{prompt}}'")
    styled = style.prompt_template.replace("{prompt}", prompt.strip())
    negatives = [n for n in (negative_prompt.strip(), style.negative_prompt.strip()) if n]
    return styled, ", ".join(negatives)
