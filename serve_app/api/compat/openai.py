"""The OpenAI-compatible images API: ``POST /v1/images/generations``, ``POST /v1/images/edits``, ``GET /v1/models``
and ``GET /v1/images/files/{name}`` (the signed, expiring URLs of ``response_format: url``).

Every request is one job of the ``generate`` kind, submitted and awaited like ``POST /api/v2/images/generate``: it
is durable, batched, cached and moderated like any other. ``n`` images are one job (a family of seeds ``seed``,
``seed + 1``, ... queued together, so the generator draws them in one batch), never a loop of requests.

Mapping (docs/COMPAT.md has the full table):

- ``model``: OpenAI's names (``dall-e-2``, ``dall-e-3``, ``gpt-image-1``...) and the generator's own model name are
  the configured default; ``local`` or a configured paid API's name picks that backend; any other value is a
  limner theme (``ink-and-wash``, ``name@version``). An unknown name is a 404 ``model_not_found``.
- ``size``: ``WxH`` in pixels, checked against the generator's limits; ``auto`` or none is the default size (for an
  edit: the image's own, fitted to the limits). Anything else is a 400 naming ``size``, never a silent default.
- ``quality``: a preset of steps and upscale (:data:`QUALITY`): ``low`` half the default steps, ``standard`` /
  ``medium`` / ``auto`` the default, ``hd`` / ``high`` the hires fix (drawn at half the size, then upscaled 2x to
  it by the hires repaint), ``xhigh`` / ``max`` the hires fix with 1.5x the steps. An explicit ``steps`` or
  ``num_inference_steps`` replaces the preset, so the same request through the native API gives the same pixels.
- ``style``: ``vivid`` and ``natural`` keep the default look; any other value is a limner theme.
- ``response_format``: ``b64_json`` (default) or ``url``, an absolute URL to ``/v1/images/files/<sha256>.<ext>``
  that needs no API key: it carries its expiry and an HMAC-SHA256 over the asset name and the expiry, valid for
  ``ingress.signed_url_ttl_s``. The key is ``LIMNER_URL_SECRET``; without it each process draws a random one, so
  its URLs stop working when it restarts and are refused by every other replica (set it when there are several).
- Extension keys of the peers (LocalAI, SD.Next, Forge): ``negative_prompt``, ``seed``, ``steps`` /
  ``num_inference_steps``, ``guidance_scale``, and for edits ``strength``. Unknown keys are ignored and numeric
  strings coerced (``"n": "2"``).
- Edits: ``image`` is the image-to-image start. With a ``mask``, the local backend cannot inpaint, so the result is
  image-to-image composited through the mask: where the mask is transparent (OpenAI's convention; white, for a
  mask without alpha) the new pixels, elsewhere the original's, exactly. The composite is stored as a version of
  the generated image.

Errors on these routes answer OpenAI's shape ``{"error": {"message", "type", "param", "code"}}`` (FastAPI's
request validation included, as 400 like OpenAI's), through :class:`OpenAIRoute`; every other route keeps the
app's one shape.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import math
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from pipelines import encode
from pipelines.encode import FORMATS
from pipelines.errors import field_path
from serve_app.api.deps import EdgeDep
from serve_app.api.protocol import MAX_GUIDANCE, MAX_STEPS
from serve_app.enhance.models import UpscaleBody
from serve_app.errors import Forbidden, InvalidRequest, NotFound, ServiceError, from_exception, from_http_exception
from serve_app.jobs.kinds.generate import MAX_COUNT, GenerateRequest
from serve_app.jobs.service import SubmitOptions
from serve_app.runtime import Edge
from serve_app.schemas import PartialRequest
from serve_app.themes.base import ThemeNotFound

__all__ = [
    "DEFAULT_MODELS",
    "QUALITY",
    "ImageData",
    "ImageEditFields",
    "ImageGenerationRequest",
    "ImagesResponse",
    "ModelCard",
    "ModelList",
    "OpenAIError",
    "OpenAIErrorResponse",
    "OpenAIRoute",
    "QualityPreset",
    "default_model",
    "router",
    "sign",
]

logger = logging.getLogger("ray.serve.limner.openai")

DEFAULT_MODELS = ("dall-e-2", "dall-e-3", "gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5")
"""OpenAI's image model names: each is the configured default model."""


@dataclass(frozen=True)
class QualityPreset:
    """What a ``quality`` value runs.

    Attributes:
        steps: Factor on the default steps (``composer.steps``), rounded, at least 1 and at most
            ``generator.limits.max_steps``; 1.0 leaves the steps to the composer (the native API's default).
        hires: Draw at half the size and upscale 2x to it with the hires repaint (A1111's hires fix), so the answer
            keeps the asked size. Only where both halves are multiples of 8 within the limits; else the steps alone.
    """

    steps: float
    hires: bool = False


QUALITY: Mapping[str, QualityPreset] = {
    "low": QualityPreset(0.5),
    "auto": QualityPreset(1.0),
    "standard": QualityPreset(1.0),
    "medium": QualityPreset(1.0),
    "hd": QualityPreset(1.0, hires=True),
    "high": QualityPreset(1.0, hires=True),
    "xhigh": QualityPreset(1.5, hires=True),
    "max": QualityPreset(1.5, hires=True),
}
"""``quality`` → its preset (docs/COMPAT.md has the table)."""

HIRES_DENOISE = 0.35
"""Denoising strength of the hires repaint of ``hd`` and above: adds detail, keeps the composition."""

NATURAL_STYLES = ("vivid", "natural")
"""OpenAI's ``style`` values: the default look (no theme)."""

MAX_FORM_PARTS = 64
"""Most parts of an edit's multipart body (more is a 400: no client sends that many)."""

_SIZE = re.compile(r"^(\d{1,5})x(\d{1,5})$")
_FILES = "/v1/images/files"


# -- errors ------------------------------------------------------------------------------------------------


class OpenAIError(BaseModel):
    message: str = Field(..., description="What went wrong.")
    type: str = Field(..., description="OpenAI's error type: invalid_request_error, server_error, ...")
    param: str | None = Field(None, description="The request field at fault.", examples=["size"])
    code: str | None = Field(None, description="A stable code: invalid_api_key, model_not_found, ...")


class OpenAIErrorResponse(BaseModel):
    """OpenAI's error body."""

    error: OpenAIError


_DESCRIPTIONS = {
    400: "The request is invalid (any field, FastAPI's validation included); `param` names it.",
    401: "No valid API key (`Authorization: Bearer <key>`).",
    402: "A paid API's credits or this service's daily budget for it are spent.",
    403: "The key lacks the scope; for a signed URL: a wrong signature or an expired URL.",
    404: "No such model or image.",
    413: "The body is longer than `ingress.max_body_bytes`.",
    415: "The body is not JSON.",
    429: "Too many requests; retry after `Retry-After` seconds.",
    500: "Generation failed.",
    502: "A paid API refused the service's key or kept failing.",
    503: "Overloaded or not ready; retry after `Retry-After` seconds.",
    504: "The job did not finish in time; it goes on.",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": OpenAIErrorResponse, "description": _DESCRIPTIONS[code]} for code in codes}


_TYPES = {401: "invalid_request_error", 402: "insufficient_quota", 429: "requests"}
_CODES = {
    "unauthorized": "invalid_api_key",
    "forbidden": "insufficient_permissions",
    "moderation": "content_policy_violation",
    "rate_limited": "rate_limit_exceeded",
}
_PARAMS = {
    "width": "size",
    "height": "size",
    "count": "n",
    "guidance": "guidance_scale",
    "init_image": "image",
    "theme": "model",
}
"""Field names of the generate kind → the OpenAI field they came from."""


def _openai(err: ServiceError) -> JSONResponse:
    """``err`` in OpenAI's shape. OpenAI answers 400 for every invalid field: a 422 becomes a 400."""
    status = 400 if err.status_code == 422 else err.status_code
    kind = "server_error" if status >= 500 else _TYPES.get(status, "invalid_request_error")
    param = err.param.split(".", 1)[0] if err.param else None
    param = _PARAMS.get(param, param) if param else None
    body = OpenAIErrorResponse(
        error=OpenAIError(message=err.message, type=kind, param=param, code=_CODES.get(err.error_type, err.error_type))
    )
    return JSONResponse(body.model_dump(), status_code=status, headers=err.headers)


def _validation(exc: RequestValidationError | ValidationError) -> ServiceError:
    errors = exc.errors()
    first: Any = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    loc = [p for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
    if first.get("type") == "json_invalid":
        return InvalidRequest(f"body: not valid JSON ({first.get('msg')})", param="body")
    param = field_path(*loc) or None
    return InvalidRequest(f"{param}: {first.get('msg')}" if param else str(first.get("msg")), param=param)


def _as_service_error(exc: Exception) -> ServiceError:
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, RequestValidationError | ValidationError):
        return _validation(exc)
    if isinstance(exc, StarletteHTTPException):
        return from_http_exception(exc)
    return from_exception(exc)


class OpenAIRoute(APIRoute):
    """Answers every error of its routes in OpenAI's shape: the route's own, the app-wide auth dependency's
    (401, 403, 429) and FastAPI's request validation (400)."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                err = _as_service_error(exc)
                answer = _openai(err)
                if answer.status_code >= 500 and answer.status_code != 503:
                    logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
                else:
                    logger.warning(
                        "%s %s → %d %s: %s", request.method, request.url.path, answer.status_code, err.error_type, err
                    )
                return answer

        return handle


router = APIRouter(prefix="/v1", tags=["openai"], route_class=OpenAIRoute)


# -- request and response models -----------------------------------------------------------------------------


def _number(value: Any) -> Any:
    """A numeric string as its number (``"7.0"`` → 7.0, ``"2"`` → 2); anything else as it is."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                return value
            return int(number) if number.is_integer() and abs(number) < 2**63 else number
    return value


def _integral(value: Any) -> Any:
    value = _number(value)
    return int(value) if isinstance(value, float) and value.is_integer() and abs(value) < 2**63 else value


_Int = Annotated[int, BeforeValidator(_integral)]
_Float = Annotated[float, BeforeValidator(_number)]


class ImageGenerationRequest(BaseModel):
    """Body of ``POST /v1/images/generations`` (and the text fields of an edit). Unknown keys are ignored."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [{"prompt": "a red dragon over a ruined castle", "n": 2, "size": "64x64"}]},
    )

    prompt: str = Field(..., min_length=1, max_length=32000, description="What to draw.")
    model: str | None = Field(
        None, max_length=140, description="dall-e-2/dall-e-3/gpt-image-1 (the default model), a backend or a theme."
    )
    n: _Int | None = Field(1, ge=1, le=MAX_COUNT, description="Images to make, one job (1 to 10).")
    size: str | None = Field(None, max_length=32, description="`WxH` in pixels, or `auto` (the default size).")
    quality: str | None = Field(None, max_length=32, description="A step preset: low, standard/medium, hd/high, ...")
    style: str | None = Field(None, max_length=140, description="vivid/natural (the default look) or a theme.")
    response_format: Literal["b64_json", "url"] | None = Field(None, description="b64_json (default) or url.")
    output_format: Literal["png", "webp", "jpeg"] | None = Field(None, description="Encoding of the images (png).")
    user: str | None = Field(None, max_length=256, description="The end user (accepted, not stored).")
    negative_prompt: str | None = Field(None, max_length=2000, description="What to avoid (extension).")
    seed: _Int | None = Field(None, ge=-1, lt=2**63, description="Seed of the first image; -1 or none: random.")
    steps: _Int | None = Field(None, ge=1, le=MAX_STEPS, description="Denoising steps (overrides quality).")
    num_inference_steps: _Int | None = Field(None, ge=1, le=MAX_STEPS, description="Same as steps.")
    guidance_scale: _Float | None = Field(
        None, ge=0, le=MAX_GUIDANCE, allow_inf_nan=False, description="Classifier-free guidance scale."
    )


class ImageEditFields(ImageGenerationRequest):
    """The text fields of ``POST /v1/images/edits``."""

    strength: _Float | None = Field(
        None, ge=0, le=1, allow_inf_nan=False, description="How far image-to-image moves from the image (0.75)."
    )


class ImageData(BaseModel):
    b64_json: str | None = Field(None, description="The image, base64 (response_format b64_json).")
    url: str | None = Field(None, description="A signed URL that expires (response_format url).")
    revised_prompt: str | None = Field(None, description="The prompt as drawn (a theme's words included).")


class ImagesResponse(BaseModel):
    """OpenAI's images answer."""

    created: int = Field(..., description="Unix seconds.")
    data: list[ImageData]


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "limner"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# -- mapping ---------------------------------------------------------------------------------------------------


def default_model(edge: Edge) -> str:
    """The generator's model name (``generator.model_name``, else the model setting's last path part)."""
    generator = edge.config.generator
    return generator.model_name or generator.model.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class _Plan:
    request: GenerateRequest
    count: int
    theme_from: str | None  # the OpenAI field that named the theme


def _size(value: str | None) -> tuple[int, int] | None:
    if value is None or value.strip().lower() == "auto":
        return None
    match = _SIZE.match(value.strip().lower())
    if match is None:
        raise InvalidRequest(
            f"size={value!r} is not allowed: 'WxH' in pixels (such as '1024x1024') or 'auto'", param="size"
        )
    return int(match[1]), int(match[2])


def _quality(edge: Edge, body: ImageGenerationRequest) -> QualityPreset | None:
    """The preset ``quality`` names (None: none, or explicit steps replace it)."""
    if body.quality is None:
        return None
    preset = QUALITY.get(body.quality.strip().lower())
    if preset is None:
        allowed = ", ".join(QUALITY)
        raise InvalidRequest(f"quality={body.quality!r} is not allowed: one of {allowed}", param="quality")
    explicit = body.steps if body.steps is not None else body.num_inference_steps
    return None if explicit is not None else preset


def _steps(edge: Edge, body: ImageGenerationRequest, preset: QualityPreset | None) -> int | None:
    if preset is None:
        return body.steps if body.steps is not None else body.num_inference_steps
    if preset.steps == 1.0:
        return None
    steps = round(edge.config.composer.steps * preset.steps)
    return max(1, min(steps, edge.config.generator.limits.max_steps))


def _hires(edge: Edge, size: tuple[int, int] | None) -> tuple[tuple[int, int], UpscaleBody] | None:
    """The half size to draw at and the 2x hires step up to ``size`` (the default size when None); None when a
    half is no multiple of 8 or below the limits."""
    width, height = size if size is not None else (edge.config.composer.width, edge.config.composer.height)
    half = (width // 2, height // 2)
    if (
        half[0] * 2 != width
        or half[1] * 2 != height
        or any(side % 8 or side < edge.config.generator.limits.min_size for side in half)
    ):
        return None
    native = edge.config.enhancer.native_size or edge.config.composer.width  # as the enhancer reads it
    step = UpscaleBody(
        scale=2.0,
        method="hires",
        denoise=HIRES_DENOISE,
        # Tiles of the model's native side (512 at most), overlapping by a quarter of it (64 at most).
        tile=min(512, native),
        overlap=min(64, native // 4 // 8 * 8),
    )
    return half, step


async def _theme_or_backend(edge: Edge, body: ImageGenerationRequest) -> tuple[str | None, str | None, str | None]:
    """(theme, backend, the field that named the theme) of ``model`` and ``style``."""
    theme = backend = source = None
    model = (body.model or "").strip()
    if model and model.lower() not in DEFAULT_MODELS and model != default_model(edge):
        if model == "local" or model in edge.config.remote.configured:
            backend = model
        else:
            theme, source = model, "model"
    style = (body.style or "").strip()
    if style and style.lower() not in NATURAL_STYLES:
        if theme is not None:
            raise InvalidRequest(f"style={style!r}: the model {model!r} already names a theme", param="style")
        theme, source = style, "style"
    if theme is not None:
        try:
            await edge.themes.get(theme)
        except ThemeNotFound:
            if source == "model":
                err = NotFound(f"The model {model!r} does not exist: see GET /v1/models.", param="model")
                err.error_type = "model_not_found"
                raise err from None
            raise InvalidRequest(f"style={style!r} is not allowed: vivid, natural or a theme", param="style") from None
    return theme, backend, source


async def _plan(
    edge: Edge,
    body: ImageGenerationRequest,
    *,
    size: tuple[int, int] | None,
    init_png: bytes | None = None,
    strength: float | None = None,
) -> _Plan:
    theme, backend, source = await _theme_or_backend(edge, body)
    preset = _quality(edge, body)
    hires = _hires(edge, size) if preset is not None and preset.hires else None
    enhance: tuple[UpscaleBody, ...] = ()
    if hires is not None:
        size, step = hires
        enhance = (step,)
    width, height = size if size is not None else (None, None)
    partial = PartialRequest(
        prompt=body.prompt,
        negative_prompt=body.negative_prompt,
        width=width,
        height=height,
        steps=_steps(edge, body, preset),
        guidance=body.guidance_scale,
        seed=None if body.seed is None or body.seed < 0 else body.seed,
    )
    count = body.n or 1
    request = GenerateRequest(
        partial,
        format=body.output_format or "png",
        theme=theme,
        backend=backend,
        init_png=init_png,
        strength=strength,
        count=count,
        enhance=enhance,
    )
    return _Plan(request, count, source)


async def _submit(edge: Edge, plan: _Plan) -> tuple[list[str], str]:
    """Runs the plan as one job; returns its images (one per family member, in seed order) and the prompt drawn."""
    jobs = edge.jobs
    try:
        job, payload = await jobs.submit(
            "generate", plan.request, SubmitOptions(priority=jobs.config.generate_priority)
        )
    except Exception as exc:
        err = _as_service_error(exc)
        if err.param == "theme" and plan.theme_from is not None:
            err.param = plan.theme_from
        raise err from exc
    result = await jobs.result(job.id, jobs.config.generate_timeout_s)
    generation = getattr(payload, "generation", {})
    return list(result.images[: plan.count]), str(generation.get("prompt", plan.request.partial.prompt))


def _url_key(request: Request) -> bytes:
    """The URL-signing key: ``LIMNER_URL_SECRET``, else one random key per process (kept on the app)."""
    key: bytes | None = getattr(request.app.state, "openai_url_key", None)
    if key is None:
        from serve_app.config import Settings

        configured = Settings().url_secret
        if configured is not None and configured.get_secret_value():
            key = configured.get_secret_value().encode()
        else:
            logger.warning(
                "LIMNER_URL_SECRET is not set: signed image URLs use a random per-process key (they stop working "
                "when this process restarts, and other replicas refuse them)"
            )
            key = secrets.token_bytes(32)
        request.app.state.openai_url_key = key
    return key


def sign(key: bytes, name: str, expires: int) -> str:
    """The signature of a file URL: hex HMAC-SHA256 of ``"<name>\\n<expires>"``."""
    return hmac.new(key, f"{name}\n{expires}".encode(), hashlib.sha256).hexdigest()


def _signed_url(request: Request, edge: Edge, sha256: str, ext: str) -> str:
    name = f"{sha256}.{ext}"
    expires = int(time.time() + edge.config.ingress.signed_url_ttl_s)
    base = str(request.base_url).rstrip("/")
    return f"{base}{_FILES}/{name}?expires={expires}&signature={sign(_url_key(request), name, expires)}"


async def _answer(
    request: Request,
    edge: Edge,
    image_ids: list[str],
    revised_prompt: str,
    body: ImageGenerationRequest,
    masked: tuple[Any, Any] | None = None,
) -> ImagesResponse:
    fmt = body.output_format or "png"
    data = []
    for image_id in image_ids:
        image, asset = await edge.images.image_bytes(image_id, "png" if masked is not None else fmt)
        if masked is not None:  # composited from the lossless PNG, then encoded as asked
            png = await asyncio.to_thread(_composite_png, masked[0], asset.data, masked[1])
            derived = await edge.stages.derive(str(image.id), png, kind="openai_edit", settings={"mask": True})
            image, asset = await edge.images.image_bytes(derived, fmt)
        if body.response_format == "url":
            data.append(
                ImageData(url=_signed_url(request, edge, asset.sha256, asset.ext), revised_prompt=revised_prompt)
            )
        else:
            data.append(ImageData(b64_json=base64.b64encode(asset.data).decode(), revised_prompt=revised_prompt))
    return ImagesResponse(created=int(time.time()), data=data)


def _composite_png(original: Any, generated_png: bytes, mask: Any) -> bytes:
    """The generated image where ``mask`` marks an edit (transparent; white for a mask without alpha), ``original``
    elsewhere, pixel for pixel, at the generated image's size; as PNG."""
    from PIL import Image, ImageOps

    generated = encode.decode(generated_png)
    size = generated.size
    if mask.mode in ("RGBA", "LA", "PA") or (mask.mode == "P" and "transparency" in mask.info):
        keep = mask.convert("RGBA").getchannel("A")
    else:
        keep = ImageOps.invert(mask.convert("L"))
    keep = keep.resize(size, Image.Resampling.BILINEAR) if keep.size != size else keep
    start = original.convert("RGB")
    start = start.resize(size, Image.Resampling.LANCZOS) if start.size != size else start
    return encode.encode(Image.composite(start, generated.convert("RGB"), keep), "png")


# -- multipart -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Part:
    data: bytes
    filename: str | None


async def _multipart(request: Request) -> dict[str, list[_Part]]:
    """The parts of a ``multipart/form-data`` body by field name (``image[]`` is ``image``), parsed by Starlette's
    form parser (python-multipart); files past 1 MiB spool to disk, the body limit applies as to every route.

    Raises:
        InvalidRequest: Not multipart, or a body the parser refuses (malformed, too many parts).
    """
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "multipart/form-data":
        raise InvalidRequest("An edit is a multipart/form-data body with image, prompt and an optional mask.", "image")
    try:
        form = await request.form(max_files=MAX_FORM_PARTS, max_fields=MAX_FORM_PARTS)
    except MultiPartException as exc:
        raise InvalidRequest(f"The multipart body cannot be read: {exc.message}", param="body") from None
    parts: dict[str, list[_Part]] = {}
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                part = _Part(await value.read(), value.filename)
            else:
                part = _Part(value.encode("utf-8"), None)
            parts.setdefault(name.removesuffix("[]"), []).append(part)
    finally:
        await form.close()
    return parts


def _text_fields(parts: dict[str, list[_Part]]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name, values in parts.items():
        if name in ("image", "mask"):
            continue
        try:
            fields[name] = values[0].data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest(f"{name}: not UTF-8 text", param=name) from None
    return fields


def _decode(edge: Edge, data: bytes, param: str) -> Any:
    try:
        return encode.decode(data, max_pixels=edge.config.ingress.max_image_pixels)
    except encode.ImageTooLarge as exc:
        raise InvalidRequest(f"{param}: {exc}", param=param) from None
    except (OSError, ValueError):
        raise InvalidRequest(f"{param}: <{len(data)} bytes> is not an image (PNG, JPEG, WebP)", param=param) from None


def _fitted(edge: Edge, width: int, height: int) -> tuple[int, int]:
    """An edit's ``auto`` size: the image's, scaled down into the generator's limits, sides multiples of 8."""
    limits = edge.config.generator.limits
    scale = min(1.0, limits.max_size / max(width, height), math.sqrt(limits.max_pixels / (width * height)))
    side = max(8, limits.min_size)
    return max(side, int(width * scale) // 8 * 8), max(side, int(height * scale) // 8 * 8)


# -- routes ----------------------------------------------------------------------------------------------------

_BODY = (400, 401, 402, 403, 404, 413, 415, 429, 500, 502, 503, 504)


@router.post(
    "/images/generations",
    summary="Create images (OpenAI-compatible)",
    response_model=ImagesResponse,
    response_model_exclude_none=True,
    responses=_errors(*_BODY),
)
async def create_images(body: ImageGenerationRequest, request: Request, edge: EdgeDep) -> ImagesResponse:
    """OpenAI's ``images.generate``: ``n`` images as one generate job; ``b64_json`` or a signed ``url`` each."""
    plan = await _plan(edge, body, size=_size(body.size))
    image_ids, revised = await _submit(edge, plan)
    return await _answer(request, edge, image_ids, revised, body)


_EDIT_FIELDS = {
    "type": "object",
    "required": ["image", "prompt"],
    "properties": {
        "image": {"type": "string", "format": "binary", "description": "The start image (PNG, JPEG, WebP)."},
        "mask": {"type": "string", "format": "binary", "description": "Transparent where to edit."},
        "prompt": {"type": "string", "minLength": 1},
        "model": {"type": "string"},
        "n": {"type": "integer", "minimum": 1, "maximum": MAX_COUNT},
        "size": {"type": "string", "description": "`WxH` or `auto` (the image's size)."},
        "quality": {"type": "string"},
        "response_format": {"type": "string", "enum": ["b64_json", "url"]},
        "output_format": {"type": "string", "enum": ["png", "webp", "jpeg"]},
        "user": {"type": "string"},
        "negative_prompt": {"type": "string"},
        "seed": {"type": "integer"},
        "steps": {"type": "integer"},
        "num_inference_steps": {"type": "integer"},
        "guidance_scale": {"type": "number"},
        "strength": {"type": "number", "minimum": 0, "maximum": 1},
    },
}


@router.post(
    "/images/edits",
    summary="Edit an image (OpenAI-compatible)",
    response_model=ImagesResponse,
    response_model_exclude_none=True,
    responses=_errors(*_BODY),
    openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": _EDIT_FIELDS}}}},
)
async def edit_images(request: Request, edge: EdgeDep) -> ImagesResponse:
    """OpenAI's ``images.edit``: image-to-image from ``image``; with a ``mask``, composited through it (the local
    backend does not inpaint)."""
    parts = await _multipart(request)
    body = ImageEditFields.model_validate(_text_fields(parts))
    images = parts.get("image")
    if not images or not images[0].data:
        raise InvalidRequest("image: an image file is required", param="image")
    start = _decode(edge, images[0].data, "image")
    masks = parts.get("mask")
    mask = _decode(edge, masks[0].data, "mask") if masks and masks[0].data else None
    size = _size(body.size) or _fitted(edge, *start.size)
    plan = await _plan(edge, body, size=size, init_png=images[0].data, strength=body.strength)
    image_ids, revised = await _submit(edge, plan)
    return await _answer(request, edge, image_ids, revised, body, None if mask is None else (start, mask))


@router.get(
    "/models", summary="List models (OpenAI-compatible)", response_model=ModelList, responses=_errors(401, 403, 429)
)
async def list_models(edge: EdgeDep) -> ModelList:
    """The default model (under its own name and OpenAI's), the backends, and every theme for generate images."""
    names = [default_model(edge), *DEFAULT_MODELS, "local", *edge.config.remote.configured]
    themes, cursor = await edge.themes.list(kind="generate", limit=200)
    while cursor is not None and len(themes) < 1000:
        page, cursor = await edge.themes.list(kind="generate", limit=200, cursor=cursor)
        themes.extend(page)
    cards = [ModelCard(id=name) for name in dict.fromkeys(names)]
    cards += [ModelCard(id=t.name, created=int(t.created_at.timestamp()), owned_by=t.pack or "limner") for t in themes]
    return ModelList(data=cards)


@router.get(
    "/images/files/{name}",
    summary="A signed image URL's bytes (no API key)",
    response_class=Response,
    responses={
        200: {"content": {m: {} for m in FORMATS.values()}, "description": "The image."},
        **_errors(400, 403, 404),
    },
)
async def signed_file(
    request: Request,
    edge: EdgeDep,
    name: Annotated[str, Path(max_length=80, description="`<sha256>.<png|webp|jpeg>`.")],
    expires: Annotated[int, Query(ge=0, lt=2**63, description="Unix seconds after which the URL is refused.")],
    signature: Annotated[str, Query(max_length=128, description="Hex HMAC-SHA256 of the name and expiry.")],
) -> Response:
    """The bytes a ``response_format: url`` answer points at: refused (403) with a wrong signature or once expired."""
    expected = sign(_url_key(request), name, expires).encode()
    if not hmac.compare_digest(expected, signature.lower().encode("utf-8", "replace")):
        raise _forbidden("The URL's signature does not match.", "signature")
    left = expires - time.time()
    if left <= 0:
        raise _forbidden("The URL has expired.", "expires")
    sha256, dot, ext = name.partition(".")
    if not dot or ext not in FORMATS:
        raise NotFound(f"No image {name!r}.", param="name")
    asset = await edge.images.asset(sha256, ext)
    headers = {"Cache-Control": f"private, max-age={int(left)}", "ETag": asset.etag}
    return Response(asset.data, media_type=FORMATS[ext], headers=headers)


def _forbidden(message: str, param: str) -> ServiceError:
    err = Forbidden(message, param=param)
    err.error_type = "invalid_signature" if param == "signature" else "expired"
    return err
