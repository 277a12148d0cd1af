"""The figure kinds: ``portrait``, ``creature`` and ``item``. One job makes 1 to 8 images of one seed family
(``variations``), queued together so they run as one batch, plus what the spec asks to draw on them: a round
VTT token for a creature, an item card and a scale cue for an item.

The spec types and prompt templates are pure (pipelines/prompts/specs.py, figures.py), the drawing too
(pipelines/overlay/figures.py); this module decides a job at acceptance (theme, subject, moderation, seeds,
composed requests) and runs it. Routes: serve_app/api/figures.py.
"""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from pipelines import encode
from pipelines.errors import InputError
from pipelines.overlay.figures import item_card, round_token, size_reference
from pipelines.prompts import (
    FigurePrompt,
    budget_warnings,
    family_seeds,
    figure_prompt,
    request_hash,
    with_descriptors,
)
from pipelines.prompts.specs import CreatureSpec, ItemSpec, PortraitSpec
from pipelines.request import GenerationRequest
from serve_app.enhance.models import parse_steps
from serve_app.enhance.recipe import accept_steps, phase, run_steps
from serve_app.jobs.base import JobRecord, JobResult
from serve_app.jobs.kinds.base import Accepted, KindPayload
from serve_app.jobs.kinds.generate import generation_fields
from serve_app.remote.routing import backend_hash
from serve_app.schemas import ComposedRequest, FigureCompose

if TYPE_CHECKING:
    from serve_app.jobs.dispatcher import ProgressFn
    from serve_app.jobs.stages import Stages
    from serve_app.themes.base import ResolvedTheme

__all__ = ["CreatureKind", "FigureKind", "FigurePayload", "FigurePlan", "FigureRequest", "ItemKind", "PortraitKind"]

Spec = PortraitSpec | CreatureSpec | ItemSpec

DEFAULT_RING = "#c9a227"
"""Token ring colour when the theme has no palette (antique gold)."""
TOKEN_SIZE = 512
"""Token image side in pixels (a VTT token at 2x of a 256 px grid cell)."""


@dataclass(frozen=True)
class FigureRequest:
    """A figure request as a door hands it in.

    Attributes:
        spec: The portrait, creature or item spec (its ``common`` holds theme, seed, variations...).
        door: Where it came in, for the moderation log.
        enhance: Steps run in order on every generated image (``face-fix``, ``upscale``, ``restyle``), each kept
            as its own version; the token, card or scale cue is drawn on the last.
        backend: ``local``, ``auto`` or a configured paid API; None: ``remote.routing.default``.
    """

    spec: Spec
    door: str = "http"
    enhance: tuple[Any, ...] = ()
    backend: str | None = None


@dataclass(frozen=True)
class FigurePlan:
    """What a figure request composes to (acceptance stores it; a preview shows it).

    Attributes:
        spec: The spec, with a subject's recorded descriptors filled in.
        figure: Its subject prompt.
        theme: The resolved theme, or None.
        seed_base: The family's first seed.
        cacheable: The seed was decided by the client, a subject or the theme (not drawn at random).
        composed: One composed request per variation.
        warnings: Prompt-budget notes.
        extras: What to draw on each image (``token``, ``card``, ``size_reference``).
    """

    spec: Spec
    figure: FigurePrompt
    theme: ResolvedTheme | None
    seed_base: int
    cacheable: bool
    composed: tuple[ComposedRequest, ...]
    warnings: tuple[str, ...]
    extras: dict[str, Any]


class FigurePayload(KindPayload):
    """What a figure job runs, decided at acceptance."""

    spec: dict[str, Any] = Field(..., description="The spec as accepted (subject descriptors filled in).")
    family: list[dict[str, Any]] = Field(..., description="One composed GenerationRequest per variation.")
    hashes: list[str] = Field(..., description="The request hash of each.")
    cacheable: bool = Field(..., description="Any earlier image of the same seeded request answers it.")
    theme_id: str | None = None
    theme: dict[str, Any] | None = None
    subject_key: str | None = None
    descriptors: dict[str, str] = Field(default_factory=dict)
    extras: dict[str, Any] = Field(default_factory=dict, description="What to draw on each image.")
    data: dict[str, Any] = Field(default_factory=dict, description="The kind's own result data (lengths...).")
    warnings: list[str] = Field(default_factory=list)
    enhance: list[dict[str, Any]] = Field(default_factory=list, description="Steps after generation, as accepted.")


class FigureKind:
    """Shared acceptance and run of the three figure kinds."""

    name: ClassVar[str]
    spec_type: ClassVar[type]

    async def plan(self, request: FigureRequest, stages: Stages) -> FigurePlan:
        """Validates, moderates and composes ``request`` (nothing is stored)."""
        spec = request.spec
        if not isinstance(spec, self.spec_type):
            raise InputError("kind", type(spec).__name__, f"a {self.spec_type.__name__}")
        spec.check()
        common = spec.common
        theme = await stages.resolve_theme(common.theme, common.variation, self.name)
        style = theme.style if theme is not None else None
        recorded_seed = None
        if common.subject_key is not None:
            if stages.subjects is None:
                raise InputError("subject_key", common.subject_key, "omitted: this service keeps no subjects")
            subject = await stages.subjects.find(common.subject_key)
            if subject is not None:
                if subject.kind != self.name:
                    raise InputError(
                        "subject_key", common.subject_key, f"a key of a {self.name} (it names a {subject.kind})"
                    )
                spec = with_descriptors(spec, subject.descriptors)
                recorded_seed = subject.seed_base
        stages.moderate(text_fields(spec), theme, door=request.door)
        figure = figure_prompt(spec)
        chosen = common.seed if common.seed is not None else recorded_seed
        if chosen is None and style is not None:
            chosen = style.consistency.seed_base
        seed_base = chosen if chosen is not None else secrets.randbelow(2**32)
        composed = []
        for seed in family_seeds(seed_base, common.variations):
            composed.append(await stages.compose(FigureCompose(figure, seed, common.width, common.height), style))
        stages.moderate({"prompt": composed[0].request.prompt}, theme, door=request.door)
        warnings = budget_warnings({"prompt": composed[0].request.prompt, "negative_prompt": figure.negative_prompt})
        extras = self.extras(spec, style.palette if style is not None else (), figure)
        return FigurePlan(spec, figure, theme, seed_base, chosen is not None, tuple(composed), tuple(warnings), extras)

    def extras(self, spec: Any, palette: tuple[str, ...], figure: FigurePrompt) -> dict[str, Any]:
        """What to draw on each generated image; nothing by default."""
        return {}

    async def accept(self, request: FigureRequest, stages: Stages) -> Accepted:
        plan = await self.plan(request, stages)
        common = plan.spec.common
        if common.subject_key is not None and stages.subjects is not None:
            await stages.subjects.record(common.subject_key, self.name, plan.seed_base, plan.figure.descriptors)
        family = [generation_fields(c.request) for c in plan.composed]
        first = plan.composed[0].request
        backend = await stages.route(request.backend, first)
        hashes = [backend_hash(request_hash(c.request), backend) for c in plan.composed]
        steps = await accept_steps(request.enhance, stages, size=(first.width, first.height))
        payload = FigurePayload(
            backend=backend,
            request_hash=hashes[0],
            format=common.format,
            spec=_jsonable(plan.spec),
            family=family,
            hashes=hashes,
            cacheable=plan.cacheable,
            theme_id=None if plan.theme is None else str(plan.theme.id),
            theme=None if plan.theme is None else plan.theme.record(),
            subject_key=common.subject_key,
            descriptors=dict(plan.figure.descriptors),
            extras=plan.extras,
            data=_jsonable(dict(plan.figure.data)),
            warnings=list(plan.warnings),
            enhance=steps.steps,
        )
        identity: dict[str, Any] = {"kind": self.name, "spec": _jsonable(request.spec)}
        if request.enhance:
            identity["enhance"] = steps.steps
        if request.backend is not None:
            identity["backend"] = request.backend
        return Accepted(payload, identity)

    async def run(self, job: JobRecord, stages: Stages, progress: ProgressFn) -> JobResult:
        payload = FigurePayload.of(job)
        family = []
        for fields, digest in zip(payload.family, payload.hashes, strict=True):
            request = GenerationRequest(**fields)
            request.check(stages.limits)
            family.append(ComposedRequest(request, digest, uuid.uuid4().hex, backend=payload.backend))
        record: dict[str, Any] = {"kind": self.name, "subject_key": payload.subject_key}
        if payload.theme is not None:
            record.update(theme_id=payload.theme_id, theme_version=payload.theme["version"])
        steps = parse_steps(payload.enhance)
        phases = 1 + len(steps) * len(family)
        ids = await stages.generate_family(
            family, phase(progress, 0, phases), cacheable=payload.cacheable, record=record
        )
        variations: list[dict[str, Any]] = []
        derived: list[str] = []
        finals: list[str] = []
        for n, (generated_id, composed, digest) in enumerate(zip(ids, family, payload.hashes, strict=True)):
            entry: dict[str, Any] = {"seed": composed.request.seed, "image_id": generated_id, "request_hash": digest}
            image_id = generated_id
            if steps:
                done = await run_steps(
                    generated_id, steps, stages, progress, first_phase=1 + n * len(steps), phases=phases
                )
                entry["versions"] = [generated_id, *(d.image_id for d in done)]
                entry["enhance"] = [d.data for d in done]
                image_id = done[-1].image_id
                entry["image_id"] = image_id
                derived.extend(entry["versions"][:-1])
            finals.append(image_id)
            if payload.extras:
                _, data = await stages.read_image(image_id)
                art = encode.decode(data)
                for name, png in self.draw(art, payload.extras):
                    drawn = await stages.derive(
                        image_id,
                        png,
                        kind=f"{self.name}_{name}",
                        settings={name: payload.extras[name]},
                        request_hash=f"{digest}:{name}",
                    )
                    entry[f"{name}_image_id"] = drawn
                    derived.append(drawn)
            variations.append(entry)
        first = family[0].request
        data: dict[str, Any] = {
            "kind": self.name,
            "prompt": first.prompt,
            "negative_prompt": first.negative_prompt,
            "seeds": [c.request.seed for c in family],
            "size": [first.width, first.height],
            "steps": first.steps,
            "guidance": first.guidance,
            "scheduler": first.scheduler,
            "theme": payload.theme,
            "subject_key": payload.subject_key,
            "descriptors": payload.descriptors,
            "warnings": payload.warnings,
            "variations": variations,
            **payload.data,
        }
        return JobResult(images=tuple(finals) + tuple(derived), data=data)

    def draw(self, art: Any, extras: Mapping[str, Any]) -> list[tuple[str, bytes]]:
        """The derived images (name, PNG) for one generated image."""
        return []

    def referenced_assets(self, payload: Mapping[str, Any]) -> set[str]:
        return set()  # a figure job brings no images of its own


class PortraitKind(FigureKind):
    """Character portraits: headshot to full figure."""

    name: ClassVar[str] = "portrait"
    spec_type: ClassVar[type] = PortraitSpec


class CreatureKind(FigureKind):
    """NPCs and monsters; ``token: true`` adds a round VTT token per image."""

    name: ClassVar[str] = "creature"
    spec_type: ClassVar[type] = CreatureSpec

    def extras(self, spec: Any, palette: tuple[str, ...], figure: FigurePrompt) -> dict[str, Any]:
        if not spec.token:
            return {}
        return {"token": {"size": TOKEN_SIZE, "ring_color": palette[0] if palette else DEFAULT_RING}}

    def draw(self, art: Any, extras: Mapping[str, Any]) -> list[tuple[str, bytes]]:
        token = extras.get("token")
        if token is None:
            return []
        image = round_token(art, size=int(token["size"]), ring_color=str(token["ring_color"]))
        return [("token", encode.encode(image, "png"))]


class ItemKind(FigureKind):
    """Item illustrations; ``card: true`` adds an item card, ``size_reference`` a scale cue beside it."""

    name: ClassVar[str] = "item"
    spec_type: ClassVar[type] = ItemSpec

    def extras(self, spec: Any, palette: tuple[str, ...], figure: FigurePrompt) -> dict[str, Any]:
        data = figure.data
        extras: dict[str, Any] = {}
        if spec.card:
            extras["card"] = {
                "name": data.get("name") or spec.item.type or spec.item.category,
                "rarity": spec.item.rarity,
                "rarity_color": data["rarity_colour"],
            }
        if spec.size_reference != "none":
            extras["reference"] = {
                "reference": spec.size_reference,
                "item_length_cm": data["item_length_cm"],
                "reference_length_cm": data["reference_length_cm"],
            }
        return extras

    def draw(self, art: Any, extras: Mapping[str, Any]) -> list[tuple[str, bytes]]:
        out = []
        card = extras.get("card")
        if card is not None:
            image = item_card(art, name=card["name"], rarity=card["rarity"], rarity_color=card["rarity_color"])
            out.append(("card", encode.encode(image, "png")))
        reference = extras.get("reference")
        if reference is not None:
            cue = size_reference(
                art,
                reference=reference["reference"],
                item_length_cm=float(reference["item_length_cm"]),
                reference_length_cm=float(reference["reference_length_cm"]),
            )
            out.append(("reference", encode.encode(cue.image, "png")))
        return out


def text_fields(spec: Any, prefix: str = "") -> dict[str, str]:
    """Every free-text field of a spec by dotted path (``character.features``): what moderation reads."""
    out: dict[str, str] = {}
    for f in dataclasses.fields(spec):
        value = getattr(spec, f.name)
        path = f"{prefix}{f.name}"
        if isinstance(value, str) and value:
            out[path] = value
        elif isinstance(value, tuple) and value and all(isinstance(v, str) for v in value):
            out[path] = ", ".join(value)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type) and f.name != "common":
            # ``common`` holds names (theme, subject key) and the negative prompt, which says what to avoid:
            # a negative prompt of "nsfw, gore" is the policy's friend, not its target.
            out.update(text_fields(value, f"{path}."))
    return out


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
