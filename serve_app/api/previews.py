"""``POST /styles/{ref}/preview``: what a theme makes of a sample request, composed exactly as a job would be."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from pipelines.errors import InputError, field_path
from pipelines.prompts import PartialRequest, budget_warnings
from serve_app.api.protocol.figures import CreatureRequest, ItemRequest, PortraitRequest
from serve_app.api.protocol.themes import PreviewRequest, PreviewResponse
from serve_app.jobs.kinds.figure import FigureKind, FigureRequest
from serve_app.runtime import Edge

__all__ = ["SAMPLES", "preview"]

SAMPLES: dict[str, dict[str, Any]] = {
    "generate": {"prompt": "a lone watchtower on a hill"},
    "portrait": {"character": {"name": "Mira", "ancestry": "elf", "role": "ranger"}, "framing": "bust"},
    "creature": {"creature": {"type": "dragon", "size": "Huge"}},
    "item": {"item": {"category": "weapon", "type": "longsword", "rarity": "rare"}},
}
"""The sample request of each kind when a preview brings none."""

_BODIES: dict[str, type[BaseModel]] = {"portrait": PortraitRequest, "creature": CreatureRequest, "item": ItemRequest}


def _body(kind: str, request: dict[str, Any], model: type[BaseModel]) -> Any:
    try:
        return model.model_validate(request or SAMPLES[kind])
    except ValidationError as exc:
        first = exc.errors()[0]
        param = field_path("request", *first.get("loc", ()))
        raise InputError(param, first.get("input"), first["msg"]) from None


async def preview(edge: Edge, ref: str, body: PreviewRequest) -> PreviewResponse:
    """Composes ``body.request`` (a sample when empty) of ``body.kind`` with the theme ``ref``."""
    stages = edge.stages
    request = {k: v for k, v in body.request.items() if k not in ("theme", "variation")}
    if body.kind in _BODIES:
        parsed = _body(
            body.kind,
            {**(request or SAMPLES[body.kind]), "theme": ref, "variation": body.variation},
            _BODIES[body.kind],
        )
        kind = edge.registry[body.kind]
        assert isinstance(kind, FigureKind)
        plan = await kind.plan(FigureRequest(parsed.to_spec()), stages)
        theme, composed, warnings = plan.theme, plan.composed, list(plan.warnings)
    else:
        theme = await stages.resolve_theme(ref, body.variation, body.kind)
        prompt = str((request or SAMPLES["generate"]).get("prompt", SAMPLES["generate"]["prompt"]))
        stages.moderate({"prompt": prompt}, theme)
        one = await stages.compose(PartialRequest(prompt=prompt, seed=0), theme.style if theme else None)
        composed, warnings = (one,), budget_warnings({"prompt": one.request.prompt})
    assert theme is not None
    requests = [
        {
            "prompt": c.request.prompt,
            "negative_prompt": c.request.negative_prompt,
            "width": c.request.width,
            "height": c.request.height,
            "steps": c.request.steps,
            "guidance": c.request.guidance,
            "scheduler": c.request.scheduler,
            "seed": c.request.seed,
        }
        for c in composed
    ]
    return PreviewResponse(theme=theme.record(), kind=body.kind, requests=requests, warnings=warnings)
