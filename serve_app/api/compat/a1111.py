"""AUTOMATIC1111's web UI API (``/sdapi/v1/*``) over limner's job service, for the clients that speak it
(SillyTavern, Foundry VTT's Stable Images and Arcane Artifex, the AIYA Discord bot, Talemate, ``webuiapi``).

- ``POST /sdapi/v1/txt2img`` and ``/img2img``: a job of the ``generate`` kind, exactly as
  ``POST /api/v2/images/generate`` makes one; the ``batch_size * n_iter`` images are a family of consecutive seeds
  (``seed``, ``seed + 1``, ... as A1111 numbers them) in one job (the kind's ``count``, at most ``MAX_COUNT`` a job),
  which the generator runs as one batch. ``styles`` name limner themes; ``enable_hr`` adds the enhancer's
  ``hires`` upscale step (``hr_scale``, ``denoising_strength``, ``hr_second_pass_steps``), ``restore_faces`` and an
  enabled ``alwayson_scripts.ADetailer`` its face pass. The answer is A1111's ``{images, parameters, info}``; every PNG
  carries A1111's ``parameters`` text chunk, which ``POST /sdapi/v1/png-info`` reads back.
- ``GET /sdapi/v1/progress``: A1111's one global view, over the caller's queued and running jobs (the stores scope
  them to the key's tenant when auth is on). ``POST /interrupt`` cancels the jobs of this replica's compat
  requests in flight (the caller's tenant's), ``/skip`` those of them that are running; the interrupted request
  answers 200 with the images that finished.
- The lists clients read at start-up (``sd-models``, ``samplers``, ``schedulers``, ``upscalers``, ...), ``GET/POST
  /options`` (one model: setting ``sd_model_checkpoint`` changes nothing), ``GET /config``, ``POST /login`` and
  ``HEAD /``.

Request models are lenient as A1111's clients need: unknown keys are ignored, numeric strings and whole floats are
coerced, ``null`` means "not given", ``styles: ["None"]`` means no style, an unknown sampler or scheduler falls back
to the default (``info`` says what ran). Every route is registered with and without a trailing slash: a redirect
would break a browser's CORS preflight. Errors keep the app's one error shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import re
import secrets
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Annotated, Any, cast

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from pipelines import encode
from pipelines.errors import InputError
from serve_app.api.compat.common import b64, decode_b64_image, png_with_text
from serve_app.api.deps import EdgeDep
from serve_app.api.protocol import MAX_GUIDANCE, MAX_SIDE, MAX_STEPS
from serve_app.auth.tenant import current_tenant
from serve_app.enhance.models import FaceFixBody, UpscaleBody
from serve_app.errors import BODY_ERRORS, ServiceError, error_responses
from serve_app.jobs.kinds.generate import MAX_COUNT, GeneratePayload, GenerateRequest, family_seed
from serve_app.jobs.service import SubmitOptions
from serve_app.runtime import Edge
from serve_app.schemas import PartialRequest
from serve_app.themes.base import ThemeNotFound

__all__ = [
    "PREFIX",
    "SAMPLERS",
    "ImagesResponse",
    "Img2ImgRequest",
    "PngInfoResponse",
    "ProgressResponse",
    "Txt2ImgRequest",
    "infotext",
    "parse_infotext",
    "router",
    "scheduler_for",
]

PREFIX = "/sdapi/v1"
MAX_IMAGES = 16
"""Most images one request makes (``batch_size * n_iter``)."""
VERSION = "limner-0.1.0"
"""What ``info.version`` and the infotext's ``Version`` say."""
FACE_RESTORER = "face-fix"
"""The one face restorer (limner's face pass), as ``/face-restorers`` lists it."""

# -- names ------------------------------------------------------------------------------------------------

SAMPLERS: dict[str, tuple[str, str]] = {
    "euler": ("Euler", "Automatic"),
    "euler_a": ("Euler a", "Automatic"),
    "ddim": ("DDIM", "Automatic"),
    "dpmpp_2m": ("DPM++ 2M", "Automatic"),
    "dpmpp_2m_karras": ("DPM++ 2M Karras", "Karras"),
}
"""limner scheduler → (A1111 sampler name, A1111 schedule type) of what ran: ``info`` and the infotext."""

_BY_A1111_NAME: dict[str, str] = {
    **{label.lower(): name for name, (label, _) in SAMPLERS.items()},
    **{name: name for name in SAMPLERS},
    "k_euler": "euler",
    "k_euler_a": "euler_a",
    "k_dpmpp_2m": "dpmpp_2m",
    "k_dpmpp_2m_ka": "dpmpp_2m_karras",
}
# A1111 (1.9+) reads an old-style "<sampler> <schedule>" name as the sampler plus that schedule type; these are its
# schedule types' labels, names and aliases (a fresh Foundry module sends "Euler SGMUniform").
_SCHEDULES = (
    "automatic",
    "uniform",
    "karras",
    "exponential",
    "polyexponential",
    "sgm uniform",
    "sgm_uniform",
    "sgmuniform",
    "kl optimal",
    "kl_optimal",
    "align your steps",
    "align_your_steps",
    "simple",
    "normal",
    "ddim",
    "ddim_uniform",
    "beta",
)


def scheduler_for(sampler: str | None, schedule: str | None) -> str | None:
    """The limner scheduler for an A1111 sampler and schedule type, or None (the default) for a name limner does
    not have, as A1111 falls back to its default sampler. Only DPM++ 2M has a Karras variant here; another
    schedule type is ignored (``info`` then says ``Automatic``)."""
    name = (sampler or "").strip().lower()
    kind = (schedule or "").strip().lower()
    if name and name not in _BY_A1111_NAME:
        for suffix in sorted(_SCHEDULES, key=len, reverse=True):
            if name.endswith(" " + suffix):
                name, kind = name[: -len(suffix) - 1].strip(), suffix
                break
    base = _BY_A1111_NAME.get(name)
    if base == "dpmpp_2m" and kind == "karras":
        return "dpmpp_2m_karras"
    return base


# -- lenient request models ----------------------------------------------------------------------------------


def _blank(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("", "none", "null"):
        return None
    return value


def _int(value: Any) -> Any:
    """A1111 (pydantic 1) took ``"20"``, ``"20.0"`` and ``15.0`` for an int; ``null`` and ``""`` mean not given."""
    value = _blank(value)
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return value  # pydantic names it
    if isinstance(value, float) and math.isfinite(value) and abs(value) < 2**63:
        return int(value)
    return value


def _number(value: Any) -> Any:
    value = _blank(value)
    return value.strip() if isinstance(value, str) else value


def _names(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(v) for v in value if v is not None]
    return value


def _text(value: Any) -> Any:
    return "" if value is None else value


# Bounds go on the number inside the optional: pydantic cannot apply ``ge`` to a None.
Side = Annotated[Annotated[int, Field(ge=1, le=MAX_SIDE)] | None, BeforeValidator(_int)]
HiresSide = Annotated[Annotated[int, Field(ge=0, le=MAX_SIDE)] | None, BeforeValidator(_int)]
Steps = Annotated[Annotated[int, Field(ge=1, le=MAX_STEPS)] | None, BeforeValidator(_int)]
HiresSteps = Annotated[Annotated[int, Field(ge=0, le=MAX_STEPS)] | None, BeforeValidator(_int)]
Count = Annotated[Annotated[int, Field(ge=1, le=MAX_IMAGES)] | None, BeforeValidator(_int)]
Guidance = Annotated[
    Annotated[float, Field(ge=0, le=MAX_GUIDANCE, allow_inf_nan=False)] | None, BeforeValidator(_number)
]
Scale = Annotated[Annotated[float, Field(ge=1, le=4, allow_inf_nan=False)] | None, BeforeValidator(_number)]
Strength = Annotated[Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None, BeforeValidator(_number)]
Flag = Annotated[bool | None, BeforeValidator(_blank)]
Name = Annotated[Annotated[str, Field(max_length=200)] | None, BeforeValidator(_blank)]


class Txt2ImgRequest(BaseModel):
    """Body of ``POST /sdapi/v1/txt2img``: the fields limner honours; any other key is accepted and ignored."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "prompt": "a red dragon over a ruined castle",
                    "negative_prompt": "blurry",
                    "seed": -1,
                    "width": 256,
                    "height": 256,
                    "steps": 20,
                    "cfg_scale": 7,
                    "sampler_name": "Euler a",
                    "batch_size": 1,
                }
            ]
        },
    )

    prompt: Annotated[str, BeforeValidator(_text)] = Field("", max_length=20000, description="What to draw.")
    negative_prompt: Annotated[str, Field(max_length=20000)] | None = Field(None, description="What to avoid.")
    styles: Annotated[list[str], BeforeValidator(_names)] = Field(
        default_factory=list, max_length=16, description='limner themes by name; "None" and unknown names are skipped.'
    )
    seed: Annotated[int, BeforeValidator(lambda v: -1 if _int(v) is None else _int(v))] = Field(
        -1, ge=-(2**63), lt=2**63, description="-1 (or any negative): a random seed; image i gets seed + i."
    )
    width: Side = Field(None, description="Width in pixels (a multiple of 8).")
    height: Side = Field(None, description="Height in pixels (a multiple of 8).")
    steps: Steps = Field(None, description="Denoising steps.")
    cfg_scale: Guidance = Field(None, description="Classifier-free guidance.")
    sampler_name: Name = Field(None, description='"Euler a", "Euler", "DDIM", "DPM++ 2M", "DPM++ 2M Karras".')
    sampler_index: Name = Field(None, description="Older clients' sampler_name.")
    scheduler: Name = Field(None, description='Schedule type: "Karras" with "DPM++ 2M"; others run as Automatic.')
    batch_size: Count = Field(None, description="Images per batch.")
    n_iter: Count = Field(None, description="Batches.")
    restore_faces: Flag = Field(None, description="Run the face pass on each image.")
    enable_hr: Flag = Field(None, description="Hires fix: the image comes back at hr_scale times the size.")
    hr_scale: Scale = Field(None, description="Hires factor (2).")
    hr_upscaler: Name = Field(None, description="Recorded; every upscaler runs limner's hires repaint.")
    hr_second_pass_steps: HiresSteps = Field(None, description="Steps of the hires pass; 0: the image's own.")
    hr_resize_x: HiresSide = Field(None, description="Hires target width (0: scale).")
    hr_resize_y: HiresSide = Field(None, description="Hires target height (0: scale).")
    denoising_strength: Strength = Field(
        None, description="Hires: the repaint's strength (0.7); img2img: how far it moves from the image (0.75)."
    )
    override_settings: dict[str, Any] | None = Field(None, description="sd_model_checkpoint is accepted (one model).")
    alwayson_scripts: dict[str, Any] | None = Field(None, description="ADetailer: the face pass when enabled.")
    send_images: Flag = Field(None, description="False: answer no images.")

    @model_validator(mode="after")
    def _bounded(self) -> Txt2ImgRequest:
        if (self.batch_size or 1) * (self.n_iter or 1) > MAX_IMAGES:
            raise ValueError(f"batch_size * n_iter must be at most {MAX_IMAGES}")
        return self


class Img2ImgRequest(Txt2ImgRequest):
    """Body of ``POST /sdapi/v1/img2img``: txt2img's fields (``enable_hr`` is ignored, as A1111 does) and the start
    images."""

    init_images: Annotated[list[Annotated[str, Field(max_length=64 * 2**20)]], BeforeValidator(_names)] = Field(
        default_factory=list,
        max_length=MAX_IMAGES,
        description="Base64 images, bare or as data: URLs; image i starts from init_images[i % len].",
    )
    mask: Name = Field(None, description="Inpainting masks are not supported: a 422 when given.")


class ImagesResponse(BaseModel):
    """A1111's answer to txt2img and img2img."""

    images: list[str] = Field(..., description="Base64 PNGs without a data: prefix, each with its infotext chunk.")
    parameters: dict[str, Any] = Field(..., description="The request as understood.")
    info: str = Field(..., description="A JSON document (as a string): prompt, seeds, sizes, sampler, infotexts...")


class PngInfoRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    image: Annotated[str, BeforeValidator(_text)] = Field(
        "", max_length=64 * 2**20, description="A base64 PNG, bare or as a data: URL."
    )


class PngInfoResponse(BaseModel):
    info: str = Field(..., description="The image's `parameters` text (A1111's infotext); empty when it has none.")
    items: dict[str, Any] = Field(..., description="The image's other text chunks.")
    parameters: dict[str, Any] = Field(..., description="The infotext parsed: Prompt, Steps, Seed, Size-1...")


class ProgressState(BaseModel):
    skipped: bool
    interrupted: bool
    stopping_generation: bool = False
    job: str
    job_count: int
    job_timestamp: str
    job_no: int
    sampling_step: int
    sampling_steps: int


class ProgressResponse(BaseModel):
    progress: float = Field(..., description="0 to 1 over the jobs in flight; 0 when idle.")
    eta_relative: float = Field(..., description="Seconds left, estimated.")
    state: ProgressState
    current_image: str | None = Field(None, description="A preview (none here).")
    textinfo: str | None = None


# -- the in-flight registry (interrupt, skip) -----------------------------------------------------------------------


@dataclass(eq=False)
class _Run:
    """One compat request in flight on this replica: its jobs, and whether it was interrupted or skipped."""

    tenant: str | None
    jobs: list[uuid.UUID] = field(default_factory=list)
    interrupted: bool = False
    skipped: bool = False


class _Runs:
    """The compat requests in flight on one app (kept on ``app.state``, not in a module global)."""

    def __init__(self) -> None:
        self.active: set[_Run] = set()

    def of(self, tenant: str | None) -> list[_Run]:
        return [run for run in self.active if run.tenant == tenant]


def _runs(request: Request) -> _Runs:
    runs = getattr(request.app.state, "a1111_runs", None)
    if runs is None:
        runs = request.app.state.a1111_runs = _Runs()
    return cast(_Runs, runs)


# -- routes -----------------------------------------------------------------------------------------------------

router = APIRouter(tags=["a1111"])


def _route(method: str, path: str, **kwargs: Any) -> Any:
    """Registers the endpoint at ``PREFIX + path`` and the same with a trailing slash."""

    def register(endpoint: Any) -> Any:
        for url in (f"{PREFIX}{path}", f"{PREFIX}{path}/"):
            router.add_api_route(url, endpoint, methods=[method], **kwargs)
        return endpoint

    return register


async def _head_root(request: Request) -> Response:
    return Response(status_code=200)


# A plain route, outside the OpenAPI document and the scope table: clients probe it before they authenticate
# (Arcane Artifex's connection check, AIYA's start-up), and serve_app/auth/scopes.py looks HEAD up as GET.
router.add_route("/", _head_root, methods=["HEAD"], include_in_schema=False)

_GENERATE_ERRORS = error_responses(*BODY_ERRORS, 500, 503, 504)


@_route("POST", "/txt2img", response_model=ImagesResponse, responses=_GENERATE_ERRORS, summary="A1111 txt2img")
async def txt2img(body: Txt2ImgRequest, edge: EdgeDep, request: Request) -> ImagesResponse:
    """Generates ``batch_size * n_iter`` images, each a durable job of the generate kind."""
    return await _generate(body, edge, _runs(request), img2img=False)


@_route("POST", "/img2img", response_model=ImagesResponse, responses=_GENERATE_ERRORS, summary="A1111 img2img")
async def img2img(body: Img2ImgRequest, edge: EdgeDep, request: Request) -> ImagesResponse:
    """Image-to-image from ``init_images`` at ``denoising_strength``."""
    return await _generate(body, edge, _runs(request), img2img=True)


@_route("POST", "/png-info", response_model=PngInfoResponse, responses=error_responses(*BODY_ERRORS))
async def png_info(body: PngInfoRequest, edge: EdgeDep) -> PngInfoResponse:
    """Reads an image's text chunks; ``info`` is its A1111 infotext (``parameters``), ``parameters`` that parsed."""
    if not body.image.strip():
        return PngInfoResponse(info="", items={}, parameters={})
    data = decode_b64_image(body.image, "image")
    try:
        image = encode.decode(data, max_pixels=edge.config.ingress.max_image_pixels)
    except encode.ImageTooLarge as exc:
        raise InputError("image", str(exc), f"an image of at most {exc.max_pixels} pixels") from None
    except (OSError, ValueError):
        raise InputError("image", f"<{len(data)} bytes>", "an image PIL can read (PNG, JPEG, WebP)") from None
    texts = {k: v for k, v in image.info.items() if isinstance(k, str) and isinstance(v, str)}
    info = texts.pop("parameters", "")
    return PngInfoResponse(info=info, items=texts, parameters=parse_infotext(info) if info else {})


@_route("GET", "/progress", response_model=ProgressResponse)
async def progress(
    edge: EdgeDep,
    request: Request,
    skip_current_image: Annotated[bool, Query(description="Accepted; there is no preview to skip.")] = False,
) -> ProgressResponse:
    """A1111's global view over the caller's queued and running jobs (all kinds)."""
    page = await edge.jobs.list(["queued", "running"], 100, None)
    runs = _runs(request).of(current_tenant())
    interrupted = any(r.interrupted for r in runs)
    skipped = any(r.skipped for r in runs)
    jobs = page.items
    if not jobs:
        state = ProgressState(
            skipped=skipped,
            interrupted=interrupted,
            job="",
            job_count=0,
            job_timestamp="0",
            job_no=0,
            sampling_step=0,
            sampling_steps=0,
        )
        return ProgressResponse(progress=0.0, eta_relative=0.0, state=state)
    done = sum(min(1.0, max(0.0, j.progress)) for j in jobs) / len(jobs)
    running = [j for j in jobs if j.status == "running"]
    lead = max(running, key=lambda j: j.progress) if running else None
    started = [j.started_at for j in running if j.started_at is not None]
    elapsed = (datetime.now(UTC) - min(started)).total_seconds() if started else 0.0
    eta = elapsed * (1 - done) / done if done > 0 else 0.0
    first = min(j.created_at for j in jobs)
    state = ProgressState(
        skipped=skipped,
        interrupted=interrupted,
        job="" if lead is None else f"{lead.kind} {lead.id}",
        job_count=len(jobs),
        job_timestamp=first.strftime("%Y%m%d%H%M%S"),
        job_no=0,
        sampling_step=0 if lead is None else lead.progress_step or 0,
        sampling_steps=0 if lead is None else lead.progress_total or 0,
    )
    return ProgressResponse(progress=round(done, 4), eta_relative=round(max(0.0, eta), 3), state=state)


@_route("POST", "/interrupt", response_model=dict[str, Any])
async def interrupt(edge: EdgeDep, request: Request) -> dict[str, Any]:
    """Cancels every job of the caller's compat requests in flight here; they answer what finished."""
    runs = _runs(request).of(current_tenant())
    for run in runs:
        run.interrupted = True
    await _cancel(edge, [job for run in runs for job in run.jobs])
    return {}


@_route("POST", "/skip", response_model=dict[str, Any])
async def skip(edge: EdgeDep, request: Request) -> dict[str, Any]:
    """Cancels the running jobs of the caller's compat requests in flight here (the queued ones go on)."""
    runs = _runs(request).of(current_tenant())
    running: list[uuid.UUID] = []
    for run in runs:
        run.skipped = True
        for job_id in run.jobs:
            with contextlib.suppress(ServiceError):
                if (await edge.jobs.get(job_id)).status == "running":
                    running.append(job_id)
    await _cancel(edge, running)
    return {}


async def _cancel(edge: Edge, job_ids: list[uuid.UUID]) -> None:
    async def one(job_id: uuid.UUID) -> None:
        with contextlib.suppress(ServiceError):
            await edge.jobs.cancel(job_id)

    await asyncio.gather(*(one(j) for j in job_ids))


@_route("GET", "/options", response_model=dict[str, Any])
async def get_options(edge: EdgeDep) -> dict[str, Any]:
    """The settings clients read: the model (``sd_model_checkpoint``) first of all."""
    model = _model(edge)
    return {
        "sd_model_checkpoint": model["title"],
        "sd_checkpoint_hash": model["sha256"],
        "sd_vae": "Automatic",
        "CLIP_stop_at_last_layers": 1,
        "samples_format": "png",
        "face_restoration_model": FACE_RESTORER,
        "sd_lora": "None",
    }


@_route("POST", "/options", response_model=dict[str, Any], responses=error_responses(*BODY_ERRORS))
async def set_options(body: Annotated[dict[str, Any] | None, Body()] = None) -> dict[str, Any]:
    """Accepted and not kept: limner serves one model, and a client's settings live in its requests."""
    return {}


@_route("GET", "/sd-models", response_model=list[dict[str, Any]])
async def sd_models(edge: EdgeDep) -> list[dict[str, Any]]:
    """The one model the generator serves."""
    return [_model(edge)]


@_route("GET", "/samplers", response_model=list[dict[str, Any]])
async def samplers() -> list[dict[str, Any]]:
    """limner's schedulers under A1111's sampler names."""
    return [
        {"name": label, "aliases": [name], "options": {"scheduler": "karras"} if schedule == "Karras" else {}}
        for name, (label, schedule) in SAMPLERS.items()
    ]


@_route("GET", "/schedulers", response_model=list[dict[str, Any]])
async def schedulers() -> list[dict[str, Any]]:
    """A1111's schedule types limner honours (Karras with DPM++ 2M)."""
    return [
        {"name": "automatic", "label": "Automatic", "aliases": None, "default_rho": -1, "need_inner_model": False},
        {"name": "karras", "label": "Karras", "aliases": None, "default_rho": 7.0, "need_inner_model": False},
    ]


@_route("GET", "/upscalers", response_model=list[dict[str, Any]])
async def upscalers() -> list[dict[str, Any]]:
    """The hires fix upscalers: each runs limner's hires repaint (Lanczos, then image-to-image over tiles)."""
    return [
        {"name": name, "model_name": None, "model_path": None, "model_url": None, "scale": 4.0}
        for name in ("None", "Lanczos")
    ]


@_route("GET", "/latent-upscale-modes", response_model=list[dict[str, Any]])
async def latent_upscale_modes() -> list[dict[str, Any]]:
    return [{"name": "Latent"}]


@_route("GET", "/sd-vae", response_model=list[dict[str, Any]])
async def sd_vae() -> list[dict[str, Any]]:
    """None to choose: the model's own VAE."""
    return []


@_route("GET", "/prompt-styles", response_model=list[dict[str, Any]])
async def prompt_styles(edge: EdgeDep) -> list[dict[str, Any]]:
    """limner's themes as A1111 prompt styles (``{prompt}`` marks where the prompt goes, as in A1111)."""
    styles: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(20):  # at most 1000 themes
        page, cursor = await edge.themes.list(kind="generate", cursor=cursor, limit=50)
        for record in page:
            try:
                style = (await edge.themes.resolve(record.name)).style
            except (ThemeNotFound, ValueError):
                continue
            if style is None:
                continue
            styles.append(
                {"name": record.name, "prompt": style.prompt_template, "negative_prompt": style.negative_prompt}
            )
        if cursor is None:
            break
    return styles


@_route("GET", "/face-restorers", response_model=list[dict[str, Any]])
async def face_restorers() -> list[dict[str, Any]]:
    return [{"name": FACE_RESTORER, "cmd_dir": None}]


@_route("GET", "/loras", response_model=list[dict[str, Any]])
async def loras() -> list[dict[str, Any]]:
    return []


@_route("GET", "/hypernetworks", response_model=list[dict[str, Any]])
async def hypernetworks() -> list[dict[str, Any]]:
    return []


@_route("GET", "/embeddings", response_model=dict[str, Any])
async def embeddings() -> dict[str, Any]:
    return {"loaded": {}, "skipped": {}}


@_route("GET", "/cmd-flags", response_model=dict[str, Any])
async def cmd_flags(edge: EdgeDep) -> dict[str, Any]:
    """A1111's command-line flags as a client reads them (AIYA reads ``gradio_auth``; a 401 here tells it keys are
    on)."""
    guard = edge.guard
    return {
        "api": True,
        "nowebui": True,
        "api_auth": None,
        "gradio_auth": None,
        "api_log": False,
        "ckpt": _model(edge)["title"],
        "xformers": edge.config.generator.attention == "xformers",
        "limner_auth": bool(guard is not None and guard.enabled),
    }


@_route("GET", "/scripts", response_model=dict[str, Any])
async def scripts() -> dict[str, Any]:
    """``adetailer`` is there: ``alwayson_scripts.ADetailer`` runs the face pass."""
    return {"txt2img": ["adetailer"], "img2img": ["adetailer"]}


@router.get("/config", response_model=dict[str, Any], summary="Gradio's config, as AIYA reads it")
@router.get("/config/", response_model=dict[str, Any], include_in_schema=True)
async def config() -> dict[str, Any]:
    """The two components AIYA reads from A1111's gradio config (the LoRA and hires upscaler choices)."""
    return {
        "version": VERSION,
        "components": [
            {"id": 1, "props": {"elem_id": "setting_sd_lora", "choices": ["", "None"]}},
            {"id": 2, "props": {"elem_id": "txt2img_hr_upscaler", "choices": ["Latent", "None", "Lanczos"]}},
        ],
    }


@router.post("/login", response_model=dict[str, Any], summary="Gradio's login, as AIYA calls it")
@router.post("/login/", response_model=dict[str, Any])
async def login() -> dict[str, Any]:
    """Always succeeds: the API key (HTTP Basic's password) is what authenticates each request."""
    return {"success": True}


# -- the work ---------------------------------------------------------------------------------------------------


def _model(edge: Edge) -> dict[str, Any]:
    generator = edge.config.generator
    name = generator.model_name or generator.model.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    name = name.removesuffix(".safetensors")
    sha = hashlib.sha256(name.encode()).hexdigest()  # a stable stand-in: the weights are never hashed here
    return {
        "title": f"{name} [{sha[:10]}]",
        "model_name": name,
        "hash": sha[:10],
        "sha256": sha,
        "filename": f"{name}.safetensors",
        "config": None,
    }


async def _theme(edge: Edge, styles: list[str]) -> str | None:
    """The first of ``styles`` that names a theme (A1111 skips a style it does not know)."""
    for name in styles:
        if name.strip() in ("", "None") or len(name) > 140 or "\x00" in name:  # no theme has such a name
            continue
        try:
            await edge.themes.get(name)
        except (ThemeNotFound, ValueError):
            continue
        return name
    return None


def _adetailer(scripts: dict[str, Any] | None) -> FaceFixBody | None:
    """The face pass an enabled ``alwayson_scripts.ADetailer`` asks for (``args``: ``[True, {...}]`` or
    ``[{...}]``; ``[False]`` is off)."""
    entry = next((v for k, v in (scripts or {}).items() if k.lower() == "adetailer"), None)
    args = entry.get("args") if isinstance(entry, dict) else None
    if not isinstance(args, list) or not args or args[0] is False:
        return None
    unit = next((a for a in args if isinstance(a, dict)), {})
    if unit.get("ad_tab_enable") is False:
        return None
    strength = unit.get("ad_denoising_strength")
    if isinstance(strength, int | float) and not isinstance(strength, bool) and 0 < strength <= 1:
        return FaceFixBody(strength=float(strength))
    return FaceFixBody()


def _steps(body: Txt2ImgRequest, img2img: bool, edge: Edge) -> list[Any]:
    steps: list[Any] = []
    if body.enable_hr and not img2img:
        scale = body.hr_scale or 2.0
        if body.width and body.height and (body.hr_resize_x or body.hr_resize_y):
            scale = max((body.hr_resize_x or 0) / body.width, (body.hr_resize_y or 0) / body.height)
            scale = min(4.0, max(1.0, scale))
        denoise = 0.7 if body.denoising_strength is None else body.denoising_strength
        native = edge.config.enhancer.native_size or edge.config.composer.width  # as the enhancer reads it
        steps.append(
            UpscaleBody(
                scale=scale,
                method="hires" if denoise > 0 else "lanczos",  # no repaint at strength 0
                denoise=denoise if denoise > 0 else 0.3,
                steps=body.hr_second_pass_steps or None,
                # Tiles of the model's native side (512 at most), overlapping by a quarter of it (64 at most).
                tile=min(512, native),
                overlap=min(64, native // 4 // 8 * 8),
            )
        )
    faces = _adetailer(body.alwayson_scripts)
    if faces is None and body.restore_faces:
        faces = FaceFixBody()
    if faces is not None:
        steps.append(faces)
    return steps


async def _generate(body: Txt2ImgRequest, edge: Edge, runs: _Runs, *, img2img: bool) -> ImagesResponse:
    starts: list[bytes] = []
    if img2img:
        assert isinstance(body, Img2ImgRequest)
        if body.mask:
            raise InputError("mask", "<mask>", "omitted: inpainting is not supported by this API")
        if not body.init_images:
            raise InputError("init_images", [], "at least one base64 image")
        starts = [decode_b64_image(v, f"init_images[{i}]") for i, v in enumerate(body.init_images)]
    count = (body.batch_size or 1) * (body.n_iter or 1)
    base = body.seed if body.seed >= 0 else secrets.randbelow(2**32)
    theme = await _theme(edge, body.styles)
    partial = PartialRequest(
        prompt=body.prompt,
        negative_prompt=body.negative_prompt,
        width=body.width,
        height=body.height,
        steps=body.steps,
        guidance=body.cfg_scale,
        scheduler=scheduler_for(body.sampler_name or body.sampler_index, body.scheduler),
    )
    template = GenerateRequest(
        partial,
        theme=theme,
        enhance=tuple(_steps(body, img2img, edge)),
        strength=None if not img2img else (0.75 if body.denoising_strength is None else body.denoising_strength),
    )
    # The images are families of consecutive seeds, one job each (the generate kind's ``count``, batched as one),
    # of at most MAX_COUNT; with several start images, one job per image (each its own start).
    size = 1 if len(starts) > 1 else MAX_COUNT
    requests = [
        replace(
            template,
            partial=replace(partial, seed=family_seed(base, first)),
            init_png=starts[first % len(starts)] if starts else None,
            count=min(size, count - first),
        )
        for first in range(0, count, size)
    ]
    jobs = edge.jobs
    options = SubmitOptions(priority=jobs.config.generate_priority)
    run = _Run(current_tenant())
    runs.active.add(run)
    try:
        submitted = await asyncio.gather(
            *(jobs.submit("generate", r, options) for r in requests), return_exceptions=True
        )
        made = [(s[0], cast(GeneratePayload, s[1])) for s in submitted if not isinstance(s, BaseException)]
        run.jobs = [job.id for job, _ in made]
        failed = next((s for s in submitted if isinstance(s, BaseException)), None)
        if failed is not None or run.interrupted:
            await _cancel(edge, run.jobs)
            if failed is not None:
                raise failed
        timeout = jobs.config.generate_timeout_s
        results = await asyncio.gather(*(jobs.result(job.id, timeout) for job, _ in made), return_exceptions=True)
    finally:
        runs.active.discard(run)
    stopped = run.interrupted or run.skipped
    finished: list[tuple[str, dict[str, Any], str]] = []  # (job id, the image's generation, image id)
    for (job, payload), result in zip(made, results, strict=True):
        if isinstance(result, BaseException):
            if stopped and isinstance(result, ServiceError):
                continue  # cancelled by /interrupt or /skip: A1111 answers what it has
            raise result
        for i, image_id in enumerate(result.images[: payload.count]):  # the finals in seed order come first
            generation = {**payload.generation, "seed": family_seed(int(payload.generation["seed"]), i)}
            finished.append((str(job.id), generation, str(image_id)))
    return await _answer(body, edge, made[0][1].generation, finished, theme, img2img)


async def _answer(
    body: Txt2ImgRequest,
    edge: Edge,
    first: dict[str, Any],
    finished: list[tuple[str, dict[str, Any], str]],
    theme: str | None,
    img2img: bool,
) -> ImagesResponse:
    model = _model(edge)
    steps = _steps(body, img2img, edge)
    hires = next((s for s in steps if isinstance(s, UpscaleBody)), None)
    faces = any(isinstance(s, FaceFixBody) for s in steps)
    sampler, schedule = SAMPLERS.get(first["scheduler"], (first["scheduler"], "Automatic"))
    extra: dict[str, Any] = {}
    if hires is not None:
        extra.update(
            {
                "Denoising strength": hires.denoise if hires.method == "hires" else 0,
                "Hires upscale": hires.scale,
                "Hires steps": hires.steps,
                "Hires upscaler": body.hr_upscaler or "Latent",
            }
        )
    elif img2img:
        extra["Denoising strength"] = first.get("strength")
    if faces:
        extra["Face restoration"] = FACE_RESTORER
    if theme is not None:
        extra["Style"] = theme
    images: list[str] = []
    texts: list[str] = []
    gens = [generation for _, generation, _ in finished]
    for _, generation, image_id in finished:
        text = infotext(generation, sampler, schedule, model, extra)
        texts.append(text)
        if body.send_images is False:
            continue
        _, asset = await edge.images.image_bytes(image_id, "png")
        images.append(b64(png_with_text(asset.data, "parameters", text)))
    seeds = [int(g["seed"]) for g in gens]
    info = {
        "prompt": first["prompt"],
        "all_prompts": [g["prompt"] for g in gens],
        "negative_prompt": first["negative_prompt"],
        "all_negative_prompts": [g["negative_prompt"] for g in gens],
        "seed": seeds[0] if seeds else int(first["seed"]),
        "all_seeds": seeds,
        "subseed": -1,
        "all_subseeds": [-1] * len(seeds),
        "subseed_strength": 0,
        "width": first["width"],
        "height": first["height"],
        "sampler_name": sampler,
        "scheduler": schedule,
        "cfg_scale": first["guidance"],
        "steps": first["steps"],
        "batch_size": body.batch_size or 1,
        "n_iter": body.n_iter or 1,
        "restore_faces": faces,
        "face_restoration_model": FACE_RESTORER if faces else None,
        "sd_model_name": model["model_name"],
        "sd_model_hash": model["hash"],
        "sd_vae_name": None,
        "sd_vae_hash": None,
        "seed_resize_from_w": -1,
        "seed_resize_from_h": -1,
        "denoising_strength": extra.get("Denoising strength"),
        "extra_generation_params": {k: v for k, v in extra.items() if k != "Denoising strength"},
        "index_of_first_image": 0,
        "infotexts": texts,
        "styles": [theme] if theme else [],
        "job_timestamp": datetime.now(UTC).strftime("%Y%m%d%H%M%S"),
        "clip_skip": 1,
        "is_using_inpainting_conditioning": False,
        "version": VERSION,
        "limner": {"jobs": sorted({j for j, _, _ in finished}), "images": [i for _, _, i in finished]},
    }
    parameters = body.model_dump(mode="json", exclude={"init_images", "mask"})
    if img2img:
        parameters["init_images"] = None
    return ImagesResponse(images=images, parameters=parameters, info=json.dumps(info))


# -- infotext ---------------------------------------------------------------------------------------------------


def _quote(value: Any) -> str:
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text and '"' not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def infotext(
    generation: dict[str, Any], sampler: str, schedule: str, model: dict[str, Any], extra: dict[str, Any]
) -> str:
    """An image's parameters in A1111's infotext format: the prompt, ``Negative prompt: ...`` when there is one,
    then one line of ``Key: value`` pairs (a value with a comma, colon or quote JSON-quoted)."""
    params: dict[str, Any] = {
        "Steps": generation["steps"],
        "Sampler": sampler,
        "Schedule type": schedule,
        "CFG scale": generation["guidance"],
        "Seed": generation["seed"],
        "Size": f"{generation['width']}x{generation['height']}",
        "Model hash": model["hash"],
        "Model": model["model_name"],
        **{k: v for k, v in extra.items() if v is not None},
        "Version": VERSION,
    }
    lines = [generation["prompt"]]
    if generation.get("negative_prompt"):
        lines.append(f"Negative prompt: {generation['negative_prompt']}")
    lines.append(", ".join(f"{k}: {_quote(v)}" for k, v in params.items()))
    return "\n".join(lines)


_PARAM = re.compile(r'\s*([\w][\w \-/+]*):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')


def parse_infotext(text: str) -> dict[str, Any]:
    """A1111's infotext back into ``{"Prompt", "Negative prompt", "Steps", ..., "Size-1", "Size-2"}`` (values as
    text, JSON-quoted ones unquoted), as A1111's ``parse_generation_parameters`` reads it."""
    lines = text.strip().split("\n")
    last = lines[-1] if lines else ""
    found = _PARAM.findall(last)
    if len(found) < 3:  # no parameter line: it is all prompt
        found, body = [], lines
    else:
        body = lines[:-1]
    prompt: list[str] = []
    negative: list[str] = []
    for line in body:
        if line.startswith("Negative prompt:"):
            negative.append(line[len("Negative prompt:") :].strip())
        elif negative:
            negative.append(line)
        else:
            prompt.append(line)
    result: dict[str, Any] = {"Prompt": "\n".join(prompt), "Negative prompt": "\n".join(negative)}
    for key, value in found:
        value = value.strip()
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            with contextlib.suppress(json.JSONDecodeError):
                value = json.loads(value)
        size = re.fullmatch(r"(\d+)x(\d+)", value) if isinstance(value, str) else None
        if size is not None:
            result[f"{key}-1"], result[f"{key}-2"] = size.group(1), size.group(2)
        else:
            result[key] = value
    return result
