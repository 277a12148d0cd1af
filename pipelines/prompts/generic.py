"""Prompt and settings composition: from a partial request to a full :class:`GenerationRequest`.

Pure functions: defaults, size presets and aspect ratios, the default negative prompt, an optional style,
and the canonical request hash that identifies a generation (the result-cache key).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from pipelines.canonical import canonical_hash
from pipelines.errors import InputError
from pipelines.request import GenerationLimits, GenerationRequest
from pipelines.styles import Style, apply_style

__all__ = ["HASH_VERSION", "Defaults", "PartialRequest", "compose", "fit_aspect_ratio", "request_hash"]

HASH_VERSION = "v1"
"""Prefix of every request hash; bump it when the hashed fields change meaning."""


@dataclass(frozen=True)
class Defaults:
    """What a request gets for every field it leaves out."""

    width: int = 1024
    height: int = 1024
    steps: int = 30
    guidance: float = 5.0
    scheduler: str = "euler"
    negative_prompt: str = ""
    base_pixels: int = 1024 * 1024
    model: str = "default"


@dataclass(frozen=True)
class PartialRequest:
    """A request as a user sends it: every field but the prompt is optional."""

    prompt: str
    negative_prompt: str | None = None
    width: int | None = None
    height: int | None = None
    size: str | None = None
    aspect_ratio: str | None = None
    steps: int | None = None
    guidance: float | None = None
    seed: int | None = None
    scheduler: str | None = None


def fit_aspect_ratio(ratio: str, base_pixels: int) -> tuple[int, int]:
    """The size with aspect ``ratio`` ("W:H") closest to ``base_pixels`` pixels, both sides multiples of 64.

    SDXL was trained on buckets of about one megapixel with sides in steps of 64; fitting to them keeps
    compositions sane.

    Raises:
        InputError: ``ratio`` is not "W:H" with positive numbers, or is more extreme than 4:1.
    """
    try:
        w_part, h_part = ratio.split(":")
        w, h = float(w_part), float(h_part)
    except ValueError:
        raise InputError("aspect_ratio", ratio, "'W:H' such as '16:9'") from None
    if not (math.isfinite(w) and math.isfinite(h)) or w <= 0 or h <= 0 or max(w / h, h / w) > 4:
        raise InputError("aspect_ratio", ratio, "positive sides, at most 4:1")
    height = (base_pixels * h / w) ** 0.5
    width = height * w / h
    return max(64, round(width / 64) * 64), max(64, round(height / 64) * 64)


def compose(
    partial: PartialRequest,
    defaults: Defaults,
    seed: int,
    presets: Mapping[str, tuple[int, int]] | None = None,
    style: Style | None = None,
    limits: GenerationLimits | None = None,
) -> GenerationRequest:
    """Builds the full generation request.

    Size comes from, in order: explicit width and height, a named ``size`` preset, an ``aspect_ratio``
    fitted to the default pixel budget, the defaults. An explicit width or height alone keeps the other
    default. A style rewrites the prompt and may supply settings the request left out.

    Args:
        partial: The user's request.
        defaults: Values for omitted fields.
        seed: Seed to use when the request has none (chosen by the caller, recorded with the image).
        presets: Named sizes.
        style: A resolved theme style, or None.
        limits: The bounds the request is checked against (the generator's); the defaults when None.

    Returns:
        A request that passes :meth:`GenerationRequest.check`.

    Raises:
        InputError: A field is invalid; the error names it.
    """
    presets = presets or {}
    if partial.size is not None and partial.aspect_ratio is not None:
        raise InputError("aspect_ratio", partial.aspect_ratio, "omitted when size is given")
    width, height = defaults.width, defaults.height
    if partial.size is not None:
        if partial.size not in presets:
            raise InputError("size", partial.size, f"one of {sorted(presets)}")
        width, height = presets[partial.size]
    elif partial.aspect_ratio is not None:
        width, height = fit_aspect_ratio(partial.aspect_ratio, defaults.base_pixels)
    width = partial.width if partial.width is not None else width
    height = partial.height if partial.height is not None else height

    style_settings = dict(style.settings) if style else {}
    prompt = partial.prompt.strip()
    if not prompt:
        raise InputError("prompt", partial.prompt, "a non-empty string")
    negative = partial.negative_prompt if partial.negative_prompt is not None else defaults.negative_prompt
    if style is not None:
        prompt, negative = apply_style(style, prompt, negative)

    def pick(value: object, name: str, default: object) -> object:
        return value if value is not None else style_settings.get(name, default)

    request = GenerationRequest(
        prompt=prompt,
        negative_prompt=negative,
        width=width,
        height=height,
        steps=int(pick(partial.steps, "steps", defaults.steps)),  # type: ignore[call-overload]
        guidance=float(pick(partial.guidance, "guidance", defaults.guidance)),  # type: ignore[arg-type]
        seed=partial.seed if partial.seed is not None else seed,
        scheduler=str(pick(partial.scheduler, "scheduler", defaults.scheduler)),
        model=defaults.model,
    )
    request.check(limits or GenerationLimits())
    return request


def request_hash(
    request: GenerationRequest, init_image_sha256: str | None = None, control_image_sha256: str | None = None
) -> str:
    """The canonical hash of everything that determines a generated image.

    Equal hashes mean equal images (same model, same settings, same seed). Output encoding is not part of
    it: one image, many formats.

    Args:
        request: A composed request.
        init_image_sha256: Content hash of the img2img source image, if any.
        control_image_sha256: Content hash of the ControlNet conditioning image, if any.

    Returns:
        ``"v1:" + sha256 hex``.
    """
    fields = {
        "model": request.model,
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "width": request.width,
        "height": request.height,
        "steps": request.steps,
        "guidance": round(float(request.guidance), 6),
        "seed": request.seed,
        "scheduler": request.scheduler,
        "mode": request.mode,
        "strength": round(float(request.strength), 6) if request.mode == "img2img" else None,
        "init_image": init_image_sha256,
    }
    if control_image_sha256 is not None:  # only present when used, so older hashes stay valid
        fields["control_image"] = control_image_sha256
        fields["control_scale"] = round(float(request.control_scale), 6)
    return f"{HASH_VERSION}:{canonical_hash(fields)}"
