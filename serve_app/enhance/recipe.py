"""Enhancement steps on stored images: upscale (lanczos, hires, model), face fix, restyle, each a derived version.

The pixel work runs on the enhancer stage (``stages.enhancer``); every repaint (hires tiles, face crops, a restyle)
runs on the generator through ``stages.generate_many``, so tiles of one size go to the keyed batcher together and
there is one copy of the weights. A step's result is a new version of its source (``parent_id`` = the source,
``version`` + 1) whose request hash is the step's canonical hash, so a retried job finds the version its first
attempt stored.

``check`` runs at acceptance (settings, the pixel limit, the restyle theme resolved and pinned to its version);
``run`` when the job runs.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from pipelines.canonical import canonical_hash
from pipelines.errors import InputError
from pipelines.request import GenerationRequest
from serve_app.enhance.models import FaceFixBody, RestyleBody, UpscaleBody, step_json
from serve_app.observability.metrics import timed_stage
from serve_app.schemas import ComposedRequest, PartialRequest

if TYPE_CHECKING:
    from serve_app.images import ImageRecord
    from serve_app.jobs.dispatcher import ProgressFn
    from serve_app.jobs.stages import Stages

__all__ = ["Accepted", "Enhanced", "Step", "accept_steps", "phase", "run_step", "run_steps"]

Step = UpscaleBody | FaceFixBody | RestyleBody
RESTORER_SIZE = 512
"""The face crop side GFPGAN/CodeFormer-style restorers work at."""


@dataclass(frozen=True)
class Accepted:
    """Steps as a job keeps them (restyle themes pinned to ``id@version``) and the themes they resolved."""

    steps: list[dict[str, Any]]
    themes: list[dict[str, Any] | None]


@dataclass(frozen=True)
class Enhanced:
    """A step's result: the new version's id and what was done."""

    image_id: str
    data: dict[str, Any]


def phase(progress: ProgressFn, index: int, count: int) -> ProgressFn:
    """Progress of part ``index`` of ``count`` (generation, then each step) as progress over the whole recipe:
    ``step`` of ``count * 1000``. A job of one part reports its own steps unchanged (denoising steps of total)."""
    if count == 1:
        return progress

    async def report(step: int, total: int) -> None:
        done = step / total if total else 1.0
        await progress(round((index + done) * 1000), count * 1000)

    return report


async def accept_steps(
    steps: Sequence[Step], stages: Stages, *, size: tuple[int, int] | None, param: str = "enhance"
) -> Accepted:
    """Checks a recipe at acceptance: every step's settings, an upscale's result against the pixel limit (from
    ``size``, the source's, when it is known), restyle themes resolved and pinned.

    Raises:
        InputError: A bad setting (``param[i].field``), or an unknown theme or variation.
    """
    kept, themes = [], []
    width, height = size if size is not None else (None, None)
    limit = stages.enhancer_config.max_pixels if stages.enhancer_config is not None else 4096 * 4096
    for i, step in enumerate(steps):
        prefix = f"{param}[{i}]" if param else ""
        settings = step.to_settings()
        theme_doc = None
        try:
            if isinstance(step, UpscaleBody):
                settings.check(width or 1, height or 1, limit if width is not None else None)
                if width is not None:
                    from pipelines.enhance.upscale import target_size

                    width, height = target_size(width, height, settings.scale)
            elif isinstance(step, FaceFixBody):
                settings.check()
                config = stages.enhancer_config
                if step.restorer and (config is None or config.face_restorer is None):
                    raise InputError("restorer", True, "false: this service has no enhancer.face_restorer")
            else:
                settings.check()
                theme = await stages.resolve_theme(step.theme, step.variation, None)
                assert theme is not None
                step = step.model_copy(update={"theme": f"{theme.id}@{theme.version}"})
                theme_doc = theme.record()
        except InputError as exc:
            raise InputError(f"{prefix}.{exc.param}" if prefix else exc.param, exc.value, exc.allowed) from None
        kept.append(step_json(step))
        themes.append(theme_doc)
    return Accepted(kept, themes)


async def run_steps(
    image_id: str, steps: Sequence[Step], stages: Stages, progress: ProgressFn, *, first_phase: int, phases: int
) -> list[Enhanced]:
    """Runs ``steps`` in order from ``image_id``, each on the previous step's image."""
    out: list[Enhanced] = []
    current = image_id
    for i, step in enumerate(steps):
        done = await run_step(current, step, stages, phase(progress, first_phase + i, phases))
        out.append(done)
        current = done.image_id
    return out


async def run_step(image_id: str, step: Step, stages: Stages, progress: ProgressFn) -> Enhanced:
    """One step on the stored image ``image_id``; its result is a derived version of it."""
    if stages.enhancer is None:
        raise InputError("op", step.op, "omitted: this service has no enhancer stage")
    record, data = await stages.read_image(image_id)
    digest = "enh:" + canonical_hash({"source": image_id, "step": step_json(step)})
    with timed_stage("enhance"):  # its repaint passes are also timed as ``generate``
        if isinstance(step, UpscaleBody):
            png, facts = await _upscale(record, data, step, stages, progress)
            kind = "upscale"
        elif isinstance(step, FaceFixBody):
            png, facts = await _face_fix(record, data, step, stages, progress)
            kind = "face_fix"
        else:
            png, facts = await _restyle(record, data, step, stages, progress)
            kind = "restyle"
    theme = facts.pop("theme_version_of", None)
    size = tuple(facts["size"]) if "size" in facts else (record.width, record.height)
    new_id = await stages.derive(
        image_id,
        png,
        kind=kind,
        settings={"enhance": step_json(step), **{k: v for k, v in facts.items() if k != "theme"}},
        request_hash=digest,
        theme=theme,
        size=size,
    )
    return Enhanced(new_id, {"op": step.op, "image_id": new_id, "source_id": image_id, **facts})


# -- the operations ---------------------------------------------------------------------------------------------


def _native(stages: Stages) -> int:
    config = stages.enhancer_config
    if config is not None and config.native_size is not None:
        return config.native_size
    return stages.native_size


def _repaint(
    record: ImageRecord, init: Any, prompt: str, strength: float, steps: int | None, size: tuple[int, int]
) -> GenerationRequest:
    """An image-to-image pass in the image's own settings (prompt, seed, model, scheduler, guidance). It runs
    ``steps`` (the image's own when None), and at least enough that ``strength`` leaves one denoising step."""
    settings = record.settings or {}
    steps = max(int(steps or settings.get("steps") or 20), math.ceil(1 / strength - 1e-9))
    return GenerationRequest(
        prompt=prompt,
        negative_prompt=record.negative_prompt or "",
        width=size[0],
        height=size[1],
        steps=steps,
        guidance=float(settings.get("guidance") or 5.0),
        seed=int(record.seed or 0),
        scheduler=str(settings.get("scheduler") or "euler"),
        mode="img2img",
        init_image=init,
        strength=strength,
        model=record.model or "default",
    )


async def _generate(requests: Sequence[GenerationRequest], stages: Stages, progress: ProgressFn) -> list[bytes]:
    composed = []
    for request in requests:
        request.check(stages.limits)
        composed.append(ComposedRequest(request, "enh:" + uuid.uuid4().hex, uuid.uuid4().hex))
    return [image.png for image in await stages.generate_many(composed, progress)]


async def _repaints(requests: Sequence[GenerationRequest], stages: Stages, progress: ProgressFn) -> list[Any]:
    """Repaint passes (hires tiles, face crops) whose pixels are blended into another image: the generator hands
    them back as images, not PNGs (``ComposedRequest.raw``), which spares an encode and a decode per tile."""
    composed = []
    for request in requests:
        request.check(stages.limits)
        composed.append(ComposedRequest(request, "enh:" + uuid.uuid4().hex, uuid.uuid4().hex, raw=True))
    return [
        image.pixels if image.pixels is not None else image.png
        for image in await stages.generate_many(composed, progress)
    ]


async def _upscale(
    record: ImageRecord, data: bytes, step: UpscaleBody, stages: Stages, progress: ProgressFn
) -> tuple[bytes, dict[str, Any]]:
    from pipelines.enhance.upscale import target_size

    assert stages.enhancer is not None
    settings = step.to_settings()
    limit = stages.enhancer_config.max_pixels if stages.enhancer_config is not None else None
    settings.check(record.width, record.height, limit)
    width, height = target_size(record.width, record.height, settings.scale)
    facts: dict[str, Any] = {"method": settings.method, "scale": settings.scale, "size": [width, height]}
    if settings.method == "lanczos":
        return await stages.enhancer.lanczos(data, width, height), facts
    if settings.method == "model":
        return await stages.enhancer.model_upscale(data, settings), facts
    plan = await stages.enhancer.hires_plan(data, settings, _native(stages))
    requests = [
        _repaint(record, tile.crop, record.prompt or "", settings.denoise, settings.steps, tile.crop.size)
        for tile in plan.tiles
    ]
    repainted = await _repaints(requests, stages, progress)
    facts["tiles"] = len(plan.tiles)
    return await stages.enhancer.hires_blend(plan, repainted, settings.overlap), facts


async def _face_fix(
    record: ImageRecord, data: bytes, step: FaceFixBody, stages: Stages, progress: ProgressFn
) -> tuple[bytes, dict[str, Any]]:
    from pipelines.enhance.faces import face_prompt

    assert stages.enhancer is not None
    settings = step.to_settings()
    settings.check()
    native = RESTORER_SIZE if step.restorer else _native(stages)
    plan = await stages.enhancer.face_plan(data, settings, native)
    facts: dict[str, Any] = {"faces": [list(box) for box, _ in plan.faces], "detector": plan.detector}
    if not plan.crops:
        await progress(1, 1)
        return data, facts
    if step.restorer:
        facts["restorer"] = True
        restored = await stages.enhancer.restore_faces(plan)
        await progress(1, 1)
        return await stages.enhancer.paste_faces(data, plan, restored), facts
    prompt = face_prompt(record.prompt, max_chars=stages.limits.max_prompt_chars)
    requests = [_repaint(record, crop.crop, prompt, settings.strength, None, crop.crop.size) for crop in plan.crops]
    repainted = await _repaints(requests, stages, progress)
    return await stages.enhancer.paste_faces(data, plan, repainted), facts


async def _restyle(
    record: ImageRecord, data: bytes, step: RestyleBody, stages: Stages, progress: ProgressFn
) -> tuple[bytes, dict[str, Any]]:
    from pipelines import encode

    assert stages.enhancer is not None
    settings = step.to_settings()
    settings.check()
    theme = await stages.resolve_theme(settings.theme, settings.variation, None)
    assert theme is not None
    width, height = stages.limits.fit(record.width, record.height)
    partial = PartialRequest(
        prompt=record.prompt or "",
        negative_prompt=record.negative_prompt,
        width=width,
        height=height,
        seed=int(record.seed or 0),
    )
    composed = await stages.compose(partial, theme.style)
    source = encode.decode(data).convert("RGB")
    request = replace(composed.request, mode="img2img", init_image=source, strength=settings.strength)
    structure = bool(settings.keep_structure and stages.controlnet)
    if structure:
        control = encode.decode(await stages.enhancer.structure(data))
        request = replace(request, control_image=control, control_scale=settings.control_scale)
    (png,) = await _generate([request], stages, progress)
    if (width, height) != (record.width, record.height):
        png = await stages.enhancer.lanczos(png, record.width, record.height)
    facts = {
        "theme": theme.record(),
        "prompt": request.prompt,
        "strength": settings.strength,
        "structure": "controlnet" if structure else "strength only",
        "theme_version_of": (str(theme.id), theme.version),
    }
    return png, facts
