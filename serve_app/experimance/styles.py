"""The built-in Experimance style pack: a prompt fragment per era and a modifier per biome.

The installation's core already writes a prompt for the current era and biome; the pack adds what the stock
image server got from its era LoRAs: a consistent look per era and a landscape per biome, seen from above
(the image is projected onto a sand table). The composer applies the :class:`~pipelines.styles.Style` on top
of the core's prompt; the bridge leaves it out when ``styles_enabled`` is off.

The pack is theme data like any other (``serve_app/themes/packs/experimance/``): a root theme ``experimance``
(the shared negatives, the aerial-view medium and lighting, one variation per biome) and a child theme
``experimance-<era>`` per era. :func:`style_for` resolves ``experimance-<era>`` with the biome as the variation,
which renders ``"{prompt}, <era fragment>, <biome modifier>, aerial view from above, detailed landscape,
natural light"``. The constants below are read from that data on first use (module ``__getattr__``), so the
YAML files are the one source of truth and importing this module reads nothing.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from types import MappingProxyType
from typing import Final, TypeVar

from pipelines.styles import Style, ThemeData, resolve_theme, theme_chain
from serve_app.experimance.protocol import Biome, Era
from serve_app.themes.packs import load_pack

__all__ = [
    "BASE_NEGATIVE",
    "BIOME_MODIFIERS",
    "ERA_FRAGMENTS",
    "ERA_NEGATIVES",
    "PACK",
    "STYLE_PREFIX",
    "era_theme",
    "style_for",
]

STYLE_PREFIX: Final = "experimance"
"""Style names are ``experimance/<era>/<biome>``."""

PACK: Final = "experimance"
"""The theme pack the styles come from; its root theme has the same name."""

# Read from the pack on first access (see __getattr__); declared here for type checkers and readers.
BASE_NEGATIVE: str
"""Negative prompt shared by every era (the root theme's negative fragments)."""
ERA_FRAGMENTS: MappingProxyType[Era, str]
"""What each era adds to the prompt (the era theme's fragments)."""
ERA_NEGATIVES: MappingProxyType[Era, str]
"""What each era steers away from, added to :data:`BASE_NEGATIVE` (the era theme's negative fragments)."""
BIOME_MODIFIERS: MappingProxyType[Biome, str]
"""What each biome adds to the prompt (the root theme's variation named after the biome)."""

_E = TypeVar("_E", Era, Biome)


def era_theme(era: Era) -> str:
    """The name of the pack's theme for ``era`` (``experimance-pre-industrial`` for ``pre_industrial``)."""
    return f"{PACK}-{era.value.replace('_', '-')}"


def style_for(era: Era | str, biome: Biome | str) -> Style:
    """The pack's style for an era and a biome.

    Args:
        era: One of the 9 :class:`Era` values (case-sensitive).
        biome: One of the 15 :class:`Biome` values (case-sensitive).

    Returns:
        A style named ``experimance/<era>/<biome>`` whose template puts the core's prompt first.

    Raises:
        ValueError: ``era`` or ``biome`` is not one of the protocol's names.
    """
    era_value = _member(Era, era, "era")
    biome_value = _member(Biome, biome, "biome")
    style = resolve_theme(_chain(era_value), biome_value.value)
    return replace(style, name=f"{STYLE_PREFIX}/{era_value.value}/{biome_value.value}")


def __getattr__(name: str) -> object:
    if name == "BASE_NEGATIVE":
        return _base_negative()
    if name == "ERA_FRAGMENTS":
        return _era_texts()[0]
    if name == "ERA_NEGATIVES":
        return _era_texts()[1]
    if name == "BIOME_MODIFIERS":
        return _biome_modifiers()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _chain(era: Era) -> tuple[ThemeData, ...]:
    themes = {theme.name: theme for theme in load_pack(PACK)}
    return tuple(theme_chain(era_theme(era), themes.get))


@functools.cache
def _base_negative() -> str:
    return ", ".join(_chain(Era.WILDERNESS)[0].negative_fragments)


@functools.cache
def _era_texts() -> tuple[MappingProxyType[Era, str], MappingProxyType[Era, str]]:
    fragments = {era: ", ".join(_chain(era)[-1].fragments) for era in Era}
    negatives = {era: ", ".join(_chain(era)[-1].negative_fragments) for era in Era}
    return MappingProxyType(fragments), MappingProxyType(negatives)


@functools.cache
def _biome_modifiers() -> MappingProxyType[Biome, str]:
    variations = _chain(Era.WILDERNESS)[0].variations
    return MappingProxyType({biome: ", ".join(variations[biome.value].fragments) for biome in Biome})


def _member(enum: type[_E], value: _E | str, name: str) -> _E:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        raise ValueError(f"{name}={value!r} is not allowed: one of {allowed} (case-sensitive)") from None
