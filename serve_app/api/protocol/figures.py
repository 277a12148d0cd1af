"""HTTP models of the figure routes: portraits, creatures and items. Each body has ``to_spec()`` (the pure spec
in pipelines/prompts/specs.py, whose ``check()`` names the field and lists allowed values)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pipelines.prompts.specs import (
    Character,
    Creature,
    CreatureSpec,
    FigureCommon,
    Item,
    ItemSpec,
    Magic,
    PortraitSpec,
)
from serve_app.api.protocol import MAX_SIDE
from serve_app.enhance.models import EnhanceStep

__all__ = [
    "CharacterBody",
    "CreatureBody",
    "CreatureRequest",
    "ItemBody",
    "ItemRequest",
    "MagicBody",
    "PortraitRequest",
    "SubjectResponse",
]

_TEXT = 200


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Common(_Body):
    theme: str | None = Field(None, max_length=140, description="A theme by name or id, optionally `@version`.")
    variation: str | None = Field(None, max_length=64, description="One of the theme's variations.")
    seed: int | None = Field(None, ge=0, lt=2**32, description="The family's first seed; variation i uses seed + i.")
    variations: int = Field(1, ge=1, le=8, description="Images of one seed family, made in one batch.")
    negative_prompt: str | None = Field(None, max_length=1000, description="Added to the kind's and theme's negatives.")
    format: Literal["png", "webp", "jpeg"] = "png"
    subject_key: str | None = Field(
        None, max_length=128, description="Ties requests to one subject (`campaign-7/mira`): seed and looks are kept."
    )
    width: int | None = Field(None, ge=1, le=MAX_SIDE, description="Overrides the theme's and the framing's size.")
    height: int | None = Field(None, ge=1, le=MAX_SIDE)
    enhance: list[EnhanceStep] = Field(
        default_factory=list,
        max_length=8,
        description='Steps run on every image after generation, each kept as a version: `[{"op": "face-fix"}]`.',
    )
    backend: str | None = Field(
        None,
        max_length=32,
        description="Where it is drawn: `local`, `auto` or a configured paid API; null: `remote.routing.default`.",
    )

    def common(self) -> FigureCommon:
        return FigureCommon(
            theme=self.theme,
            variation=self.variation,
            seed=self.seed,
            variations=self.variations,
            negative_prompt=self.negative_prompt,
            format=self.format,
            subject_key=self.subject_key,
            width=self.width,
            height=self.height,
        )


class CharacterBody(_Body):
    name: str | None = Field(None, max_length=_TEXT)
    ancestry: str | None = Field(None, max_length=_TEXT, description="elf, dwarf, human, tiefling...")
    role: str | None = Field(None, max_length=_TEXT, description="Class or role: ranger, innkeeper...")
    age: str | None = Field(None, max_length=_TEXT)
    build: str | None = Field(None, max_length=_TEXT)
    skin: str | None = Field(None, max_length=_TEXT)
    hair: str | None = Field(None, max_length=_TEXT)
    eyes: str | None = Field(None, max_length=_TEXT)
    features: list[str] = Field(default_factory=list, max_length=12, description="Distinguishing features.")
    expression: str | None = Field(None, max_length=_TEXT)


class PortraitRequest(_Common):
    """Body of ``POST /api/v2/images/portraits``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "character": {"name": "Mira", "ancestry": "elf", "role": "ranger", "hair": "silver braid"},
                    "framing": "bust",
                    "theme": "ink-and-wash",
                    "subject_key": "campaign-7/mira",
                    "variations": 4,
                }
            ]
        },
    )

    character: CharacterBody
    equipment: list[str] = Field(default_factory=list, max_length=12)
    pose: str | None = Field(None, max_length=_TEXT)
    framing: str = Field("bust", max_length=32, description="headshot, bust, half or full.")
    background: str = Field(
        "plain", max_length=_TEXT, description="plain, transparent-ready (a flat key colour) or a scene description."
    )

    def to_spec(self) -> PortraitSpec:
        c = self.character
        character = Character(**{**c.model_dump(), "features": tuple(c.features)})
        return PortraitSpec(
            character=character,
            equipment=tuple(self.equipment),
            pose=self.pose,
            framing=self.framing,
            background=self.background,
            common=self.common(),
        )


class CreatureBody(_Body):
    type: str = Field(..., max_length=32, description="An SRD creature type: aberration, beast, ... undead.")
    size: str = Field("Medium", max_length=16, description="Tiny, Small, Medium, Large, Huge or Gargantuan.")
    name: str | None = Field(None, max_length=_TEXT)
    features: list[str] = Field(default_factory=list, max_length=12)
    habitat: str | None = Field(None, max_length=_TEXT)
    pose: str | None = Field(None, max_length=_TEXT)


class CreatureRequest(_Common):
    """Body of ``POST /api/v2/images/creatures``."""

    creature: CreatureBody
    framing: str | None = Field(None, max_length=32, description="headshot, bust, half or full; by size when omitted.")
    token: bool = Field(False, description="Also a round VTT token per image (ring in the theme's palette).")

    def to_spec(self) -> CreatureSpec:
        c = self.creature
        creature = Creature(**{**c.model_dump(), "features": tuple(c.features)})
        return CreatureSpec(creature=creature, framing=self.framing, token=self.token, common=self.common())


class MagicBody(_Body):
    element: str | None = Field(None, max_length=_TEXT, description="frost, fire, lightning, necrotic...")
    glow: str | None = Field(None, max_length=_TEXT, description="Glow colour words.")
    runes: bool = False


class ItemBody(_Body):
    category: str = Field(
        ..., max_length=32, description="weapon, armor, shield, potion, scroll, ring, wand, staff, wondrous."
    )
    type: str | None = Field(None, max_length=_TEXT, description="longsword, tower shield, ...")
    name: str | None = Field(None, max_length=_TEXT)
    materials: list[str] = Field(default_factory=list, max_length=12)
    magic: MagicBody | None = None
    wear: str = Field("used", max_length=16, description="pristine, used, worn, damaged or broken.")
    rarity: str = Field("common", max_length=16, description="common, uncommon, rare, very rare, legendary, artifact.")


class ItemRequest(_Common):
    """Body of ``POST /api/v2/images/items``."""

    item: ItemBody
    size_reference: str = Field("none", max_length=16, description="none, hand, coin or ruler: a scale cue beside it.")
    card: bool = Field(False, description="Also an item card: name and a rarity band in the rarity colour.")

    def to_spec(self) -> ItemSpec:
        i = self.item
        magic = None if i.magic is None else Magic(**i.magic.model_dump())
        item = Item(**{**i.model_dump(exclude={"magic"}), "materials": tuple(i.materials), "magic": magic})
        return ItemSpec(item=item, size_reference=self.size_reference, card=self.card, common=self.common())


class SubjectResponse(BaseModel):
    key: str
    kind: str
    seed_base: int
    descriptors: dict[str, str]
    created_at: datetime
    updated_at: datetime
    images: list[dict[str, Any]] = Field(..., description="Images made for it, newest first (id, kind, seed, links).")
