"""The built-in Experimance style pack: a prompt fragment per era and a modifier per biome.

The installation's core already writes a prompt for the current era and biome; the pack adds what the stock
image server got from its era LoRAs: a consistent look per era and a landscape per biome, seen from above
(the image is projected onto a sand table). The composer applies the :class:`~pipelines.styles.Style` on top
of the core's prompt; the bridge leaves it out when ``styles_enabled`` is off.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final, TypeVar

from pipelines.styles import Style
from serve_app.experimance.protocol import Biome, Era

__all__ = ["BASE_NEGATIVE", "BIOME_MODIFIERS", "ERA_FRAGMENTS", "ERA_NEGATIVES", "STYLE_PREFIX", "style_for"]

STYLE_PREFIX: Final = "experimance"
"""Style names are ``experimance/<era>/<biome>``."""

BASE_NEGATIVE: Final = "text, watermark, signature, frame, border, blurry, lowres, people close-up"
"""Negative prompt shared by every era."""

ERA_FRAGMENTS: Final[MappingProxyType[Era, str]] = MappingProxyType(
    {
        Era.WILDERNESS: "untouched wilderness, pristine nature, no trace of people",
        Era.PRE_INDUSTRIAL: "pre-industrial settlements, small villages, farmland and dirt tracks, timber and stone",
        Era.EARLY_INDUSTRIAL: "early industrial revolution, railways, canals, brick mills and smokestacks",
        Era.LATE_INDUSTRIAL: "late industrial age, steel works, highways, power lines, factory smog",
        Era.MODERN: "modern development, suburbs, concrete, motorways, glass towers",
        Era.CURRENT: "present day, dense infrastructure, solar farms, data centres, sprawling cities",
        Era.FUTURE: "hopeful near future, green architecture, renewable energy, rewilded corridors",
        Era.DYSTOPIA: "dystopian collapse, toxic haze, scarred land, abandoned megastructures",
        Era.RUINS: "overgrown ruins, nature reclaiming crumbling concrete, moss and vines",
    }
)
"""What each era adds to the prompt."""

ERA_NEGATIVES: Final[MappingProxyType[Era, str]] = MappingProxyType(
    {
        Era.WILDERNESS: "buildings, roads, vehicles, fences",
        Era.PRE_INDUSTRIAL: "cars, power lines, skyscrapers, asphalt",
        Era.EARLY_INDUSTRIAL: "cars, skyscrapers, solar panels",
        Era.LATE_INDUSTRIAL: "solar panels, futuristic buildings",
        Era.MODERN: "ruins, medieval buildings",
        Era.CURRENT: "ruins, medieval buildings",
        Era.FUTURE: "pollution, smog, ruins",
        Era.DYSTOPIA: "lush pristine nature, clean sky",
        Era.RUINS: "intact modern buildings, traffic",
    }
)
"""What each era steers away from, added to :data:`BASE_NEGATIVE`."""

BIOME_MODIFIERS: Final[MappingProxyType[Biome, str]] = MappingProxyType(
    {
        Biome.RAINFOREST: "dense tropical rainforest canopy, humid mist",
        Biome.TEMPERATE_FOREST: "temperate forest, mixed green woodland",
        Biome.BOREAL_FOREST: "boreal forest, dark conifers, taiga lakes",
        Biome.DECIDUOUS_FOREST: "deciduous forest, broadleaf trees in autumn colours",
        Biome.DESERT: "arid desert, sand dunes, dry wadis",
        Biome.MOUNTAIN: "rugged mountains, ridges and valleys, snow-capped peaks",
        Biome.TROPICAL_ISLAND: "tropical island, turquoise lagoon, white beaches, coral reef",
        Biome.RIVER: "winding river valley, meanders, floodplain",
        Biome.TUNDRA: "tundra, permafrost, low shrubs and lichen",
        Biome.STEPPE: "open steppe, endless grassland, dry wind",
        Biome.COASTAL: "rocky coastline, cliffs, surf and tidal flats",
        Biome.SWAMP: "swamp wetland, still dark water, reeds and mangroves",
        Biome.PLAINS: "wide plains, rolling prairie, big sky",
        Biome.ARCTIC: "arctic ice sheet, glaciers, frozen sea",
        Biome.JUNGLE: "thick jungle, vines, tangled undergrowth, hidden rivers",
    }
)
"""What each biome adds to the prompt."""

_E = TypeVar("_E", Era, Biome)

_VIEW: Final = "aerial view from above, detailed landscape, natural light"


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
    fragments = ", ".join((ERA_FRAGMENTS[era_value], BIOME_MODIFIERS[biome_value], _VIEW))
    return Style(
        name=f"{STYLE_PREFIX}/{era_value.value}/{biome_value.value}",
        prompt_template="{prompt}, " + fragments,
        negative_prompt=f"{BASE_NEGATIVE}, {ERA_NEGATIVES[era_value]}",
    )


def _member(enum: type[_E], value: _E | str, name: str) -> _E:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        raise ValueError(f"{name}={value!r} is not allowed: one of {allowed} (case-sensitive)") from None
