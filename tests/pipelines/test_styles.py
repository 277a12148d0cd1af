"""Themes: parsing, inheritance, variations and palette words (pipelines.styles), pure and on their own."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
from collections.abc import Mapping
from typing import Any

import pytest

from pipelines.errors import InputError
from pipelines.styles import (
    NAMED_COLOURS,
    Consistency,
    FrozenDict,
    ModerationRules,
    Style,
    ThemeData,
    ThemeError,
    Variation,
    apply_style,
    palette_words,
    resolve_theme,
    theme_chain,
    theme_from_dict,
    theme_to_dict,
)


def _theme(**data: Any) -> ThemeData:
    return theme_from_dict(data)


def _lookup(*themes: ThemeData) -> Any:
    by_name = {t.name: t for t in themes}
    return by_name.get


ROOT = _theme(
    name="root",
    description="the root",
    fragments=["alpha", "beta"],
    negative_fragments=["blurry", "text"],
    medium="oil painting",
    lighting="soft light",
    settings={"steps": 30, "guidance": 6.0, "scheduler": "euler"},
    sizes={"portrait": [896, 1152], "item": [1024, 1024]},
    variations={
        "night": {"fragments": ["night sky"], "lighting": "moonlight"},
        "winter": {"fragments": ["snow"], "negative_fragments": ["summer"]},
    },
    consistency={"seed_base": 7, "reference_strength": 0.5},
    moderation={"block": ["horror"]},
)
MIDDLE = _theme(
    name="middle",
    parent="root",
    fragments=["gamma"],
    negative_fragments=["cartoon"],
    remove=["beta", "text"],
    lighting="harsh light",
    settings={"steps": 40},
    sizes={"portrait": [832, 1216]},
    variations={"night": {"fragments": ["lanterns"], "medium": "ink"}},
    consistency={"lock_palette": True},
    moderation={"allow": ["horror", "gore"]},
)
LEAF = _theme(
    name="leaf",
    parent="middle",
    fragments=["delta", "alpha"],
    palette=["#ff0000", "#0000ff"],
    settings={"scheduler": "ddim"},
    variations={"blood-moon": {"remove": ["gamma", "cartoon"], "palette": ["#800000"], "settings": {"guidance": 9}}},
    kinds=["portrait", "item"],
    consistency={"seed_base": 11},
    moderation={"block": ["gore"]},
)
LOOKUP = _lookup(ROOT, MIDDLE, LEAF)


# -- chains -----------------------------------------------------------------------------------------------


def test_chain_is_root_first() -> None:
    assert [t.name for t in theme_chain("leaf", LOOKUP)] == ["root", "middle", "leaf"]
    assert [t.name for t in theme_chain("root", LOOKUP)] == ["root"]


def test_unknown_theme_and_missing_parent() -> None:
    with pytest.raises(ThemeError) as unknown:
        theme_chain("nope", LOOKUP)
    assert unknown.value.param == "theme" and unknown.value.value == "nope"
    orphan = _theme(name="orphan", parent="ghost")
    with pytest.raises(ThemeError) as missing:
        theme_chain("orphan", _lookup(orphan))
    assert missing.value.param == "parent" and missing.value.value == "ghost"
    assert isinstance(missing.value, InputError)


def test_cycles_are_refused_naming_the_path() -> None:
    a, b, c = _theme(name="a", parent="b"), _theme(name="b", parent="c"), _theme(name="c", parent="a")
    x = _theme(name="x", parent="a")
    with pytest.raises(ThemeError) as cycle:
        theme_chain("a", _lookup(a, b, c))
    assert cycle.value.param == "parent" and cycle.value.value == "a -> b -> c -> a"
    with pytest.raises(ThemeError) as entered:
        theme_chain("x", _lookup(a, b, c, x))
    assert entered.value.value == "a -> b -> c -> a"  # x leads into the cycle but is not part of it
    selfish = _theme(name="me", parent="me")
    with pytest.raises(ThemeError, match="me -> me"):
        theme_chain("me", _lookup(selfish))


def test_depth_is_limited() -> None:
    themes = [_theme(name="t0")] + [_theme(name=f"t{i}", parent=f"t{i - 1}") for i in range(1, 10)]
    lookup = _lookup(*themes)
    assert len(theme_chain("t7", lookup, max_depth=8)) == 8
    with pytest.raises(ThemeError) as deep:
        theme_chain("t8", lookup, max_depth=8)
    assert deep.value.param == "parent" and "at most 8" in deep.value.allowed
    with pytest.raises(ThemeError):
        theme_chain("t2", lookup, max_depth=2)


# -- resolution -------------------------------------------------------------------------------------------


def test_lists_append_in_chain_order_and_removal_drops_inherited_fragments() -> None:
    style = resolve_theme(theme_chain("leaf", LOOKUP))
    # root gives alpha, beta; middle removes beta (and the negative "text"), adds gamma; leaf adds delta and
    # repeats alpha, which is kept once where it first appeared.
    assert style.fragments == ("alpha", "gamma", "delta")
    assert style.negative_fragments == ("blurry", "cartoon")
    assert style.negative_prompt == "blurry, cartoon"


def test_scalars_override_and_settings_sizes_merge_per_key() -> None:
    style = resolve_theme(theme_chain("leaf", LOOKUP))
    assert style.name == "leaf"
    assert style.medium == "oil painting"  # root's, never overridden
    assert style.lighting == "harsh light"  # middle's
    assert style.palette == ("#ff0000", "#0000ff")
    assert style.settings == {"steps": 40, "guidance": 6.0, "scheduler": "ddim"}
    assert dict(style.sizes) == {"portrait": (832, 1216), "item": (1024, 1024)}
    assert style.kinds == ("portrait", "item")
    assert style.consistency == Consistency(seed_base=11, lock_palette=True, reference_strength=0.5)
    assert style.description == "the root"
    assert resolve_theme(theme_chain("middle", LOOKUP)).kinds is None  # a root's None means every kind


def test_prompt_template_renders_fragments_medium_lighting_then_palette() -> None:
    style = resolve_theme(theme_chain("leaf", LOOKUP))
    expected = "{prompt}, alpha, gamma, delta, oil painting, harsh light, strictly limited palette of red and blue"
    assert style.prompt_template == expected
    assert apply_style(style, " a knight ", "ugly") == (
        expected.replace("{prompt}", "a knight"),
        "ugly, blurry, cartoon",
    )


def test_an_empty_theme_leaves_the_prompt_alone() -> None:
    style = resolve_theme([_theme(name="plain")])
    assert style.prompt_template == "{prompt}" and style.negative_prompt == ""
    assert apply_style(style, "a cat", "") == ("a cat", "")


def test_moderation_rules_last_writer_wins_per_category() -> None:
    assert resolve_theme(theme_chain("root", LOOKUP)).moderation == ModerationRules(block=("horror",))
    assert resolve_theme(theme_chain("middle", LOOKUP)).moderation == ModerationRules(allow=("horror", "gore"))
    assert resolve_theme(theme_chain("leaf", LOOKUP)).moderation == ModerationRules(allow=("horror",), block=("gore",))


def test_inherited_variation_applies_last() -> None:
    style = resolve_theme(theme_chain("leaf", LOOKUP), "winter")  # defined by root, untouched below
    assert style.variation == "winter"
    assert style.fragments == ("alpha", "gamma", "delta", "snow")
    assert style.negative_fragments == ("blurry", "cartoon", "summer")


def test_a_child_variation_replaces_the_parents_of_the_same_name() -> None:
    style = resolve_theme(theme_chain("leaf", LOOKUP), "night")
    assert style.fragments == ("alpha", "gamma", "delta", "lanterns")  # not root's "night sky"
    assert style.medium == "ink"
    assert style.lighting == "harsh light"  # middle's night sets no lighting; root's "moonlight" is replaced away
    assert resolve_theme(theme_chain("root", LOOKUP), "night").lighting == "moonlight"


def test_a_variation_removes_overrides_and_sets_settings() -> None:
    style = resolve_theme(theme_chain("leaf", LOOKUP), "blood-moon")
    assert style.fragments == ("alpha", "delta")
    assert style.negative_fragments == ("blurry",)
    assert style.palette == ("#800000",)
    assert style.settings == {"steps": 40, "guidance": 9.0, "scheduler": "ddim"}
    assert style.prompt_template.endswith(", strictly limited palette of maroon")


def test_variations_offered_are_the_merged_names() -> None:
    assert resolve_theme(theme_chain("leaf", LOOKUP)).variations == ("night", "winter", "blood-moon")
    assert resolve_theme(theme_chain("root", LOOKUP)).variations == ("night", "winter")


def test_unknown_variation_lists_the_available_ones() -> None:
    with pytest.raises(ThemeError) as unknown:
        resolve_theme(theme_chain("leaf", LOOKUP), "summer")
    assert unknown.value.param == "variation" and unknown.value.value == "summer"
    assert "blood-moon, night, winter" in unknown.value.allowed
    with pytest.raises(ThemeError, match="none"):
        resolve_theme([_theme(name="plain")], "night")
    with pytest.raises(ThemeError) as empty:
        resolve_theme([])
    assert empty.value.param == "theme"


def test_a_variation_cannot_leak_into_the_next_resolution() -> None:
    chain = theme_chain("leaf", LOOKUP)
    before = resolve_theme(chain)
    resolve_theme(chain, "blood-moon")
    assert resolve_theme(chain) == before


def test_the_old_style_constructor_still_works() -> None:
    style = Style(name="old", prompt_template="{prompt}, oil", negative_prompt="blurry")
    assert apply_style(style, "x", "") == ("x, oil", "blurry")
    assert style.settings == {} and style.kinds is None and style.variation is None
    with pytest.raises(ValueError, match="must contain"):
        apply_style(Style(name="bad", prompt_template="no placeholder"), "x", "")


# -- immutability -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "attr"),
    [
        (LEAF, "fragments"),
        (LEAF, "parent"),
        (LEAF.variations["blood-moon"], "palette"),
        (LEAF.consistency, "seed_base"),
        (LEAF.moderation, "block"),
        (resolve_theme(theme_chain("leaf", LOOKUP)), "prompt_template"),
    ],
)
def test_assigning_to_a_frozen_dataclass_raises(obj: object, attr: str) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, attr, None)


def test_mappings_inside_a_theme_refuse_changes() -> None:
    for mapping in (LEAF.settings, LEAF.variations, ROOT.sizes, resolve_theme(theme_chain("leaf", LOOKUP)).sizes):
        assert isinstance(mapping, Mapping)
        with pytest.raises(TypeError):
            mapping["x"] = 1  # type: ignore[index]
        with pytest.raises(TypeError):
            mapping.update({"x": 1})  # type: ignore[attr-defined]
        with pytest.raises(TypeError):
            mapping.pop("x", None)  # type: ignore[attr-defined]


def test_themes_and_styles_pickle_copy_and_hash() -> None:
    style = resolve_theme(theme_chain("leaf", LOOKUP), "night")
    for value in (LEAF, ROOT, style):
        assert pickle.loads(pickle.dumps(value)) == value
        assert copy.deepcopy(value) == value
    assert hash(LEAF) == hash(theme_from_dict(theme_to_dict(LEAF)))
    frozen = FrozenDict({"a": 1})
    assert frozen == {"a": 1} and json.dumps(frozen) == '{"a": 1}'


# -- parsing ----------------------------------------------------------------------------------------------


def test_round_trip_through_json() -> None:
    for theme in (ROOT, MIDDLE, LEAF, _theme(name="bare")):
        data = theme_to_dict(theme)
        assert json.loads(json.dumps(data)) == data
        assert theme_from_dict(json.loads(json.dumps(data))) == theme
    assert theme_to_dict(LEAF)["sizes"] == {}
    assert theme_to_dict(ROOT)["sizes"] == {"portrait": [896, 1152], "item": [1024, 1024]}
    assert theme_to_dict(ROOT)["variations"]["night"]["lighting"] == "moonlight"


def test_parsing_normalises() -> None:
    theme = _theme(name="n", fragments=["  padded  "], palette=["#ABCDEF"], settings={"guidance": 7})
    assert theme.fragments == ("padded",)
    assert theme.palette == ("#abcdef",)
    assert theme.settings == {"guidance": 7.0} and isinstance(theme.settings["guidance"], float)
    assert theme.variations == {} and theme.kinds is None and theme.palette is not None
    assert _theme(name="cleared", palette=[], medium="").palette == ()


@pytest.mark.parametrize(
    ("data", "param"),
    [
        ({"name": "x", "colour": "red"}, "colour"),
        ({"name": "x", "variations": {"night": {"fragmnets": ["a"]}}}, "variations.night.fragmnets"),
        ({"name": "x", "variations": {"night": {"kinds": ["item"]}}}, "variations.night.kinds"),
        ({"name": "x", "settings": {"width": 512}}, "settings.width"),
        ({"name": "x", "consistency": {"seed": 1}}, "consistency.seed"),
        ({"name": "x", "moderation": {"deny": ["gore"]}}, "moderation.deny"),
        ({"name": "Bad Name"}, "name"),
        ({"name": "x", "parent": 3}, "parent"),
        ({}, "name"),
        ({"name": "x", "fragments": "a single string"}, "fragments"),
        ({"name": "x", "fragments": ["ok", ""]}, "fragments[1]"),
        ({"name": "x", "fragments": ["ok", 5]}, "fragments[1]"),
        ({"name": "x", "fragments": ["{prompt} again"]}, "fragments[0]"),
        ({"name": "x", "negative_fragments": ["x" * 301]}, "negative_fragments[0]"),
        ({"name": "x", "palette": ["#fff"]}, "palette[0]"),
        ({"name": "x", "palette": ["#12345g"]}, "palette[0]"),
        ({"name": "x", "variations": {"night": {"palette": ["red"]}}}, "variations.night.palette[0]"),
        ({"name": "x", "sizes": {"portrait": [1020, 1024]}}, "sizes.portrait"),
        ({"name": "x", "sizes": {"portrait": [0, 1024]}}, "sizes.portrait"),
        ({"name": "x", "sizes": {"portrait": [-8, 1024]}}, "sizes.portrait"),
        ({"name": "x", "sizes": {"portrait": [1024]}}, "sizes.portrait"),
        ({"name": "x", "sizes": {"portrait": [1024.0, 1024]}}, "sizes.portrait"),
        ({"name": "x", "sizes": {"Portrait": [1024, 1024]}}, "sizes.Portrait"),
        ({"name": "x", "settings": {"steps": "30"}}, "settings.steps"),
        ({"name": "x", "settings": {"steps": True}}, "settings.steps"),
        ({"name": "x", "settings": {"steps": 0}}, "settings.steps"),
        ({"name": "x", "settings": {"guidance": "high"}}, "settings.guidance"),
        ({"name": "x", "settings": {"guidance": -1}}, "settings.guidance"),
        ({"name": "x", "settings": {"scheduler": "plms"}}, "settings.scheduler"),
        ({"name": "x", "variations": {"night": {"settings": {"steps": 2.5}}}}, "variations.night.settings.steps"),
        ({"name": "x", "variations": {"Night": {}}}, "variations.Night"),
        ({"name": "x", "variations": ["night"]}, "variations"),
        ({"name": "x", "kinds": []}, "kinds"),
        ({"name": "x", "kinds": ["Portrait"]}, "kinds[0]"),
        ({"name": "x", "consistency": {"seed_base": -1}}, "consistency.seed_base"),
        ({"name": "x", "consistency": {"lock_palette": "yes"}}, "consistency.lock_palette"),
        ({"name": "x", "consistency": {"reference_image": "abc"}}, "consistency.reference_image"),
        ({"name": "x", "consistency": {"reference_strength": 0}}, "consistency.reference_strength"),
        ({"name": "x", "consistency": {"reference_strength": 1.5}}, "consistency.reference_strength"),
        ({"name": "x", "moderation": {"allow": ["gore"], "block": ["gore"]}}, "moderation.block"),
        ({"name": "x", "medium": ["oil"]}, "medium"),
        ({"name": "x", "description": 5}, "description"),
    ],
)
def test_strict_parsing_names_the_offending_key(data: dict[str, Any], param: str) -> None:
    with pytest.raises(InputError) as refused:
        theme_from_dict(data)
    assert refused.value.param == param


def test_parsing_accepts_every_documented_field() -> None:
    theme = _theme(
        name="full-theme",
        consistency={
            "seed_base": 2**63 - 1,
            "lock_palette": False,
            "reference_image": "ab" * 32,
            "reference_strength": 1,
        },
        sizes={"portrait/bust": [896, 1152], "tactical_map": [8, 8192]},
        kinds=["portrait"],
    )
    assert theme.consistency.reference_strength == 1.0 and theme.consistency.seed_base == 2**63 - 1
    assert theme.sizes["portrait/bust"] == (896, 1152)
    assert theme_from_dict(theme_to_dict(theme)) == theme


def test_a_variation_holds_only_override_fields() -> None:
    assert {f.name for f in dataclasses.fields(Variation)} == {
        "fragments",
        "negative_fragments",
        "remove",
        "medium",
        "lighting",
        "palette",
        "settings",
        "sizes",
    }


# -- palette words ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("colour", "name"),
    [
        ("#ff0000", "red"),
        ("#FF0000", "red"),
        ("#fe0a08", "red"),
        ("#000000", "black"),
        ("#050505", "black"),
        ("#ffffff", "white"),
        ("#0000ff", "blue"),
        ("#000080", "navy"),
        ("#ffd700", "gold"),
        ("#008000", "green"),
        ("#800080", "purple"),
        ("#7f7f7f", "grey"),
    ],
)
def test_palette_colour_takes_the_nearest_name(colour: str, name: str) -> None:
    assert palette_words([colour], locked=False) == f"colour palette of {name}"


def test_every_named_colour_names_itself() -> None:
    for name, colour in NAMED_COLOURS.items():
        assert palette_words([colour], locked=True) == f"strictly limited palette of {name}"


def test_palette_words_join_and_collapse_duplicates() -> None:
    assert palette_words(["#ff0000", "#0000ff", "#ffffff"], locked=False) == "colour palette of red, blue and white"
    assert palette_words(["#ff0000", "#fe0000", "#0000ff"], locked=True) == "strictly limited palette of red and blue"
    assert palette_words([], locked=False) == ""
    with pytest.raises(InputError) as bad:
        palette_words(["#ff0000", "red"], locked=False)
    assert bad.value.param == "palette[1]"


def test_cielab_conversion_matches_reference_values() -> None:
    from pipelines.styles import _hex_to_lab

    # sRGB (D65) reference values, e.g. from Bruce Lindbloom's calculator.
    for colour, expected in [
        ("#ff0000", (53.2408, 80.0925, 67.2032)),
        ("#00ff00", (87.7347, -86.1827, 83.1793)),
        ("#0000ff", (32.2970, 79.1875, -107.8602)),
        ("#808080", (53.5850, 0.0, 0.0)),
    ]:
        assert _hex_to_lab(colour) == pytest.approx(expected, abs=0.01)


def test_nearest_is_perceptual_not_rgb() -> None:
    # Over a coarse grid of colours, nearest-by-RGB (computed here) and the module's answer must differ
    # somewhere: the table is searched in CIELAB, not in RGB.
    def rgb_nearest(colour: str) -> str:
        def rgb(c: str) -> tuple[int, ...]:
            return tuple(int(c[i : i + 2], 16) for i in (1, 3, 5))

        target = rgb(colour)
        return min(
            NAMED_COLOURS, key=lambda n: sum((a - b) ** 2 for a, b in zip(rgb(NAMED_COLOURS[n]), target, strict=True))
        )

    disagreements = [
        f"#{r:02x}{g:02x}{b:02x}"
        for r in range(0, 256, 51)
        for g in range(0, 256, 51)
        for b in range(0, 256, 51)
        if palette_words([f"#{r:02x}{g:02x}{b:02x}"], False).removeprefix("colour palette of ")
        != rgb_nearest(f"#{r:02x}{g:02x}{b:02x}")
    ]
    assert disagreements


def test_theme_errors_pickle_and_are_input_errors() -> None:
    error = pickle.loads(pickle.dumps(ThemeError("variation", "summer", "one of night")))
    assert isinstance(error, ThemeError) and isinstance(error, InputError)
    assert (error.param, error.value, error.allowed) == ("variation", "summer", "one of night")
