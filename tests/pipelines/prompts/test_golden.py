"""Golden prompts: a table of figure specs (three per kind) by three themes, composed, equals the checked-in
expectations in golden.json, so a change to a template, a table or theme resolution is a visible diff in review.

The themes are data written here (a three-level chain, a variation, a root with a removal), resolved by
pipelines.styles, so the expectations do not move when the built-in pack is edited.

``LIMNER_UPDATE_GOLDEN=1`` rewrites golden.json from the code and then fails, saying so: CI never regenerates
the expectations silently. Review the diff before committing it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from pipelines.prompts import Defaults, compose_figure, figure_prompt
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
from pipelines.styles import Style, ThemeData, resolve_theme, theme_chain, theme_from_dict

GOLDEN = Path(__file__).with_name("golden.json")
UPDATE = "LIMNER_UPDATE_GOLDEN"

THEME_DATA: tuple[Mapping[str, Any], ...] = (
    {
        "name": "table-base",
        "fragments": ["tabletop roleplaying game art"],
        "negative_fragments": ["text", "watermark", "signature", "blurry", "lowres", "bad anatomy"],
        "settings": {"steps": 30, "guidance": 6.0, "scheduler": "dpmpp_2m_karras"},
        "sizes": {
            "portrait": [896, 1152],
            "portrait/headshot": [1024, 1024],
            "portrait/full": [768, 1344],
            "creature": [1024, 1024],
            "creature/full": [832, 1216],
            "creature/gargantuan": [1344, 768],
            "item": [1024, 1024],
        },
    },
    {
        "name": "high-fantasy",
        "parent": "table-base",
        "fragments": ["fantasy illustration", "highly detailed"],
        "negative_fragments": ["modern clothing", "photograph"],
        "medium": "digital painting",
        "lighting": "dramatic rim light",
    },
    {
        "name": "ink-wash",
        "parent": "high-fantasy",
        "fragments": ["ink and wash illustration", "confident ink linework"],
        "negative_fragments": ["3d render", "glossy"],
        "medium": "ink and wash on cream paper",
        "lighting": "soft diffuse daylight",
        "palette": ["#1b1b1b", "#f3ead7", "#8c2f1b"],
        "settings": {"guidance": 6.5},
    },
    {
        "name": "gothic",
        "parent": "table-base",
        "fragments": ["gothic horror", "gloomy atmosphere"],
        "negative_fragments": ["cheerful", "bright colours"],
        "medium": "oil painting",
        "lighting": "candlelight and deep shadow",
        "palette": ["#0b0b0f", "#5a0f14", "#c0c0c0"],
        "consistency": {"lock_palette": True},
        "variations": {
            "blood-moon": {
                "fragments": ["blood moon in the sky"],
                "lighting": "red moonlight",
                "settings": {"steps": 40},
            }
        },
    },
    {
        "name": "pixel",
        "fragments": ["pixel art", "16-bit", "crisp pixels"],
        "negative_fragments": ["blurry", "smooth gradients"],
        "remove": [],
        "medium": "isometric pixel art",
        "settings": {"steps": 20, "guidance": 4.0, "scheduler": "euler_a"},
    },
)
THEMES: tuple[tuple[str, str | None], ...] = (("ink-wash", None), ("gothic", "blood-moon"), ("pixel", None))
"""(theme, variation): a three-level chain; a child of the root with a variation; a lone root without size
presets (sizes come from the framing's aspect ratio)."""

SPECS: Mapping[str, Any] = {
    "portrait-mira": PortraitSpec(
        Character(
            name="Mira",
            ancestry="elf",
            role="ranger",
            age="young adult",
            build="lean",
            hair="silver braid",
            eyes="green",
            features=("scar across the left cheek",),
            expression="determined",
        ),
        equipment=("longbow", "hooded cloak"),
        framing="bust",
    ),
    "portrait-brom-headshot": PortraitSpec(
        Character(name="Brom", ancestry="dwarf", role="blacksmith", age="60", skin="ruddy", hair="braided red beard"),
        pose="scowling at the viewer",
        framing="headshot",
        background="a smoky forge",
        common=FigureCommon(negative_prompt="helmet"),
    ),
    "portrait-paladin-full-key": PortraitSpec(
        Character(role="paladin", build="broad-shouldered", features=("gleaming plate armour", "tabard")),
        equipment=("warhammer",),
        framing="full",
        background="transparent-ready",
    ),
    "creature-wyrm-gargantuan": CreatureSpec(
        Creature("dragon", "Gargantuan", name="Kalthrax", features=("white scales", "icicle horns"), habitat="glacier")
    ),
    "creature-imp-token": CreatureSpec(Creature("fiend", "Tiny", name="Skrit", features=("bat wings",)), token=True),
    "creature-ogre-half": CreatureSpec(
        Creature("giant", "Large", features=("warty grey skin",), pose="swinging a club"), framing="half"
    ),
    "item-frostbite": ItemSpec(
        Item(
            "weapon",
            "longsword",
            name="Frostbite",
            materials=("blued steel",),
            magic=Magic(element="frost", glow="pale blue", runes=True),
            wear="pristine",
            rarity="legendary",
        ),
        card=True,
    ),
    "item-potion": ItemSpec(Item("potion", "potion of healing", wear="used", rarity="uncommon"), size_reference="coin"),
    "item-shield": ItemSpec(
        Item("shield", "tower shield", materials=("oak", "iron bands"), wear="damaged", rarity="rare"),
        size_reference="hand",
    ),
}

DEFAULTS = Defaults(
    width=1024, height=1024, steps=25, guidance=5.0, scheduler="euler", negative_prompt="jpeg artifacts"
)
SEED = 1234


def _styles() -> dict[str, Style]:
    themes: dict[str, ThemeData] = {d["name"]: theme_from_dict(d) for d in THEME_DATA}
    return {
        f"{name}/{variation}" if variation else name: resolve_theme(theme_chain(name, themes.get), variation)
        for name, variation in THEMES
    }


def _compose() -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for theme, style in _styles().items():
        for name, spec in SPECS.items():
            common = spec.common
            r = compose_figure(figure_prompt(spec), style, DEFAULTS, SEED, width=common.width, height=common.height)
            out[f"{name}@{theme}"] = {
                "prompt": r.prompt,
                "negative_prompt": r.negative_prompt,
                "width": r.width,
                "height": r.height,
                "steps": r.steps,
                "guidance": r.guidance,
                "scheduler": r.scheduler,
            }
    return out


def test_the_table_is_valid() -> None:
    assert len(SPECS) >= 9 and len(THEMES) == 3
    for spec in SPECS.values():
        spec.check()
    kinds = [figure_prompt(spec).kind for spec in SPECS.values()]
    assert all(kinds.count(kind) >= 3 for kind in ("portrait", "creature", "item"))


def test_golden_prompts() -> None:
    composed = _compose()
    if os.environ.get(UPDATE) == "1":
        GOLDEN.write_text(json.dumps(composed, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
        pytest.fail(f"{UPDATE}=1: rewrote {GOLDEN.name} with {len(composed)} cases; review the diff and unset it")
    expected = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert sorted(composed) == sorted(expected), "the table changed: rerun with LIMNER_UPDATE_GOLDEN=1"
    for key, value in composed.items():
        assert value == expected[key], key
