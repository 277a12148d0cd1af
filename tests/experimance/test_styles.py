"""The built-in Experimance style pack."""

from __future__ import annotations

import itertools

import pytest

from pipelines.styles import Style, apply_style
from serve_app.experimance.protocol import Biome, Era
from serve_app.experimance.styles import BIOME_MODIFIERS, ERA_FRAGMENTS, ERA_NEGATIVES, style_for
from tests.experimance._core import BIOMES, ERAS


def test_one_fragment_per_era_and_one_modifier_per_biome() -> None:
    assert [e.value for e in ERA_FRAGMENTS] == list(ERAS)
    assert [e.value for e in ERA_NEGATIVES] == list(ERAS)
    assert [b.value for b in BIOME_MODIFIERS] == list(BIOMES)
    assert all(text.strip() for text in [*ERA_FRAGMENTS.values(), *BIOME_MODIFIERS.values()])
    assert len(set(ERA_FRAGMENTS.values())) == 9 and len(set(BIOME_MODIFIERS.values())) == 15


def test_every_combination_is_a_distinct_style() -> None:
    styles = [style_for(era, biome) for era, biome in itertools.product(ERAS, BIOMES)]
    assert len({s.prompt_template for s in styles}) == 9 * 15
    for style in styles:
        assert isinstance(style, Style) and style.prompt_template.startswith("{prompt}, ")


def test_style_applies_on_top_of_the_cores_prompt() -> None:
    style = style_for("ruins", "swamp")
    assert style == style_for(Era.RUINS, Biome.SWAMP)
    assert style.name == "experimance/ruins/swamp"
    prompt, negative = apply_style(style, "  a drowned city ", "fog")
    assert prompt.startswith("a drowned city, ")
    assert ERA_FRAGMENTS[Era.RUINS] in prompt and BIOME_MODIFIERS[Biome.SWAMP] in prompt
    assert negative.startswith("fog, ") and ERA_NEGATIVES[Era.RUINS] in negative


@pytest.mark.parametrize(("era", "biome"), [("Ruins", "swamp"), ("ruins", "SWAMP"), ("bronze_age", "swamp")])
def test_unknown_or_mis_cased_names_are_refused(era: str, biome: str) -> None:
    with pytest.raises(ValueError, match="case-sensitive"):
        style_for(era, biome)
