"""Figure templates: hand-worked prompts for each kind, subjects' descriptors, the size precedence of
compose_figure (sizes computed by hand), theme settings and seed families."""

from __future__ import annotations

import dataclasses
import re

import pytest

from pipelines.errors import InputError
from pipelines.prompts import (
    Defaults,
    compose_figure,
    family_seeds,
    figure_prompt,
    with_descriptors,
)
from pipelines.prompts.specs import (
    FRAMINGS,
    SIZES,
    Character,
    Creature,
    CreatureSpec,
    FigureCommon,
    Item,
    ItemSpec,
    Magic,
    PortraitSpec,
)
from pipelines.request import GenerationLimits
from pipelines.styles import Style

MIRA = PortraitSpec(
    Character(
        name="Mira",
        ancestry="elf",
        role="ranger",
        age="young adult",
        build="lean",
        skin="pale",
        hair="silver braid",
        eyes="green",
        features=("scar across the left cheek",),
        expression="determined",
    ),
    equipment=("longbow", "quiver", "hooded cloak"),
    framing="bust",
)


def _well_formed(text: str) -> None:
    assert text == text.strip()
    assert ",," not in text.replace(" ", "") and "  " not in text
    assert all(f.strip() == f[1:] or i == 0 for i, f in enumerate(text.split(","))), text


# -- portraits -------------------------------------------------------------------------------------------


def test_a_full_portrait_prompt() -> None:
    fig = figure_prompt(MIRA)
    assert fig.kind == "portrait"
    assert fig.prompt == (
        "portrait of Mira, an elf ranger, young adult, lean build, pale skin, silver braid hair, green eyes, "
        "scar across the left cheek, determined expression, equipped with longbow, quiver and hooded cloak, "
        "looking at viewer, bust portrait, head and shoulders, plain background"
    )
    assert fig.negative_prompt == "deformed face, asymmetric eyes, extra fingers, bad anatomy, text, watermark"
    assert fig.aspect_ratio == "4:5"
    assert fig.size_keys == ("portrait/bust", "portrait")
    assert fig.descriptors == {
        "name": "Mira",
        "ancestry": "elf",
        "role": "ranger",
        "age": "young adult",
        "build": "lean",
        "skin": "pale",
        "hair": "silver braid",
        "eyes": "green",
        "features": "scar across the left cheek",
    }
    assert fig.data == {"framing": "bust", "background": "plain"}
    _well_formed(fig.prompt)


def test_a_sparse_portrait_skips_empty_fields() -> None:
    fig = figure_prompt(PortraitSpec(Character(role="innkeeper", hair=" "), framing="headshot"))
    assert fig.prompt == (
        "portrait of an innkeeper, looking at viewer, close-up headshot, face in focus, plain background"
    )
    assert fig.descriptors == {"role": "innkeeper"}
    assert fig.aspect_ratio == "1:1"


def test_portrait_words_are_not_doubled_and_ages_read() -> None:
    spec = PortraitSpec(
        Character(name="Brom", ancestry="dwarf", age="142", hair="braided red hair", eyes="eyes like coal"),
        pose="arms crossed",
        framing="full",
        background="a smoky tavern",
    )
    assert figure_prompt(spec).prompt == (
        "portrait of Brom, a dwarf, 142 years old, braided red hair, eyes like coal, arms crossed, "
        "full-body portrait, head to toe, a smoky tavern in the background"
    )


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("hair", "silver braid", "silver braid hair"),
        ("hair", "braided red beard", "braided red beard"),
        ("hair", "shaved head", "shaved head"),
        ("skin", "green scales", "green scales"),
        ("skin", "olive", "olive skin"),
        ("eyes", "one-eyed", "one-eyed"),
        ("build", "stocky", "stocky build"),
        ("expression", "a wry smile", "a wry smile"),
        ("expression", "weary", "weary expression"),
    ],
)
def test_noun_suffixes_are_not_doubled(field: str, value: str, words: str) -> None:
    prompt = figure_prompt(PortraitSpec(Character(name="X", **{field: value}))).prompt
    assert prompt.split(", ")[1] == words


def test_transparent_ready_background_states_the_key_colour() -> None:
    fig = figure_prompt(PortraitSpec(Character(name="Tam"), background="transparent-ready", framing="half"))
    assert "plain flat pure green background" in fig.prompt
    assert fig.data["key_colour"] == "#00ff00"
    assert fig.negative_prompt.endswith("scenery, gradient background, cast shadow")
    assert fig.aspect_ratio == "2:3"


def test_framings_map_to_their_aspect_ratios() -> None:
    expected = {"headshot": "1:1", "bust": "4:5", "half": "2:3", "full": "9:16"}
    for framing in FRAMINGS:
        assert figure_prompt(dataclasses.replace(MIRA, framing=framing)).aspect_ratio == expected[framing]


def test_negative_additions_come_first() -> None:
    spec = dataclasses.replace(MIRA, common=FigureCommon(negative_prompt=" helmet ,, hat "))
    assert figure_prompt(spec).negative_prompt.startswith("helmet, hat, deformed face")


def test_messy_input_still_gives_clean_fragments() -> None:
    spec = PortraitSpec(Character(name=" Mira ", features=("tall,  ", "  freckled"), hair="red ,"), pose=" , ")
    prompt = figure_prompt(spec).prompt
    assert prompt == (
        "portrait of Mira, red hair, tall, freckled, looking at viewer, bust portrait, head and shoulders, "
        "plain background"
    )
    _well_formed(prompt)


# -- creatures -------------------------------------------------------------------------------------------


def test_a_creature_prompt_with_a_name_and_a_token() -> None:
    spec = CreatureSpec(
        Creature("fiend", "Tiny", name="Skrit", features=("bat wings",), habitat="ruined chapel", pose="grinning"),
        token=True,
    )
    fig = figure_prompt(spec)
    assert fig.prompt == (
        "Skrit, a tiny fiend, infernal and menacing, bat wings, in the ruined chapel, grinning, "
        "small enough to sit in a human palm, close-up shot, centred composition, facing the viewer"
    )
    assert fig.aspect_ratio == "1:1"  # Tiny: headshot framing
    assert fig.size_keys == ("creature/headshot", "creature")
    assert fig.descriptors == {"type": "fiend", "size": "Tiny", "name": "Skrit", "features": "bat wings"}
    assert fig.data == {"framing": "headshot", "size_category": "Tiny", "token_cells": 0.5}


@pytest.mark.parametrize(
    ("size", "framing", "ratio", "keys"),
    [
        ("Tiny", "headshot", "1:1", ("creature/headshot", "creature")),
        ("Small", "bust", "4:5", ("creature/bust", "creature")),
        ("Medium", "full", "9:16", ("creature/full", "creature")),
        ("Large", "full", "1:1", ("creature/large", "creature/full", "creature")),
        ("Huge", "full", "4:3", ("creature/huge", "creature/full", "creature")),
        ("Gargantuan", "full", "16:9", ("creature/gargantuan", "creature/full", "creature")),
    ],
)
def test_size_drives_default_framing(size: str, framing: str, ratio: str, keys: tuple[str, ...]) -> None:
    fig = figure_prompt(CreatureSpec(Creature("beast", size)))
    assert (fig.data["framing"], fig.aspect_ratio, fig.size_keys) == (framing, ratio, keys)


def test_an_explicit_framing_wins_over_the_size() -> None:
    fig = figure_prompt(CreatureSpec(Creature("dragon", "Gargantuan"), framing="headshot"))
    assert (fig.aspect_ratio, fig.size_keys) == ("1:1", ("creature/headshot", "creature"))
    assert "a tiny human figure at its feet for scale" in fig.prompt  # the scale cue stays


def test_medium_creatures_have_no_size_word_and_articles_agree() -> None:
    assert figure_prompt(CreatureSpec(Creature("undead"))).prompt.startswith("an undead creature, human-sized")
    assert figure_prompt(CreatureSpec(Creature("ooze", "Large"))).prompt.startswith("a large ooze, a formless")
    assert figure_prompt(CreatureSpec(Creature("elemental", "Huge"))).prompt.startswith("a huge elemental")
    assert figure_prompt(CreatureSpec(Creature("aberration"))).prompt.startswith("an aberration")


def test_every_size_has_a_scale_cue() -> None:
    prompts = [figure_prompt(CreatureSpec(Creature("giant", size))).prompt for size in SIZES]
    assert len(set(prompts)) == len(SIZES)
    assert "towering over a human figure" in prompts[SIZES.index("Huge")]


# -- items -----------------------------------------------------------------------------------------------


def test_an_item_prompt_and_its_data() -> None:
    spec = ItemSpec(
        Item(
            "weapon",
            "frost longsword",
            name="Frostbite",
            materials=("blued steel", "silver"),
            magic=Magic("frost", "pale blue", runes=True),
            wear="pristine",
            rarity="legendary",
        ),
        size_reference="hand",
        card=True,
    )
    fig = figure_prompt(spec)
    assert fig.prompt == (
        "item illustration of Frostbite, a frost longsword, made of blued steel and silver, imbued with frost magic, "
        "glowing pale blue, engraved with glowing runes, pristine condition, legendary, ornate masterpiece, "
        "single object standing upright, spanning the full frame height, plain background"
    )
    assert fig.data == {
        "rarity": "legendary",
        "rarity_colour": "#ff8000",
        "item_length_cm": 105.0,
        "name": "Frostbite",
        "reference": "hand",
        "reference_length_cm": 19.0,
    }
    assert fig.size_keys == ("item/weapon", "item") and fig.aspect_ratio == "1:1"
    assert fig.descriptors == {
        "category": "weapon",
        "name": "Frostbite",
        "type": "frost longsword",
        "materials": "blued steel; silver",
        "magic.element": "frost",
        "magic.glow": "pale blue",
        "magic.runes": "true",
    }


def test_a_plain_item() -> None:
    fig = figure_prompt(ItemSpec(Item("potion")))
    assert fig.prompt == (
        "item illustration of a potion, lightly used, common, plain craftsmanship, single object, centred, "
        "plain background"
    )
    assert "reference" not in fig.data and fig.data["item_length_cm"] == 15.0
    assert fig.data["rarity_colour"] == "#9d9d9d"


def test_item_articles() -> None:
    def start(type_: str) -> str:
        return figure_prompt(ItemSpec(Item("wondrous", type_))).prompt.split(",")[0]

    assert start("amulet of health") == "item illustration of an amulet of health"
    assert start("boots of speed") == "item illustration of boots of speed"
    assert start("elven chainmail") == "item illustration of elven chainmail"
    assert start("bag of holding") == "item illustration of a bag of holding"


def test_magic_without_details_still_reads_magical() -> None:
    fig = figure_prompt(ItemSpec(Item("wand", magic=Magic())))
    assert "faint magical aura" in fig.prompt
    glow = figure_prompt(ItemSpec(Item("wand", magic=Magic(glow="a sickly green glow"))))
    assert "a sickly green glow" in glow.prompt and "glowing a sickly" not in glow.prompt


def test_figure_prompt_refuses_other_types() -> None:
    with pytest.raises(TypeError):
        figure_prompt(Character(name="x"))  # type: ignore[arg-type]


def test_prompts_are_deterministic() -> None:
    assert figure_prompt(MIRA) == figure_prompt(dataclasses.replace(MIRA))


# -- subjects --------------------------------------------------------------------------------------------


def test_with_descriptors_fills_only_what_is_missing() -> None:
    recorded = figure_prompt(MIRA).descriptors
    later = PortraitSpec(Character(hair="cropped short", expression="laughing"), pose="drawing a bow")
    filled = with_descriptors(later, recorded)
    c = filled.character
    assert (c.name, c.ancestry, c.role, c.eyes, c.features) == (
        "Mira",
        "elf",
        "ranger",
        "green",
        ("scar across the left cheek",),
    )
    assert c.hair == "cropped short" and c.expression == "laughing"  # the request wins
    assert later.character.name is None  # a new spec: the request's is untouched
    assert filled.pose == "drawing a bow"


def test_with_descriptors_round_trips_lists_and_magic() -> None:
    spec = ItemSpec(Item("weapon", "rapier", materials=("steel", "gold wire"), magic=Magic("fire", runes=True)))
    recorded = figure_prompt(spec).descriptors
    filled = with_descriptors(ItemSpec(Item("weapon", rarity="rare")), recorded)
    assert filled.item == dataclasses.replace(spec.item, rarity="rare")
    creature = CreatureSpec(Creature("beast", "Large", name="Old Tusk", features=("one eye", "scarred hide")))
    again = with_descriptors(
        CreatureSpec(Creature("beast", "Large"), framing="headshot"), figure_prompt(creature).descriptors
    )
    assert again.creature == creature.creature and again.framing == "headshot"


def test_with_descriptors_without_a_record_is_the_spec() -> None:
    assert with_descriptors(MIRA, {}) is MIRA
    with pytest.raises(TypeError):
        with_descriptors("spec", {})  # type: ignore[arg-type]


# -- composition -----------------------------------------------------------------------------------------

DEFAULTS = Defaults(width=1024, height=1024, steps=30, guidance=5.0, scheduler="euler", negative_prompt="lowres")


def _size(fig: object, style: Style | None, **kw: int) -> tuple[int, int]:
    r = compose_figure(fig, style, DEFAULTS, 7, **kw)  # type: ignore[arg-type]
    return r.width, r.height


def test_size_precedence() -> None:
    bust = figure_prompt(MIRA)
    # No preset: 4:5 fitted to 1024*1024 px. h = sqrt(1048576 * 5/4) = 1144.87 -> 18 * 64 = 1152;
    # w = 1144.87 * 4/5 = 915.9 -> 14 * 64 = 896.
    assert _size(bust, None) == (896, 1152)
    assert _size(bust, Style("s", sizes={"creature": (512, 512)})) == (896, 1152)  # another kind's preset
    general = Style("g", sizes={"portrait": (832, 1216)})
    assert _size(bust, general) == (832, 1216)
    specific = Style("s", sizes={"portrait": (832, 1216), "portrait/bust": (768, 960)})
    assert _size(bust, specific) == (768, 960)
    assert _size(bust, specific, width=512, height=640) == (512, 640)
    # One side alone keeps the chosen aspect: 768x960 at width 512 -> 512 * 960/768 = 640.
    assert _size(bust, specific, width=512) == (512, 640)
    # Height alone, no preset: 896x1152 at height 576 -> 576 * 896/1152 = 448.
    assert _size(bust, None, height=576) == (448, 576)


def test_big_creatures_fit_wide_and_theme_keys_by_size() -> None:
    fig = figure_prompt(CreatureSpec(Creature("dragon", "Gargantuan")))
    # 16:9 at 1048576 px: h = sqrt(1048576 * 9/16) = 768 -> 768; w = 768 * 16/9 = 1365.3 -> 21 * 64 = 1344.
    assert _size(fig, None) == (1344, 768)
    full = Style("f", sizes={"creature/full": (832, 1216)})
    assert _size(fig, full) == (832, 1216)
    by_size = Style("f", sizes={"creature/full": (832, 1216), "creature/gargantuan": (1536, 640)})
    assert _size(fig, by_size) == (1536, 640)


def test_composition_applies_the_theme() -> None:
    style = Style(
        "ink",
        prompt_template="{prompt}, ink wash, soft light",
        negative_prompt="photo, text, Watermark",
        settings={"steps": 12, "scheduler": "ddim"},
    )
    fig = figure_prompt(MIRA)
    r = compose_figure(fig, style, DEFAULTS, 99, width=64, height=64)
    assert r.prompt == fig.prompt + ", ink wash, soft light"
    # figure negatives, the deployment default, the theme's; the repeats ("text", "watermark") kept once.
    assert r.negative_prompt == (
        "deformed face, asymmetric eyes, extra fingers, bad anatomy, text, watermark, lowres, photo"
    )
    assert (r.steps, r.guidance, r.scheduler, r.seed, r.model) == (12, 5.0, "ddim", 99, "default")


def test_composition_without_a_theme_uses_the_defaults() -> None:
    fig = figure_prompt(ItemSpec(Item("ring")))
    r = compose_figure(fig, None, DEFAULTS, 3)
    assert r.prompt == fig.prompt and r.negative_prompt == fig.negative_prompt + ", lowres"
    assert (r.width, r.height, r.steps, r.guidance, r.scheduler) == (1024, 1024, 30, 5.0, "euler")


def test_composition_checks_the_limits() -> None:
    fig = figure_prompt(MIRA)
    with pytest.raises(InputError) as info:
        compose_figure(fig, None, DEFAULTS, 1, GenerationLimits(max_size=1024))
    assert info.value.param == "height"  # 896 x 1152
    with pytest.raises(InputError) as info:
        compose_figure(fig, None, DEFAULTS, 1, width=100, height=64)
    assert info.value.param == "width"
    with pytest.raises(InputError) as info:
        compose_figure(fig, Style("bad", settings={"scheduler": "nope"}), DEFAULTS, 1, width=64, height=64)
    assert info.value.param == "scheduler"


def test_composed_prompts_stay_well_formed() -> None:
    style = Style("s", prompt_template="{prompt}, a, b", negative_prompt="c")
    for spec in (MIRA, CreatureSpec(Creature("plant", "Small")), ItemSpec(Item("scroll", wear="broken"))):
        r = compose_figure(figure_prompt(spec), style, DEFAULTS, 1, width=64, height=64)
        _well_formed(r.prompt)
        _well_formed(r.negative_prompt)
        assert not re.search(r"\s,|,\S", r.prompt)


def test_family_seeds() -> None:
    assert family_seeds(1000, 4) == [1000, 1001, 1002, 1003]
    assert family_seeds(2**32 - 2, 4) == [2**32 - 2, 2**32 - 1, 0, 1]
    assert family_seeds(5, 1) == [5] and family_seeds(5, 0) == []
