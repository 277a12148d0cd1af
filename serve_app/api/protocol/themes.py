"""HTTP models of the styles (themes) API. The body's meaning is :func:`pipelines.styles.theme_from_dict`'s;
these models give it a schema (OpenAPI) and refuse unknown keys early."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ConsistencyBody",
    "ModerationBody",
    "PreviewRequest",
    "PreviewResponse",
    "ThemeBody",
    "ThemeList",
    "ThemeResponse",
    "ThemeUpdate",
    "ThemeVersionList",
    "ThemeVersionResponse",
    "VariationBody",
]

_FRAGMENTS = Field(default_factory=list, max_length=64, description="Prompt fragments, appended to the parent's.")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VariationBody(_Body):
    """A named partial override ("night", "winter"), applied after the whole chain."""

    fragments: list[str] = _FRAGMENTS
    negative_fragments: list[str] = Field(default_factory=list, max_length=64)
    remove: list[str] = Field(default_factory=list, max_length=64, description="Inherited fragments to drop.")
    medium: str | None = Field(None, max_length=500, description="Medium words; null inherits, '' clears.")
    lighting: str | None = Field(None, max_length=500, description="Lighting words; null inherits, '' clears.")
    palette: list[str] | None = Field(None, max_length=16, description="Hex colours `#rrggbb`; null inherits.")
    settings: dict[str, Any] = Field(default_factory=dict, description="`steps`, `guidance`, `scheduler`.")
    sizes: dict[str, list[int]] = Field(
        default_factory=dict, description="`[width, height]` by kind (`portrait`) or `kind/framing` (`portrait/bust`)."
    )


class ConsistencyBody(_Body):
    seed_base: int | None = Field(None, ge=0, lt=2**32, description="Seed family of unseeded requests.")
    lock_palette: bool | None = Field(None, description="Hold images to the palette ('strictly limited palette').")
    reference_image: str | None = Field(None, description="sha256 of a stored PNG: every image starts from it.")
    reference_strength: float | None = Field(None, gt=0, le=1, description="img2img strength from the reference.")


class ModerationBody(_Body):
    allow: list[str] = Field(default_factory=list, description="Policy categories this theme permits (gore).")
    block: list[str] = Field(default_factory=list, description="Categories it refuses as well (a children's table).")


class ThemeUpdate(VariationBody):
    """A theme's data without its name (``PUT`` keeps the name)."""

    description: str = Field("", max_length=2000)
    parent: str | None = Field(None, max_length=64, description="Name of the theme this one inherits from.")
    kinds: list[str] | None = Field(None, description="Job kinds it supports; null inherits (a root: all).")
    variations: dict[str, VariationBody] = Field(default_factory=dict, max_length=64)
    consistency: ConsistencyBody = Field(default_factory=ConsistencyBody)
    moderation: ModerationBody = Field(default_factory=ModerationBody)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "our-campaign",
                    "parent": "ink-and-wash",
                    "fragments": ["misty northern coast"],
                    "palette": ["#1b2a41", "#c9a227"],
                    "variations": {"storm": {"fragments": ["storm clouds", "driving rain"]}},
                }
            ]
        },
    )

    def to_data(self, name: str) -> dict[str, Any]:
        """The plain data :func:`pipelines.styles.theme_from_dict` parses."""
        return {"name": name, **self.model_dump(exclude_unset=True)}


class ThemeBody(ThemeUpdate):
    """Body of ``POST /api/v2/images/styles``."""

    name: str = Field(..., max_length=64, description="Lowercase slug, unique.")


class ThemeResponse(BaseModel):
    """A theme: its stored data (``raw``) and, on a single read, the resolved style."""

    id: str
    name: str
    version: int
    builtin: bool
    pack: str | None
    raw: dict[str, Any] = Field(..., description="This version's own data, before inheritance.")
    resolved: dict[str, Any] | None = Field(None, description="After inheritance: prompts, settings, sizes...")
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None
    links: dict[str, str]


class ThemeList(BaseModel):
    items: list[ThemeResponse]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; null on the last.")


class ThemeVersionResponse(BaseModel):
    version: int
    raw: dict[str, Any]
    created_at: datetime


class ThemeVersionList(BaseModel):
    id: str
    name: str
    items: list[ThemeVersionResponse]


class PreviewRequest(_Body):
    """A sample request of one kind, composed with the theme but not generated."""

    kind: str = Field("generate", description="generate, portrait, creature or item.")
    variation: str | None = Field(None, max_length=64)
    request: dict[str, Any] = Field(
        default_factory=dict, description="The kind's request body (without theme); a default sample when empty."
    )


class PreviewResponse(BaseModel):
    theme: dict[str, Any] = Field(..., description="id, name, version, variation and the chain used.")
    kind: str
    requests: list[dict[str, Any]] = Field(..., description="The composed generation requests (prompts, settings).")
    warnings: list[str] = Field(..., description="Prompt-budget and compatibility notes.")
