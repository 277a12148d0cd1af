"""Wire messages of the Experimance image-server protocol, and their codec.

The protocol as the installation's code really behaves (docs/EXPERIMANCE_PROTOCOL.md): each message is one
ZMQ frame holding UTF-8 JSON; its kind is the JSON field ``type``. The core pushes ``RenderRequest``; the
image server pushes back ``ImageReady`` whose ``uri`` is ``"file://"`` + an absolute, un-encoded path.
Which fields exist depends on the project's schema variant:

- ``experimance``: ``era`` and ``biome`` are required (lower-case, case-sensitive) on both messages and must
  be echoed back exactly, or the core discards the result;
- ``fire``: no era/biome; ``RenderRequest`` has an optional img2img ``strength``;
- ``base``: the shared base schema.

Unknown fields are ignored (the installation's pydantic models use ``extra="ignore"``), values are
validated in pydantic's default (lax) mode like theirs, and replies are serialised the way theirs are:
``model_dump_json()``, compact, every field present including nulls.

Errors:

    ValueError
     └── FrameError    a frame or an image in it cannot be used; ``reason`` is one of FRAME_ERROR_REASONS
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
import stat
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, get_args

from PIL import Image
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "DEFAULT_MAX_IMAGE_BYTES",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "DEFAULT_MAX_PROMPT_CHARS",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_SIZE",
    "FRAME_ERROR_REASONS",
    "IMAGE_FORMATS",
    "KNOWN_MESSAGE_TYPES",
    "MIN_SIZE",
    "Biome",
    "Era",
    "ExperimanceImageReady",
    "ExperimanceRenderRequest",
    "FireRenderRequest",
    "FrameError",
    "FrameErrorReason",
    "ImageReady",
    "ImageSource",
    "RenderRequest",
    "SchemaVariant",
    "decode_frame",
    "encode_image_ready",
    "file_uri",
    "image_ready_for",
    "load_image_source",
    "request_era_biome",
]

SchemaVariant = Literal["experimance", "fire", "base"]
"""Which project schema the installation runs (its ``PROJECT_ENV``)."""

FrameErrorReason = Literal[
    "oversize",
    "not_utf8",
    "not_json",
    "not_object",
    "missing_type",
    "unknown_type",
    "unsupported_type",
    "missing_field",
    "invalid_field",
    "bad_size",
    "bad_image",
    "image_not_allowed",
    "duplicate_id",
]
"""Why a frame (or an image inside one) was refused."""

FRAME_ERROR_REASONS: tuple[str, ...] = get_args(FrameErrorReason)
"""Every :data:`FrameErrorReason`, for metrics that want a zero per reason."""

KNOWN_MESSAGE_TYPES: frozenset[str] = frozenset(
    {
        # MessageType in experimance_common/schemas_base.py ...
        "SpaceTimeUpdate",
        "RenderRequest",
        "PresenceStatus",
        "ImageReady",
        "TransitionReady",
        "LoopReady",
        "RequestBiome",
        "AudiencePresent",
        "SpeechDetected",
        "TransitionRequest",
        "LoopRequest",
        "Alert",
        "DisplayMedia",
        "DisplayText",
        "RemoveText",
        "ChangeMap",
        # ... and the fire project's additions.
        "StoryHeard",
        "UpdateLocation",
        "TranscriptUpdate",
        "AudioRenderRequest",
        "AudioReady",
    }
)
"""Message kinds the installation defines; any but ``RenderRequest`` is refused as ``unsupported_type``."""

DEFAULT_SIZE = 1024
"""Width and height when a request leaves them null or absent (the experimance core never sets them)."""
MIN_SIZE = 8
"""Smallest width or height accepted."""
DEFAULT_MAX_SIZE = 8192
"""Largest width or height accepted by default."""
DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024
"""Largest frame accepted by default (a 1024x1024 grey depth PNG as base64 is tens to hundreds of KB)."""
DEFAULT_MAX_IMAGE_BYTES = 16 * 1024 * 1024
"""Largest encoded conditioning image (decoded base64 or file) accepted by default."""
DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096
"""Most pixels a conditioning image may decode to by default."""
DEFAULT_MAX_PROMPT_CHARS = 2000
"""Longest prompt or negative prompt accepted by default: the generator's own limit
(``pipelines.request.GenerationLimits.max_prompt_chars``), so a longer one is refused at the door instead of
failing every attempt downstream."""
IMAGE_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP")
"""The only formats a conditioning or fallback image is decoded from (PIL names); every other PIL plugin
(TIFF, PSD, EPS, ...) stays out of reach of untrusted bytes."""


class Era(StrEnum):
    """The 9 eras of the experimance project (``experimance/projects/experimance/schemas.py``)."""

    WILDERNESS = "wilderness"
    PRE_INDUSTRIAL = "pre_industrial"
    EARLY_INDUSTRIAL = "early_industrial"
    LATE_INDUSTRIAL = "late_industrial"
    MODERN = "modern"
    CURRENT = "current"
    FUTURE = "future"
    DYSTOPIA = "dystopia"
    RUINS = "ruins"


class Biome(StrEnum):
    """The 15 biomes of the experimance project; ``jungle`` is in the enum though not in its data file."""

    RAINFOREST = "rainforest"
    TEMPERATE_FOREST = "temperate_forest"
    BOREAL_FOREST = "boreal_forest"
    DECIDUOUS_FOREST = "deciduous_forest"
    DESERT = "desert"
    MOUNTAIN = "mountain"
    TROPICAL_ISLAND = "tropical_island"
    RIVER = "river"
    TUNDRA = "tundra"
    STEPPE = "steppe"
    COASTAL = "coastal"
    SWAMP = "swamp"
    PLAINS = "plains"
    ARCTIC = "arctic"
    JUNGLE = "jungle"


class FrameError(ValueError):
    """A frame, or an image inside it, cannot be used.

    Args:
        reason: One of :data:`FRAME_ERROR_REASONS`; stable, for metrics.
        request_id: The request's id when the frame got far enough to have one.
        detail: What was wrong, naming the field and the value where there is one.
    """

    def __init__(self, reason: FrameErrorReason, request_id: str | None = None, detail: str = "") -> None:
        # Arguments go to super().__init__ so the exception pickles across Ray handles.
        super().__init__(reason, request_id, detail)
        self.reason: FrameErrorReason = reason
        self.request_id = request_id
        self.detail = detail

    def __str__(self) -> str:
        where = f" (request_id={_shorten(self.request_id)})" if self.request_id is not None else ""
        return f"{self.reason}{where}: {self.detail}" if self.detail else f"{self.reason}{where}"


def _shorten(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, for log lines about untrusted input."""
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _check_encodable(value: Any) -> Any:
    """Refuses strings that cannot be UTF-8 encoded (lone surrogates from ``\\ud800`` JSON escapes)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError("contains a lone surrogate, not valid Unicode") from exc
    return value


class _Message(BaseModel):
    """Shared settings: unknown fields are dropped silently, as the installation's models do."""

    model_config = ConfigDict(extra="ignore")


class ImageSource(_Message):
    """An image inside a request: ``image_data`` (a data URL or raw base64) or ``uri`` (``file://`` or a path)."""

    image_data: str | None = None
    uri: str | None = None

    @field_validator("*")
    @classmethod
    def _unicode_only(cls, value: Any) -> Any:
        return _check_encodable(value)


class RenderRequest(_Message):
    """The base schema's ``RenderRequest`` (``experimance_common/schemas_base.py``), field order as theirs."""

    type: Literal["RenderRequest"] = "RenderRequest"
    request_id: str
    generator: str | None = None
    prompt: str
    negative_prompt: str | None = None
    width: int | None = DEFAULT_SIZE
    height: int | None = DEFAULT_SIZE
    style: str | None = None
    seed: int | None = None
    reference_image: ImageSource | None = None
    depth_map: ImageSource | None = None
    clear_queue: bool = False

    @field_validator("*")
    @classmethod
    def _unicode_only(cls, value: Any) -> Any:
        return _check_encodable(value)

    @field_validator("width", "height", mode="before")
    @classmethod
    def _no_bool_size(cls, value: Any) -> Any:
        # Lax int would turn true into 1; a size is never a boolean.
        if isinstance(value, bool):
            raise ValueError("a size is an integer, not a boolean")
        return value

    @field_validator("request_id")
    @classmethod
    def _non_empty_id(cls, value: str) -> str:
        # The id names the reply and the display caches images by it; an empty one cannot be told apart.
        if not value:
            raise ValueError("must not be empty")
        return value

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``, with null treated as :data:`DEFAULT_SIZE`."""
        return (self.width or DEFAULT_SIZE, self.height or DEFAULT_SIZE)


class ExperimanceRenderRequest(RenderRequest):
    """The experimance project's ``RenderRequest``: ``era`` and ``biome`` are required."""

    era: Era
    biome: Biome


class FireRenderRequest(RenderRequest):
    """The fire project's ``RenderRequest``: an optional img2img ``strength``, no era or biome."""

    strength: float | None = None

    @field_validator("strength")
    @classmethod
    def _strength_range(cls, value: float | None) -> float | None:
        if value is not None and not 0.0 < value <= 1.0:
            raise ValueError("greater than 0 and at most 1")
        return value


class ImageReady(_Message):
    """The base schema's ``ImageReady``: ``{"type","request_id","uri","prompt"}`` in this order."""

    type: Literal["ImageReady"] = "ImageReady"
    request_id: str
    uri: str
    prompt: str | None = None


class ExperimanceImageReady(ImageReady):
    """The experimance project's ``ImageReady``: ``era`` and ``biome`` follow ``prompt``."""

    era: Era
    biome: Biome


_REQUEST_MODELS: dict[str, type[RenderRequest]] = {
    "experimance": ExperimanceRenderRequest,
    "fire": FireRenderRequest,
    "base": RenderRequest,
}


def request_era_biome(request: RenderRequest) -> tuple[Era | None, Biome | None]:
    """The request's ``(era, biome)``, or ``(None, None)`` for a variant without them."""
    if isinstance(request, ExperimanceRenderRequest):
        return request.era, request.biome
    return None, None


def decode_frame(
    frame: bytes,
    schema: SchemaVariant = "experimance",
    *,
    max_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    max_size: int = DEFAULT_MAX_SIZE,
    max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS,
) -> RenderRequest:
    """Decodes one PULL frame into the schema variant's ``RenderRequest``.

    Args:
        frame: The frame's bytes.
        schema: The schema variant the installation runs.
        max_bytes: Largest frame accepted.
        max_size: Largest width or height accepted.
        max_prompt_chars: Longest ``prompt`` or ``negative_prompt`` accepted, in characters.

    Returns:
        An :class:`ExperimanceRenderRequest`, :class:`FireRenderRequest` or :class:`RenderRequest`.

    Raises:
        FrameError: The frame is oversize, not UTF-8, not JSON, not an object, has no or another ``type``,
            or a field is missing, mis-cased or out of range (a prompt longer than ``max_prompt_chars`` is an
            ``invalid_field``). ``request_id`` is set when the frame had one.
    """
    if len(frame) > max_bytes:
        raise FrameError("oversize", None, f"{len(frame)} bytes, at most {max_bytes} allowed")
    try:
        text = frame.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FrameError("not_utf8", None, str(exc)) from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and integers longer than Python's digit limit.
        raise FrameError("not_json", None, str(exc)[:200]) from None
    if not isinstance(data, dict):
        raise FrameError("not_object", None, f"a JSON object is required, got {type(data).__name__}")
    raw_id = data.get("request_id")
    request_id = raw_id if isinstance(raw_id, str) and _is_encodable(raw_id) else None
    if "type" not in data:
        raise FrameError("missing_type", request_id, "the field 'type' is missing")
    kind = data["type"]
    if kind != "RenderRequest":
        reason: FrameErrorReason = (
            "unsupported_type" if isinstance(kind, str) and kind in KNOWN_MESSAGE_TYPES else "unknown_type"
        )
        raise FrameError(reason, request_id, f"type={_shorten(kind)}, only 'RenderRequest' is handled")
    model = _REQUEST_MODELS[schema]
    try:
        request = model.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc, request_id) from None
    _check_size(request, max_size)
    _check_prompts(request, max_prompt_chars)
    return request


def _is_encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _validation_error(exc: ValidationError, request_id: str | None) -> FrameError:
    """The first pydantic error as a :class:`FrameError` that names the field, the value and the rule."""
    errors = exc.errors(include_url=False)
    first = next((e for e in errors if e["type"] == "missing"), errors[0])
    field = ".".join(str(part) for part in first["loc"]) or "<frame>"
    if first["type"] == "missing":
        return FrameError("missing_field", request_id, f"the field {field!r} is missing (names are case-sensitive)")
    reason: FrameErrorReason = "bad_size" if first["loc"][:1] in (("width",), ("height",)) else "invalid_field"
    hint = " (values are case-sensitive)" if first["loc"][:1] in (("era",), ("biome",)) else ""
    value = _shorten(first.get("input"))
    return FrameError(reason, request_id, f"{field}={value} is not allowed: {first['msg']}{hint}")


def _check_size(request: RenderRequest, max_size: int) -> None:
    for name in ("width", "height"):
        value = getattr(request, name)
        if value is not None and not MIN_SIZE <= value <= max_size:
            raise FrameError("bad_size", request.request_id, f"{name}={value} is not allowed: {MIN_SIZE}..{max_size}")


def _check_prompts(request: RenderRequest, max_chars: int) -> None:
    for name in ("prompt", "negative_prompt"):
        value = getattr(request, name)
        if value is not None and len(value) > max_chars:
            detail = f"{name}=<{len(value)} characters> is not allowed: at most {max_chars}"
            raise FrameError("invalid_field", request.request_id, detail)


def file_uri(path: str | os.PathLike[str]) -> str:
    """``"file://"`` + the absolute path, not percent-encoded (consumers strip the prefix literally).

    Args:
        path: The image's path; made absolute against the working directory if relative.
    """
    return "file://" + os.path.abspath(os.fspath(path))


def image_ready_for(request: RenderRequest, path: str | os.PathLike[str]) -> ImageReady:
    """The ``ImageReady`` answering ``request`` with the image at ``path``, in the request's variant.

    The prompt echoed is the one the core sent, and an experimance reply carries the request's era and biome.
    """
    if isinstance(request, ExperimanceRenderRequest):
        return ExperimanceImageReady(
            request_id=request.request_id,
            uri=file_uri(path),
            prompt=request.prompt,
            era=request.era,
            biome=request.biome,
        )
    return ImageReady(request_id=request.request_id, uri=file_uri(path), prompt=request.prompt)


def encode_image_ready(request: RenderRequest, path: str | os.PathLike[str]) -> bytes:
    """The reply frame for ``request``: byte-compatible with the installation's image server.

    Like theirs it is ``model_dump_json()`` of the project's ``ImageReady``: compact JSON, fields in schema
    order (``type, request_id, uri, prompt`` then ``era, biome``), nulls written out, non-ASCII as UTF-8.

    Args:
        request: The request being answered.
        path: The image file.

    Returns:
        One UTF-8 JSON frame.
    """
    return image_ready_for(request, path).model_dump_json().encode("utf-8")


def load_image_source(
    source: ImageSource,
    *,
    allowed_dirs: Sequence[str | os.PathLike[str]] = (),
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    request_id: str | None = None,
    field: str = "image",
) -> Image.Image | None:
    """Reads a request's ``depth_map`` or ``reference_image``.

    ``image_data`` wins when both are given: a data URL (``data:image/png;base64,...``) or raw base64.
    Otherwise ``uri`` is a ``file://`` URI (prefix stripped literally, like the installation does) or an
    absolute path, read only if it resolves (symlinks followed) inside one of ``allowed_dirs`` and is a regular
    file (a FIFO or a device is refused without being opened for a blocking read). Only PNG, JPEG and WebP
    are decoded (:data:`IMAGE_FORMATS`).

    Args:
        source: The image source.
        allowed_dirs: Directories a path may point into; empty refuses every path.
        max_bytes: Largest encoded image.
        max_pixels: Most pixels the image may have.
        request_id: Named in errors.
        field: Named in errors (``depth_map`` or ``reference_image``).

    Returns:
        The decoded image (mode ``L`` or ``RGB``), or None when the source carries neither field.

    Raises:
        FrameError: ``bad_image`` (undecodable, not PNG, JPEG or WebP, too large, missing file, not a regular
            file, unsupported URI) or
            ``image_not_allowed`` (a path outside ``allowed_dirs``).
    """
    if source.image_data:
        data = _decode_base64(source.image_data, max_bytes, request_id, field)
    elif source.uri:
        data = _read_allowed_file(source.uri, allowed_dirs, max_bytes, request_id, field)
    else:
        return None
    return _decode_image(data, max_pixels, request_id, field)


def _decode_base64(value: str, max_bytes: int, request_id: str | None, field: str) -> bytes:
    payload = value
    if value.startswith("data:"):
        header, sep, payload = value.partition(",")
        if not sep or not header.endswith(";base64"):
            raise FrameError("bad_image", request_id, f"{field}: a data URL must be 'data:<type>;base64,<data>'")
    payload = "".join(payload.split())  # data URLs may be wrapped
    # 4 base64 characters carry 3 bytes: refuse before decoding anything huge.
    if len(payload) // 4 * 3 > max_bytes + 3:
        raise FrameError("bad_image", request_id, f"{field}: more than {max_bytes} bytes")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FrameError("bad_image", request_id, f"{field}: not valid base64 ({exc})") from None


def _read_allowed_file(
    uri: str, allowed_dirs: Sequence[str | os.PathLike[str]], max_bytes: int, request_id: str | None, field: str
) -> bytes:
    if "://" in uri and not uri.startswith("file://"):
        raise FrameError("bad_image", request_id, f"{field}: only file:// URIs and paths are read, got {_shorten(uri)}")
    path = uri.removeprefix("file://")
    if not os.path.isabs(path):
        raise FrameError("bad_image", request_id, f"{field}: the path must be absolute, got {_shorten(path)}")
    real = Path(os.path.realpath(path))
    if not any(real.is_relative_to(os.path.realpath(d)) for d in allowed_dirs):
        raise FrameError("image_not_allowed", request_id, f"{field}: {_shorten(path)} is outside the allowed dirs")
    try:
        # Non-blocking, no symlink at the last step (it was resolved above): opening a FIFO or a device never
        # waits, and only a regular file is read at all.
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise FrameError("bad_image", request_id, f"{field}: cannot read {_shorten(path)} ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FrameError("bad_image", request_id, f"{field}: {_shorten(path)} is not a regular file")
        if info.st_size > max_bytes:
            raise FrameError("bad_image", request_id, f"{field}: {info.st_size} bytes, at most {max_bytes} allowed")
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(max_bytes + 1)  # a file that grew since fstat is still cut off at the limit
        if len(data) > max_bytes:
            raise FrameError("bad_image", request_id, f"{field}: more than {max_bytes} bytes")
        return data
    except OSError as exc:
        raise FrameError("bad_image", request_id, f"{field}: cannot read {_shorten(path)} ({exc.strerror})") from None
    finally:
        os.close(fd)


def _decode_image(data: bytes, max_pixels: int, request_id: str | None, field: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
        if image.width * image.height > max_pixels:
            raise FrameError(
                "bad_image", request_id, f"{field}: {image.width}x{image.height} is more than {max_pixels} pixels"
            )
        image.load()
    except FrameError:
        raise
    except Exception as exc:
        # Untrusted bytes: PIL's decoders raise assorted types (OSError, SyntaxError, struct.error,
        # DecompressionBomb*); every one of them means "not a usable image" here.
        raise FrameError("bad_image", request_id, f"{field}: not a decodable image ({type(exc).__name__})") from None
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    return image
