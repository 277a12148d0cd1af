"""The built-in theme packs: every data file parses and resolves, and the Experimance pack renders exactly the
prompts the era/biome styles always did."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.errors import InputError
from pipelines.request import SCHEDULER_NAMES, GenerationLimits
from pipelines.styles import ThemeData, resolve_theme, theme_chain, theme_from_dict, theme_to_dict
from serve_app.experimance.protocol import Biome, Era
from serve_app.experimance.styles import (
    BASE_NEGATIVE,
    BIOME_MODIFIERS,
    ERA_FRAGMENTS,
    ERA_NEGATIVES,
    era_theme,
    style_for,
)
from serve_app.themes.packs import PACKS, builtin_theme, builtin_themes, load_pack, pack_of

_REPO = Path(__file__).resolve().parents[3]
_PACK_DIR = _REPO / "serve_app" / "themes" / "packs"
KINDS = {"generate", "portrait", "creature", "item", "tactical_map", "campaign_map"}
CORE_LOOKS = (
    "ink-and-wash",
    "grimdark-oil",
    "watercolour-atlas",
    "gothic-horror",
    "pulp-sci-fi",
    "isometric-pixel-art",
    "blueprint-dungeon",
    "storybook",
)


def _all() -> list[tuple[str, ThemeData]]:
    return builtin_themes()


def test_every_data_file_is_one_theme_named_after_it() -> None:
    for pack in PACKS:
        files = sorted(p.stem for p in (_PACK_DIR / pack).glob("*.yaml"))
        assert sorted(t.name for t in load_pack(pack)) == files
    names = [theme.name for _, theme in _all()]
    assert len(names) == len(set(names))
    assert {pack for pack, _ in _all()} == set(PACKS)
    assert all(pack_of(theme.name) == pack for pack, theme in _all())
    assert builtin_theme("no-such-theme") is None and pack_of("no-such-theme") is None


def test_unknown_pack_is_refused() -> None:
    with pytest.raises(InputError) as refused:
        load_pack("nope")
    assert refused.value.param == "pack"


def test_parents_come_before_children() -> None:
    seen: set[str] = set()
    for _, theme in _all():
        assert theme.parent is None or theme.parent in seen, theme.name
        seen.add(theme.name)


@pytest.mark.parametrize("name", [theme.name for _, theme in builtin_themes()])
def test_every_theme_and_variation_resolves(name: str) -> None:
    chain = theme_chain(name, builtin_theme)
    style = resolve_theme(chain)
    assert style.name == name and style.prompt_template.startswith("{prompt}")
    for variation in style.variations:
        varied = resolve_theme(chain, variation)
        assert varied.variation == variation
    theme = builtin_theme(name)
    assert theme is not None
    assert theme_from_dict(json.loads(json.dumps(theme_to_dict(theme)))) == theme


@pytest.mark.parametrize("name", [theme.name for _, theme in builtin_themes()])
def test_settings_and_sizes_are_inside_the_default_limits(name: str) -> None:
    limits = GenerationLimits()
    chain = theme_chain(name, builtin_theme)
    base = resolve_theme(chain)
    for style in [base, *(resolve_theme(chain, v) for v in base.variations)]:
        steps, guidance = style.settings.get("steps", 30), style.settings.get("guidance", 5.0)
        assert isinstance(steps, int) and 10 <= steps <= min(60, limits.max_steps)
        assert isinstance(guidance, float) and 3.0 <= guidance <= min(12.0, limits.max_guidance)
        assert style.settings.get("scheduler", "euler") in SCHEDULER_NAMES
        for key, (width, height) in style.sizes.items():
            assert key.split("/")[0] in KINDS, key
            assert width % 64 == 0 and height % 64 == 0, key
            assert limits.min_size <= min(width, height) and max(width, height) <= limits.max_size
            assert 0.75 <= width * height / 2**20 <= 1.1, key  # about one megapixel, SDXL's buckets
        assert style.kinds is None or set(style.kinds) <= KINDS
        prompt_chars = len(style.prompt_template.replace("{prompt}", ""))
        assert prompt_chars < limits.max_prompt_chars // 2 and len(style.negative_prompt) < limits.max_prompt_chars // 2


def test_core_pack_has_the_named_looks_with_their_own_variations() -> None:
    core = {theme.name: theme for theme in load_pack("core")}
    assert len(core) >= 8
    for name in CORE_LOOKS:
        theme = core[name]
        assert theme.description and theme.fragments and theme.negative_fragments, name
        assert 1 <= len(theme.variations) <= 3, name
        style = resolve_theme(theme_chain(name, builtin_theme))
        assert style.medium and style.lighting and style.palette, name
        assert {"steps", "guidance", "scheduler"} <= set(style.settings), name


def test_a_three_level_chain_exists() -> None:
    depths = {theme.name: len(theme_chain(theme.name, builtin_theme)) for _, theme in _all()}
    assert max(depths.values()) >= 3
    assert [t.name for t in theme_chain("ink-and-wash-sumi", builtin_theme)] == [
        "tabletop",
        "fantasy",
        "ink-and-wash",
        "ink-and-wash-sumi",
    ]


def test_the_sumi_theme_removes_inherited_fragments() -> None:
    parent = resolve_theme(theme_chain("ink-and-wash", builtin_theme))
    child = resolve_theme(theme_chain("ink-and-wash-sumi", builtin_theme))
    assert "highly detailed" in parent.fragments and "highly detailed" not in child.fragments
    assert child.consistency.lock_palette is True
    assert "strictly limited palette of " in child.prompt_template


def test_moderation_rules_per_theme() -> None:
    def rules(name: str) -> tuple[set[str], set[str]]:
        style = resolve_theme(theme_chain(name, builtin_theme))
        return set(style.moderation.allow), set(style.moderation.block)

    assert rules("storybook")[1] >= {"gore", "horror"}
    assert rules("gothic-horror")[0] >= {"gore", "horror"}
    assert "gore" in rules("grimdark-oil")[0]
    assert rules("ink-and-wash") == (set(), set())


def test_blueprint_dungeon_is_for_maps_and_items() -> None:
    style = resolve_theme(theme_chain("blueprint-dungeon", builtin_theme))
    assert style.kinds is not None and "portrait" not in style.kinds
    assert {"tactical_map", "item"} <= set(style.kinds)


def test_nothing_is_read_at_import() -> None:
    code = (
        "import serve_app.experimance.styles, serve_app.themes.packs as p\n"
        "assert p._pack.cache_info().currsize == 0 and p._index.cache_info().currsize == 0\n"
    )
    env = {**os.environ, "PYTHONPATH": str(_REPO)}
    result = subprocess.run([sys.executable, "-c", code], cwd=_REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# -- Experimance --------------------------------------------------------------------------------------------

# What serve_app/experimance/styles.py produced before the styles became a theme pack, copied verbatim.
OLD_STYLES = [
    (
        "ruins",
        "swamp",
        "{prompt}, overgrown ruins, nature reclaiming crumbling concrete, moss and vines, swamp wetland, still dark"
        " water, reeds and mangroves, aerial view from above, detailed landscape, natural light",
        "text, watermark, signature, frame, border, blurry, lowres, people close-up, intact modern buildings, traffic",
    ),
    (
        "wilderness",
        "rainforest",
        "{prompt}, untouched wilderness, pristine nature, no trace of people, dense tropical rainforest canopy,"
        " humid mist, aerial view from above, detailed landscape, natural light",
        "text, watermark, signature, frame, border, blurry, lowres, people close-up, buildings, roads, vehicles,"
        " fences",
    ),
    (
        "pre_industrial",
        "temperate_forest",
        "{prompt}, pre-industrial settlements, small villages, farmland and dirt tracks, timber and stone, temperate"
        " forest, mixed green woodland, aerial view from above, detailed landscape, natural light",
        "text, watermark, signature, frame, border, blurry, lowres, people close-up, cars, power lines, skyscrapers,"
        " asphalt",
    ),
    (
        "future",
        "arctic",
        "{prompt}, hopeful near future, green architecture, renewable energy, rewilded corridors, arctic ice sheet,"
        " glaciers, frozen sea, aerial view from above, detailed landscape, natural light",
        "text, watermark, signature, frame, border, blurry, lowres, people close-up, pollution, smog, ruins",
    ),
]


@pytest.mark.parametrize(("era", "biome", "prompt", "negative"), OLD_STYLES)
def test_experimance_styles_are_byte_identical_to_the_old_ones(
    era: str, biome: str, prompt: str, negative: str
) -> None:
    style = style_for(era, biome)
    assert style.name == f"experimance/{era}/{biome}"
    assert style.prompt_template == prompt
    assert style.negative_prompt == negative
    assert style.settings == {}


def test_the_old_constants_are_unchanged() -> None:
    assert BASE_NEGATIVE == "text, watermark, signature, frame, border, blurry, lowres, people close-up"
    assert ERA_FRAGMENTS[Era.RUINS] == "overgrown ruins, nature reclaiming crumbling concrete, moss and vines"
    assert ERA_NEGATIVES[Era.MODERN] == "ruins, medieval buildings"
    assert BIOME_MODIFIERS[Biome.JUNGLE] == "thick jungle, vines, tangled undergrowth, hidden rivers"
    assert (
        list(ERA_FRAGMENTS) == list(Era) and list(ERA_NEGATIVES) == list(Era) and list(BIOME_MODIFIERS) == list(Biome)
    )


def test_every_experimance_style_follows_the_old_recipe() -> None:
    for era, biome in itertools.product(Era, Biome):
        style = style_for(era, biome)
        view = "aerial view from above, detailed landscape, natural light"
        assert style.prompt_template == f"{{prompt}}, {ERA_FRAGMENTS[era]}, {BIOME_MODIFIERS[biome]}, {view}"
        assert style.negative_prompt == f"{BASE_NEGATIVE}, {ERA_NEGATIVES[era]}"


def test_the_experimance_pack_is_a_root_with_biome_variations_and_an_era_child_each() -> None:
    themes = {theme.name: theme for theme in load_pack("experimance")}
    root = themes.pop("experimance")
    assert root.parent is None and list(root.variations) == [b.value for b in Biome]
    assert sorted(themes) == sorted(era_theme(era) for era in Era)
    assert all(theme.parent == "experimance" for theme in themes.values())
    assert era_theme(Era.PRE_INDUSTRIAL) == "experimance-pre-industrial"


def test_builtin_themes_can_be_limited_to_some_packs() -> None:
    only_core = builtin_themes(["core"])
    assert only_core and {pack for pack, _ in only_core} == {"core"}
    assert builtin_themes([]) == []
    assert builtin_themes(["experimance", "core"]) == builtin_themes()
    with pytest.raises(InputError) as refused:
        builtin_themes(["core", "nope"])
    assert refused.value.param == "pack" and refused.value.value == "nope"
