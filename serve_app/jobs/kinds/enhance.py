"""The enhancement kinds: ``upscale``, ``face_fix`` and ``restyle`` of a stored image. Each job makes one derived
version of its source (``parent_id`` = the source, ``version`` + 1). The steps themselves live in
serve_app/enhance/recipe.py, shared with every generating kind's ``enhance`` recipe. Routes: serve_app/api/enhance.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from serve_app.enhance.models import FaceFixBody, RestyleBody, UpscaleBody, parse_steps
from serve_app.enhance.recipe import accept_steps, run_step
from serve_app.jobs.base import JobRecord, JobResult, PermanentJobError
from serve_app.jobs.kinds.base import Accepted, KindPayload

if TYPE_CHECKING:
    from serve_app.jobs.dispatcher import ProgressFn
    from serve_app.jobs.stages import Stages

__all__ = ["EnhanceKind", "EnhancePayload", "EnhanceRequest", "FaceFixKind", "RestyleKind", "UpscaleKind"]


@dataclass(frozen=True)
class EnhanceRequest:
    """One step on one stored image, as a route hands it in."""

    image_id: str
    step: UpscaleBody | FaceFixBody | RestyleBody
    format: str = "png"


class EnhancePayload(KindPayload):
    """What an enhancement job runs, decided at acceptance (a restyle's theme pinned to its version)."""

    image_id: str = Field(..., description="The source image.")
    step: dict[str, Any] = Field(..., description="The step, as accepted.")
    theme: dict[str, Any] | None = Field(None, description="A restyle's theme: id, name, version, variation, chain.")


class EnhanceKind:
    """Shared acceptance and run of the three enhancement kinds."""

    name: ClassVar[str]
    op: ClassVar[str]

    async def accept(self, request: EnhanceRequest, stages: Stages) -> Accepted:
        from pipelines.errors import InputError

        if request.step.op != self.op:
            raise InputError("op", request.step.op, self.op)
        record = await stages.images.get(request.image_id)  # 404 now, not when the job runs
        accepted = await accept_steps([request.step], stages, size=(record.width, record.height), param="")
        payload = EnhancePayload(
            request_hash=None,
            format=request.format,
            image_id=str(record.id),
            step=accepted.steps[0],
            theme=accepted.themes[0],
        )
        identity = {"kind": self.name, "image_id": str(record.id), "step": request.step.model_dump(mode="json")}
        return Accepted(payload, identity)

    async def run(self, job: JobRecord, stages: Stages, progress: ProgressFn) -> JobResult:
        payload = EnhancePayload.of(job)
        (step,) = parse_steps([payload.step])
        done = await run_step(payload.image_id, step, stages, progress)
        if done.image_id == payload.image_id:  # a derived version is always a new row
            raise PermanentJobError("the enhancement stored no new version", param="image_id")
        return JobResult(images=(done.image_id,), data={**done.data, "theme": payload.theme})

    def referenced_assets(self, payload: Mapping[str, Any]) -> set[str]:
        return set()  # the source is an image row: its blob is kept while the row lives


class UpscaleKind(EnhanceKind):
    """Upscale by Lanczos, hires fix (tiled SDXL image-to-image) or an ESRGAN-family model."""

    name: ClassVar[str] = "upscale"
    op: ClassVar[str] = "upscale"


class FaceFixKind(EnhanceKind):
    """Detect faces, re-paint each at the model's native size, paste back through a feathered mask."""

    name: ClassVar[str] = "face_fix"
    op: ClassVar[str] = "face-fix"


class RestyleKind(EnhanceKind):
    """Re-render into a theme, optionally holding the structure with the depth ControlNet."""

    name: ClassVar[str] = "restyle"
    op: ClassVar[str] = "restyle"
